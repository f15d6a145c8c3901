"""The figure guardrail: every number in a final answer must appear in what this answer's
tools were given or gave back (or in the question itself).

Hand-written: no library checks the numbers of a text against structured data. A number
in the answer matches a source number when both are equal as decimals after dropping
grouping commas, currency signs and trailing zeros (₹12,345.50 = "12345.5"), or when the
answer states a source ratio as a percentage (0.235 → 23.5%). List markers ("1." at the
start of a line) are not figures.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

_NUMBER = re.compile(r"(?<![\w.])-?\d(?:[\d,]*\d)?(?:\.\d+)?")
_LIST_MARKER = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+", re.MULTILINE)
_CITATION = re.compile(r"\[txn:[0-9a-fA-F-]{32,36}\]")
_ID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")


def _decimal(token: str) -> Decimal | None:
    try:
        value = Decimal(token.replace(",", ""))
    except InvalidOperation:
        return None
    return value.normalize() if value.is_finite() else None


def figures_in(text: str) -> list[tuple[str, Decimal]]:
    """The numbers a reader sees in `text`, as written and as decimals."""
    text = _CITATION.sub(" ", text)
    text = _ID.sub(" ", text)
    text = _LIST_MARKER.sub(" ", text)
    found = []
    for match in _NUMBER.finditer(text):
        value = _decimal(match.group())
        if value is not None:
            found.append((match.group(), value))
    return found


def _walk(value: Any) -> Iterator[Decimal]:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int | float | Decimal):
        number = _decimal(str(value))
        if number is not None:
            yield number
    elif isinstance(value, str):
        for _, number in figures_in(value):
            yield number
        for part in re.split(r"[-/:T ]", value):  # dates and times: 2025-03-10 gives 3 and 10
            if part.isdigit():
                yield Decimal(part).normalize()
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, Iterable):
        for item in value:
            yield from _walk(item)


def allowed_figures(sources: Iterable[Any]) -> set[Decimal]:
    allowed: set[Decimal] = set()
    for number in _walk(list(sources)):
        allowed.add(number)
        allowed.add(abs(number))
        allowed.add((number * 100).normalize())  # a ratio stated as a percentage
        allowed.add(abs(number * 100).normalize())
    return allowed


def unverified_figures(answer: str, sources: Iterable[Any]) -> list[str]:
    """The figures of `answer` that no source contains (as written in the answer)."""
    allowed = allowed_figures(sources)
    missing = []
    for written, value in figures_in(answer):
        if value not in allowed and abs(value) not in allowed and written not in missing:
            missing.append(written)
    return missing
