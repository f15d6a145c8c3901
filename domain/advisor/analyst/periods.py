"""Periods named in a question ("last month", "Q3 2025", "FY24-25", "since January"), as
inclusive date ranges relative to an injected `today`.

Hand-written: no installed library resolves relative, quarter and Indian financial-year
phrases against a given clock (python-dateutil parses absolute dates only).

Conventions (the issue is silent on them):
- "this month/quarter/year/week", "since ...", "year to date" end today (`partial`);
- "last/previous month|quarter|year|week" are the previous complete calendar unit, while
  "past month|week|year" and "last N days|weeks|months|years" are rolling windows ending today;
- "Q1".."Q4" are calendar quarters; "Q3 FY25" is a financial-year quarter (Q1 = Apr-Jun);
- a financial year runs April to March and "FY25" / "FY24-25" is the one ending in March 2025;
- a month or day without a year is its latest occurrence that has started by `today`;
- numeric dates are day first (01/02/2025 is 1 February), as in India.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Literal

Unit = Literal["day", "week", "month", "quarter", "half", "year", "fiscal_year", "span"]

MONTHS = {
    "jan": 1,
    "feb": 2,
    "mar": 3,
    "apr": 4,
    "may": 5,
    "jun": 6,
    "jul": 7,
    "aug": 8,
    "sep": 9,
    "oct": 10,
    "nov": 11,
    "dec": 12,
}
NUMBER_WORDS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "couple of": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "fifteen": 15,
    "eighteen": 18,
    "twenty": 20,
    "twenty four": 24,
    "thirty": 30,
    "thirty six": 36,
    "sixty": 60,
    "ninety": 90,
}
_ORDINAL_QUARTERS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": 4}


@dataclass(frozen=True)
class Period:
    """An inclusive date range and the words of the question that named it."""

    start: date
    end: date
    phrase: str
    unit: Unit = "span"
    partial: bool = False  # cut short at `today` (the unit has not ended yet)
    # A range's two ends as periods of their own ("March to April" -> March, April), so a
    # comparison can split it.
    parts: tuple[Period, ...] = ()

    def as_arguments(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}

    def previous(self) -> Period:
        """The unit just before this one ("last quarter" for "this quarter"), complete."""
        start = self.start
        if self.unit == "day":
            day = start - timedelta(days=1)
            return Period(day, day, f"the day before {self.phrase}", "day")
        if self.unit == "week":
            monday = start - timedelta(days=start.weekday() + 7)
            return Period(monday, monday + timedelta(days=6), "the week before", "week")
        months = {"month": 1, "quarter": 3, "half": 6, "year": 12, "fiscal_year": 12}.get(self.unit)
        if months is not None:
            first = add_months(start, -months)
            label = {"fiscal_year": "financial year", "half": "half-year"}.get(self.unit, self.unit)
            end = add_months(first, months) - timedelta(days=1)
            return Period(first, end, f"the {label} before", self.unit)
        length = (self.end - self.start).days + 1
        end = start - timedelta(days=1)
        return Period(end - timedelta(days=length - 1), end, f"the {length} days before", "span")

    def year_earlier(self, phrase: str) -> Period:
        """The same dates one year before ("same period last year")."""
        return Period(
            add_months(self.start, -12), add_months(self.end, -12), phrase, self.unit, False
        )


# --- calendar arithmetic ----------------------------------------------------------------


def month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def add_months(day: date, months: int) -> date:
    """Move by whole months, clamping the day (31 March - 1 month = 28/29 February)."""
    year, month = divmod(day.year * 12 + day.month - 1 + months, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def _clip(start: date, end: date, today: date, phrase: str, unit: Unit) -> Period:
    if end > today >= start:
        return Period(start, today, phrase, unit, partial=True)
    return Period(start, end, phrase, unit)


def _month(year: int, month: int, today: date, phrase: str) -> Period:
    return _clip(date(year, month, 1), month_end(year, month), today, phrase, "month")


def _quarter(year: int, quarter: int, today: date, phrase: str) -> Period:
    first = date(year, 3 * quarter - 2, 1)
    return _clip(first, add_months(first, 3) - timedelta(days=1), today, phrase, "quarter")


def _fiscal_year(ending: int, today: date, phrase: str) -> Period:
    """The Indian financial year April `ending - 1` to March `ending`."""
    return _clip(date(ending - 1, 4, 1), date(ending, 3, 31), today, phrase, "fiscal_year")


def _fiscal_ending(today: date) -> int:
    return today.year + 1 if today.month >= 4 else today.year


def _latest_month(month: int, today: date) -> int:
    """The year of the latest `month` that has started by `today`."""
    return today.year if month <= today.month else today.year - 1


def _full_year(text: str) -> int:
    value = int(text.lstrip("'"))
    return value + 2000 if value < 100 else value


def _count(text: str) -> int:
    text = " ".join(text.split())
    return int(text) if text.isdigit() else NUMBER_WORDS[text]


# --- the grammar ------------------------------------------------------------------------

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_YEAR = r"(?:19|20)\d{2}"
_NUM = r"(?:\d{1,3}|" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + ")"
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
# One calendar day, written "15 March 2025", "March 15th", "2025-03-15" or "15/03/2025".
_DATE = (
    rf"(?:(?P<{{p}}d1>{_DAY})\s+(?:of\s+)?(?P<{{p}}m1>{_MONTH})\b\.?(?:,?\s*(?P<{{p}}y1>{_YEAR}))?"
    rf"|(?P<{{p}}m2>{_MONTH})\.?\s+(?P<{{p}}d2>{_DAY})\b(?:,?\s*(?P<{{p}}y2>{_YEAR}))?"
    rf"|(?P<{{p}}iy>{_YEAR})-(?P<{{p}}im>[01]?\d)-(?P<{{p}}id>[0-3]?\d)"
    rf"|(?P<{{p}}nd>[0-3]?\d)[/.-](?P<{{p}}nm>[01]?\d)[/.-](?P<{{p}}ny>{_YEAR}|\d\d))"
)
# A whole month, optionally with its year: "March", "Mar 2025", "March of 2025".
_MONTH_YEAR = rf"(?P<{{p}}mo>{_MONTH})\b\.?(?:,?\s*(?:of\s+)?(?P<{{p}}my>{_YEAR}))?"
# The words before a bare month that make "may" (or any month) a month.
_MONTH_LEAD = r"(?:in|during|for|of|from|since|between|until|till|to|and|vs\.?|versus|with|on)"


def _endpoint(prefix: str) -> str:
    return "(?:" + _DATE.replace("{p}", prefix) + "|" + _MONTH_YEAR.replace("{p}", prefix) + ")"


@dataclass(frozen=True)
class _Point:
    """A parsed endpoint: a day, or a whole month; `year` None when left implicit."""

    day: int | None
    month: int
    year: int | None


def _point(match: re.Match[str], prefix: str) -> _Point | None:
    group = match.groupdict()

    def get(name: str) -> str | None:
        return group.get(prefix + name)

    for day_key, month_key, year_key in (("d1", "m1", "y1"), ("d2", "m2", "y2")):
        day_text, month_text = get(day_key), get(month_key)
        if day_text and month_text:
            year_text = get(year_key)
            return _Point(
                int(re.sub(r"\D", "", day_text)),
                MONTHS[month_text[:3].lower()],
                int(year_text) if year_text else None,
            )
    if get("iy"):
        return _Point(int(get("id") or 0), int(get("im") or 0), int(get("iy") or 0))
    if get("ny"):
        return _Point(int(get("nd") or 0), int(get("nm") or 0), _full_year(get("ny") or ""))
    month_text = get("mo")
    if month_text:
        year_text = get("my")
        return _Point(None, MONTHS[month_text[:3].lower()], int(year_text) if year_text else None)
    return None


def _valid(point: _Point, year: int) -> bool:
    if not 1 <= point.month <= 12:
        return False
    return point.day is None or 1 <= point.day <= calendar.monthrange(year, point.month)[1]


def _point_year(point: _Point, today: date) -> int | None:
    """The explicit year, or the latest year in which the point has started by today."""
    if point.year is not None:
        return point.year if _valid(point, point.year) else None
    for year in range(today.year, today.year - 8, -1):  # 29 February: back to a leap year
        if _valid(point, year) and date(year, point.month, point.day or 1) <= today:
            return year
    return None


def _bounds(point: _Point, year: int) -> tuple[date, date]:
    if point.day is None:
        return date(year, point.month, 1), month_end(year, point.month)
    day = date(year, point.month, point.day)
    return day, day


Handler = Callable[[re.Match[str], date, str], Period | None]
_RULES: list[tuple[re.Pattern[str], Handler]] = []


def _rule(pattern: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        _RULES.append((re.compile(pattern, re.IGNORECASE), handler))
        return handler

    return register


@_rule(r"\b(?:the\s+)?day\s+before\s+yesterday\b")
def _day_before_yesterday(match: re.Match[str], today: date, phrase: str) -> Period:
    day = today - timedelta(days=2)
    return Period(day, day, phrase, "day")


@_rule(r"\b(?:yesterday|today)\b")
def _yesterday(match: re.Match[str], today: date, phrase: str) -> Period:
    day = today - timedelta(days=1) if phrase.lower() == "yesterday" else today
    return Period(day, day, phrase, "day")


@_rule(
    r"\b(?:(?:this|current)\s+(?P<unit>week|month|quarter|year)(?:\s+(?:so\s+far|to\s+date))?"
    r"|(?:so\s+far|to\s+date)\s+this\s+(?P<unit2>week|month|quarter|year)"
    r"|(?P<todate>week|month|quarter|year)[\s-]+to[\s-]+date|(?P<abbr>wtd|mtd|qtd|ytd)"
    r"|since\s+the\s+(?:start|beginning)\s+of\s+(?:the|this)\s+(?P<unit3>week|month|quarter|year))\b"
)
def _this_unit(match: re.Match[str], today: date, phrase: str) -> Period:
    abbr = match["abbr"]
    unit = (
        match["unit"]
        or match["unit2"]
        or match["todate"]
        or match["unit3"]
        or {"w": "week", "m": "month", "q": "quarter", "y": "year"}[(abbr or "y")[0].lower()]
    ).lower()
    if unit == "week":
        start = today - timedelta(days=today.weekday())
        return _clip(start, start + timedelta(days=6), today, phrase, "week")
    if unit == "month":
        return _month(today.year, today.month, today, phrase)
    if unit == "quarter":
        return _quarter(today.year, (today.month - 1) // 3 + 1, today, phrase)
    return _clip(date(today.year, 1, 1), date(today.year, 12, 31), today, phrase, "year")


@_rule(r"\b(?:last|previous|prior)\s+(?P<unit>week|month|quarter|year)\b(?!\s*'s\s+" + _MONTH + ")")
def _last_unit_rule(match: re.Match[str], today: date, phrase: str) -> Period:
    return _last_unit(match["unit"].lower(), today, phrase)


def _last_unit(unit: str, today: date, phrase: str) -> Period:
    """The previous complete week, month, quarter or year."""
    if unit == "week":
        monday = today - timedelta(days=today.weekday() + 7)
        return Period(monday, monday + timedelta(days=6), phrase, "week")
    if unit == "month":
        first = add_months(today.replace(day=1), -1)
        return Period(first, month_end(first.year, first.month), phrase, "month")
    if unit == "quarter":
        first = add_months(date(today.year, 3 * ((today.month - 1) // 3) + 1, 1), -3)
        return Period(first, add_months(first, 3) - timedelta(days=1), phrase, "quarter")
    return Period(date(today.year - 1, 1, 1), date(today.year - 1, 12, 31), phrase, "year")


@_rule(
    r"\b(?:(?:in|over|during|for)\s+)?(?:the\s+)?(?:past|last|previous|trailing)\s+"
    r"(?:(?P<count>" + _NUM + r")\s+)?(?P<full>full\s+|complete\s+|calendar\s+)?"
    r"(?P<unit>days?|weeks?|months?|quarters?|years?)\b"
)
def _rolling(match: re.Match[str], today: date, phrase: str) -> Period | None:
    unit = match["unit"].lower().rstrip("s")
    count_text = match["count"]
    lead = phrase.lower().split()
    if count_text is None and ("last" in lead or "previous" in lead) and unit != "day":
        return None  # "last month" is the calendar month: `_last_unit`
    count = _count(count_text.lower()) if count_text else 1
    limit = {"day": 36_500, "week": 5_200, "month": 1_200, "quarter": 400, "year": 100}[unit]
    if not 0 < count <= limit:
        return None  # beyond a century of household history
    if match["full"] and unit in ("month", "quarter", "year"):
        size = {"month": 1, "quarter": 3, "year": 12}[unit]
        current = date(today.year, (today.month - 1) // size * size + 1, 1)
        return Period(add_months(current, -count * size), current - timedelta(days=1), phrase)
    if unit in ("day", "week"):
        days = count * (7 if unit == "week" else 1)
        return Period(today - timedelta(days=days - 1), today, phrase, "span")
    months = count * {"month": 1, "quarter": 3, "year": 12}[unit]
    return Period(add_months(today, -months) + timedelta(days=1), today, phrase, "span")


@_rule(r"\b(?:trailing\s+twelve\s+months|ttm)\b")
def _ttm(match: re.Match[str], today: date, phrase: str) -> Period:
    return Period(add_months(today, -12) + timedelta(days=1), today, phrase, "span")


@_rule(
    r"\b(?:(?P<this>this|current)\s+(?:financial|fiscal)\s+year|(?P<this2>this|current)\s+fy"
    r"|(?P<last>last|previous|prior)\s+(?:financial|fiscal)\s+year|(?P<last2>last|previous)\s+fy)\b"
)
def _relative_fiscal(match: re.Match[str], today: date, phrase: str) -> Period:
    ending = _fiscal_ending(today)
    if match["last"] or match["last2"]:
        ending -= 1
    return _fiscal_year(ending, today, phrase)


_FY = (
    r"(?:fy|financial\s+year|fiscal\s+year|fiscal)\s*'?"
    r"(?:(?P<{p}a>(?:19|20)?\d\d)\s*[-/\u2013]\s*(?P<{p}b>(?:19|20)?\d\d)|(?P<{p}c>(?:19|20)?\d\d))"
)


def _fiscal_ending_from(match: re.Match[str], prefix: str) -> int | None:
    first, second, single = match[prefix + "a"], match[prefix + "b"], match[prefix + "c"]
    if single:
        return _full_year(single)
    begin, ending = _full_year(first), _full_year(second)
    if ending % 100 != (begin + 1) % 100:
        return None
    return begin + 1


@_rule(
    r"\b(?:(?:q(?P<q>[1-4])|(?P<word>first|second|third|fourth)\s+quarter)\s*(?:of\s+)?"
    + _FY.replace("{p}", "f")
    + r")\b"
)
def _fiscal_quarter(match: re.Match[str], today: date, phrase: str) -> Period | None:
    ending = _fiscal_ending_from(match, "f")
    if ending is None:
        return None
    quarter = int(match["q"]) if match["q"] else _ORDINAL_QUARTERS[match["word"].lower()]
    first = add_months(date(ending - 1, 4, 1), 3 * (quarter - 1))
    return _clip(first, add_months(first, 3) - timedelta(days=1), today, phrase, "quarter")


@_rule(r"\b" + _FY.replace("{p}", "f") + r"\b")
def _fiscal_named(match: re.Match[str], today: date, phrase: str) -> Period | None:
    ending = _fiscal_ending_from(match, "f")
    return None if ending is None else _fiscal_year(ending, today, phrase)


@_rule(r"(?<![\d-])(?P<a>(?:19|20)\d{2})-(?P<b>\d{2})(?![\d-])")
def _fiscal_bare(match: re.Match[str], today: date, phrase: str) -> Period | None:
    begin = int(match["a"])
    if int(match["b"]) != (begin + 1) % 100:
        return None
    return _fiscal_year(begin + 1, today, phrase)


@_rule(
    r"\b(?:(?:(?:the\s+)?(?P<word>first|second|third|fourth|last)\s+quarter|q(?P<q>[1-4]))"
    r"(?:\s*(?:of\s+|,\s*)?(?P<year>" + _YEAR + r")|\s*'(?P<short>\d{2}))?"
    r"|(?P<year2>" + _YEAR + r")\s*-?\s*q(?P<q2>[1-4]))\b"
)
def _calendar_quarter(match: re.Match[str], today: date, phrase: str) -> Period | None:
    word = match["word"]
    quarter = int(match["q"] or match["q2"] or _ORDINAL_QUARTERS.get((word or "").lower(), 0))
    year_text = match["year"] or match["year2"] or match["short"]
    if word and word.lower() == "last" and not year_text:
        return None  # "last quarter" is `_last_unit`
    if year_text:
        year = _full_year(year_text)
    else:
        current = (today.month - 1) // 3 + 1
        year = today.year if quarter <= current else today.year - 1
    return _quarter(year, quarter, today, phrase)


@_rule(
    r"\b(?:h(?P<h>[12])|(?P<word>first|second)\s+half)(?:\s*(?:of\s+)?(?P<year>" + _YEAR + r"))?\b"
)
def _half(match: re.Match[str], today: date, phrase: str) -> Period:
    half = int(match["h"]) if match["h"] else (1 if match["word"].lower() == "first" else 2)
    if match["year"]:
        year = int(match["year"])
    else:
        year = today.year if half == 1 or today.month >= 7 else today.year - 1
    first = date(year, 1 if half == 1 else 7, 1)
    return _clip(first, add_months(first, 6) - timedelta(days=1), today, phrase, "half")


@_rule(
    r"\b(?:between\s+(?:the\s+)?"
    + _endpoint("a")
    + r"\s+and\s+(?:the\s+)?"
    + _endpoint("b")
    + r"|(?:from\s+)?(?:the\s+)?"
    + _endpoint("c")
    + r"\s*(?:to|till|until|through|thru|-|\u2013)\s*(?:the\s+)?"
    + _endpoint("e")
    + r")\b"
)
def _range(match: re.Match[str], today: date, phrase: str) -> Period | None:
    first = _point(match, "a") or _point(match, "c")
    last = _point(match, "b") or _point(match, "e")
    if first is None or last is None:
        return None
    if last.year is None and first.year is not None:
        last = replace(last, year=first.year)
    end_year = _point_year(last, today)
    if end_year is None:
        return None
    start_year = first.year if first.year is not None else end_year
    if first.year is None and (first.month, first.day or 1) > (last.month, last.day or 31):
        start_year -= 1  # "between 15 December and 10 January"
    if not _valid(first, start_year):
        return None
    (start, first_end), (last_start, end) = _bounds(first, start_year), _bounds(last, end_year)
    if start > end:
        return None
    parts = (
        _clip(start, first_end, today, _describe(first, start_year), _point_unit(first)),
        _clip(last_start, end, today, _describe(last, end_year), _point_unit(last)),
    )
    period = _clip(start, end, today, phrase, "span")
    return replace(period, parts=parts)


def _point_unit(point: _Point) -> Unit:
    return "month" if point.day is None else "day"


def _describe(point: _Point, year: int) -> str:
    name = calendar.month_name[point.month]
    return f"{name} {year}" if point.day is None else f"{point.day} {name} {year}"


@_rule(
    r"\bsince\s+(?:(?P<rel>last|the\s+last)\s+(?P<unit>week|month|quarter|year)"
    r"|(?P<year>" + _YEAR + r")(?![\d-])|(?:the\s+)?" + _endpoint("s") + r")\b"
)
def _since(match: re.Match[str], today: date, phrase: str) -> Period | None:
    if match["unit"]:
        return Period(_last_unit(match["unit"].lower(), today, phrase).start, today, phrase)
    if match["year"]:
        start = date(int(match["year"]), 1, 1)
    else:
        point = _point(match, "s")
        year = None if point is None else _point_year(point, today)
        if point is None or year is None:
            return None
        start = _bounds(point, year)[0]
    return Period(start, today, phrase) if start <= today else None


@_rule(r"\b" + _DATE.replace("{p}", "x") + r"\b")
def _single_day(match: re.Match[str], today: date, phrase: str) -> Period | None:
    point = _point(match, "x")
    year = None if point is None else _point_year(point, today)
    if point is None or year is None:
        return None
    start, end = _bounds(point, year)
    return Period(start, end, phrase, "day")


@_rule(
    r"(?:\b(?P<lead>(?:last|this)\s+)|\b)(?P<mo>" + _MONTH + r")\b\.?"
    r"(?:,?\s*(?:of\s+)?(?P<year>"
    + _YEAR
    + r")|\s+(?P<rel>last|this)\s+year|\s*'(?P<short>\d{2}))?"
)
def _named_month(match: re.Match[str], today: date, phrase: str) -> Period | None:
    month = MONTHS[match["mo"][:3].lower()]
    lead = (match["lead"] or "").strip().lower()
    relative = (match["rel"] or "").lower()
    if match["year"] or match["short"]:
        year = _full_year(match["year"] or match["short"])
    elif relative:
        year = today.year - (1 if relative == "last" else 0)
    elif lead == "this":
        year = today.year
    elif lead == "last":
        year = today.year if month < today.month else today.year - 1
    else:
        year = _latest_month(month, today)
    return _month(year, month, today, phrase)


@_rule(r"(?<![\d,.₹$£€/:-])\b(?P<year>" + _YEAR + r")\b(?![\d,.%/:-]|\s*(?:k|l|lakhs?|lacs?|cr)\b)")
def _calendar_year(match: re.Match[str], today: date, phrase: str) -> Period:
    year = int(match["year"])
    return _clip(date(year, 1, 1), date(year, 12, 31), today, phrase, "year")


@_rule(r"\b(?:the\s+)?same\s+(?P<unit>period|time|month|quarter|week|day)\s+last\s+year\b")
def _same_last_year(match: re.Match[str], today: date, phrase: str) -> Period:
    # Placeholder: `find_periods` replaces it by the period before it, one year earlier.
    unit = match["unit"].lower()
    base = {
        "month": _month(today.year, today.month, today, phrase),
        "quarter": _quarter(today.year, (today.month - 1) // 3 + 1, today, phrase),
    }.get(unit, Period(today, today, phrase, "day"))
    return Period(base.start, base.end, phrase, base.unit, base.partial)


_MAY_NEEDS = re.compile(
    r"(?:\b" + _MONTH_LEAD + r"\s+(?:the\s+)?(?:last\s+|this\s+)?$)|(?:\b(?:last|this)\s+$)|\d\s*$"
)


def _is_modal_may(text: str, match: re.Match[str]) -> bool:
    """ "may" is the month only after "in/since/last/..." or before a year or a day number."""
    if match["mo"].lower() != "may" or match["year"] or match["short"] or match["rel"]:
        return False
    return not match["lead"] and _MAY_NEEDS.search(text[: match.start()].lower()) is None


def _candidates(text: str, today: date) -> Iterator[tuple[int, int, Period]]:
    for pattern, handler in _RULES:
        for match in pattern.finditer(text):
            phrase = text[match.start() : match.end()].strip()
            if handler is _named_month and _is_modal_may(text, match):
                continue
            period = handler(match, today, phrase)
            if period is not None:
                yield match.start(), match.end(), period


def find_periods(text: str, today: date) -> list[tuple[int, int, Period]]:
    """Every period named in `text`, in reading order, as (start offset, end offset, period).

    Where phrases overlap, the longest wins ("between 1 Jan and 15 Feb" over "1 Jan").
    """
    found = sorted(_candidates(text, today), key=lambda item: (item[0] - item[1], item[0]))
    chosen: list[tuple[int, int, Period]] = []
    for start, end, period in found:
        if all(end <= other_start or start >= other_end for other_start, other_end, _ in chosen):
            chosen.append((start, end, period))
    chosen.sort(key=lambda item: item[0])
    resolved: list[tuple[int, int, Period]] = []
    for start, end, period in chosen:
        if re.match(r"(?i)(the\s+)?same\s+", period.phrase):
            if resolved:
                period = resolved[-1][2].year_earlier(period.phrase)
            else:
                period = period.year_earlier(period.phrase)
        resolved.append((start, end, period))
    return resolved
