"""How the offline analyst writes figures, dates and periods.

Money is written as the tools give it, with its currency's sign in front and grouping
commas ("₹12,345.50", "$20.00", "JPY 1,200"): the figure guardrail
(domain/advisor/figures.py) strips the commas and reads the sign as a separator, so
every written amount compares equal to the tool's "12345.50".
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

SYMBOLS = {"INR": "₹", "USD": "$", "EUR": "€", "GBP": "£"}


def amount_of(value: Mapping[str, Any] | None) -> Decimal:
    """The decimal amount of a tool's money object (0 when the object is absent; a malformed
    amount raises InvalidOperation, an ArithmeticError)."""
    if not value:
        return Decimal(0)
    return Decimal(str(value["amount"]))


def money(value: Mapping[str, Any], *, unsigned: bool = False) -> str:
    """A tool's {"amount", "currency"} as text: "₹12,345.50", "-₹40.00", "AED 100.00"."""
    amount = amount_of(value)
    currency = str(value.get("currency", ""))
    digits = format(abs(amount), ",f")
    sign = "-" if amount < 0 and not unsigned else ""
    symbol = SYMBOLS.get(currency)
    return f"{sign}{symbol}{digits}" if symbol else f"{sign}{currency} {digits}".strip()


def percent(value: Any) -> str:
    """A tool's percentage string ("23.50") as "23.5%" (the same decimal, unsigned)."""
    number = abs(Decimal(str(value))).normalize()
    return f"{number:f}%"


def plain(value: Any) -> str:
    """A rate or count from a tool ("8.0", 120) without trailing zeros: "8", "120"."""
    return f"{Decimal(str(value)).normalize():f}"


def day(value: str | dt.date) -> str:
    """14 Mar 2026."""
    date = dt.date.fromisoformat(value) if isinstance(value, str) else value
    return f"{date.day} {date:%b %Y}"


def month_label(value: str) -> str:
    """A tool's "2026-02" as "February 2026" (anything else is left as it is)."""
    try:
        year, month = (int(part) for part in value.split("-"))
        return f"{calendar.month_name[month]} {year}"
    except (ValueError, IndexError):
        return value


def _month_end(date: dt.date) -> dt.date:
    return date.replace(day=calendar.monthrange(date.year, date.month)[1])


def span(start: str | dt.date, end: str | dt.date) -> str:
    """An inclusive range in words: "February 2026", "October to December 2025",
    "1 Jan 2026 to 14 Mar 2026"."""
    first = dt.date.fromisoformat(start) if isinstance(start, str) else start
    last = dt.date.fromisoformat(end) if isinstance(end, str) else end
    if first.day == 1 and last == _month_end(last):
        if (first.month, last.month) == (1, 12) and first.year == last.year:
            return str(first.year)
        if (first.year, first.month) == (last.year, last.month):
            return f"{first:%B %Y}"
        if first.year == last.year:
            return f"{first:%B} to {last:%B %Y}"
        return f"{first:%B %Y} to {last:%B %Y}"
    if first == last:
        return day(first)
    return f"{day(first)} to {day(last)}"


def join(words: list[str]) -> str:
    """a, b and c."""
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]
