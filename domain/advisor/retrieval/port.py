"""The retrieval side of the advisor's search port: the port itself (`TransactionSearch`,
`SearchHit`) lives with the tools that call it (domain/advisor/tools/base.py); this module
adds what the retrievers share (the filter, the integer day)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from domain.advisor.tools.base import SearchHit, TransactionSearch

__all__ = ["SearchFilter", "SearchHit", "TransactionSearch", "day_number"]


@dataclass(frozen=True)
class SearchFilter:
    """What a search is restricted to, besides its workspace (dates as yyyymmdd)."""

    start: int | None = None
    end: int | None = None
    account_ids: frozenset[str] = frozenset()
    category_ids: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        start: date | None,
        end: date | None,
        account_ids: Sequence[uuid.UUID],
        category_ids: Sequence[uuid.UUID],
    ) -> SearchFilter:
        return cls(
            start=day_number(start) if start else None,
            end=day_number(end) if end else None,
            account_ids=frozenset(str(i) for i in account_ids),
            category_ids=frozenset(str(i) for i in category_ids),
        )


def day_number(day: date) -> int:
    """20240110 for 10 January 2024: Qdrant range filters need numbers, not ISO text."""
    return day.year * 10_000 + day.month * 100 + day.day
