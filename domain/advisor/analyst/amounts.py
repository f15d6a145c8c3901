"""Money amounts, percentages and durations written in a question: "20k", "2 lakh",
"1.5 crore", "₹20,000", "Rs 20000", "$1,200", "8.5%", "10 years", "18 months".

Hand-written: no installed library reads Indian number words (lakh, crore) or the
10,00,000 grouping. Amounts are exact `Decimal`s; nothing goes through float.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from domain.advisor.analyst.periods import NUMBER_WORDS
from domain.core.money import MAX_INTEGER_DIGITS

_MULTIPLIERS = {
    "k": 1_000,
    "thousand": 1_000,
    "l": 100_000,
    "lac": 100_000,
    "lacs": 100_000,
    "lakh": 100_000,
    "lakhs": 100_000,
    "cr": 10_000_000,
    "crore": 10_000_000,
    "crores": 10_000_000,
    "m": 1_000_000,
    "mn": 1_000_000,
    "million": 1_000_000,
    "bn": 1_000_000_000,
    "billion": 1_000_000_000,
}
_CURRENCIES = {
    "₹": "INR",
    "rs": "INR",
    "rs.": "INR",
    "inr": "INR",
    "rupee": "INR",
    "rupees": "INR",
    "$": "USD",
    "us$": "USD",
    "usd": "USD",
    "dollar": "USD",
    "dollars": "USD",
    "€": "EUR",
    "eur": "EUR",
    "euro": "EUR",
    "euros": "EUR",
    "£": "GBP",
    "gbp": "GBP",
    "pound": "GBP",
    "pounds": "GBP",
}
_LARGEST = Decimal(10) ** MAX_INTEGER_DIGITS
_WORD_NUMBER = "|".join(sorted((w for w in NUMBER_WORDS if w not in ("a", "an")), key=len))

AMOUNT = re.compile(
    r"(?<![\w.])(?:(?P<before>₹|rs\.?|inr|us\$|\$|usd|€|eur|£|gbp)\s*)?"
    r"(?P<number>\d{1,3}(?:,\d{2,3})+(?:\.\d+)?|\d+(?:\.\d+)?|(?P<word>a|one|"
    + _WORD_NUMBER
    + r"))"
    r"(?:\s*(?P<multiplier>k|l|lacs?|lakhs?|cr|crores?|mn|m|bn|thousand|million|billion)\b)?"
    r"(?:\s*(?P<after>rupees?|rs\b\.?|inr\b|dollars?|usd\b|euros?|eur\b|pounds?|gbp\b))?",
    re.IGNORECASE,
)
PERCENT = re.compile(
    r"(?<![\w.])(?P<value>\d+(?:\.\d+)?)\s*(?:%|percent\b|per\s*cent\b|pc\b|pct\b)", re.IGNORECASE
)
_DURATION_PART = (
    r"(?P<{p}count>\d+(?:\.\d+)?|" + _WORD_NUMBER + r"|a|an)\s*-?\s*"
    r"(?P<{p}unit>years?|yrs?|months?|mos?|mths?)\b"
)
DURATION = re.compile(
    r"(?<![\w.])"
    + _DURATION_PART.replace("{p}", "a")
    + r"(?:\s*(?:and|,)?\s*"
    + _DURATION_PART.replace("{p}", "b")
    + r")?",
    re.IGNORECASE,
)
# "a year" / "a month" count as durations only after these words ("for a year"); otherwise
# they are a frequency ("20,000 a month").
_DURATION_LEAD = re.compile(r"\b(?:for|in|over|within|of|next)\s+$", re.IGNORECASE)


@dataclass(frozen=True)
class Amount:
    value: Decimal
    currency: str | None  # None when the question names none
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Percent:
    value: Decimal
    start: int
    end: int


@dataclass(frozen=True)
class Duration:
    months: Decimal  # 1.5 years = 18 months
    start: int
    end: int
    text: str


def _number(text: str) -> Decimal:
    cleaned = text.replace(",", "").lower()
    if cleaned in ("a", "an"):
        return Decimal(1)
    if cleaned in NUMBER_WORDS:
        return Decimal(NUMBER_WORDS[cleaned])
    return Decimal(cleaned)


def find_percents(text: str) -> list[Percent]:
    return [
        Percent(Decimal(match["value"]), match.start(), match.end())
        for match in PERCENT.finditer(text)
    ]


def find_durations(text: str) -> list[Duration]:
    found: list[Duration] = []
    for match in DURATION.finditer(text):
        count = match["acount"].lower()
        if count in ("a", "an") and not _DURATION_LEAD.search(text[: match.start()]):
            continue
        months = Decimal(0)
        for prefix in ("a", "b"):
            if match[prefix + "count"] is None:
                continue
            value = _number(match[prefix + "count"])
            months += value * 12 if match[prefix + "unit"].lower().startswith("y") else value
        found.append(Duration(months, match.start(), match.end(), match.group(0)))
    return found


def find_amounts(text: str, *, skip: Sequence[tuple[int, int]] = ()) -> list[Amount]:
    """Money amounts outside the `skip` spans (periods, percentages, durations)."""
    found: list[Amount] = []
    for match in AMOUNT.finditer(text):
        if any(start < match.end() and match.start() < end for start, end in skip):
            continue
        word, multiplier = match["word"], (match["multiplier"] or "").lower()
        currency_text = (match["before"] or match["after"] or "").lower().rstrip(".")
        if word and not multiplier:
            continue  # "one" alone is not money; "one lakh" is
        bare = not (match["before"] or match["after"])
        if multiplier in ("l", "m") and bare and " " in match.group(0).strip():
            continue  # "5 l" / "5 m" are too ambiguous without a currency; "5L" is not
        value = _number(match["number"]) * _MULTIPLIERS.get(multiplier, 1)
        if value >= _LARGEST:
            continue  # beyond what `Money` holds: not an amount anyone means
        currency = _CURRENCIES.get(currency_text) or _CURRENCIES.get(currency_text + ".")
        found.append(Amount(value, currency, match.start(), match.end(), match.group(0).strip()))
    return found
