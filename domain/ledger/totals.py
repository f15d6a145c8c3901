"""Month totals: per account or category, month and currency, kept with the postings."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.core.db import dialect_insert
from domain.core.tenancy import Tenant
from domain.ledger.models import MonthTotal
from domain.ledger.repository import LedgerRepository

TABLE = "month_totals"

TotalKey = tuple[uuid.UUID, int, str]  # target id, yyyymm, currency


def month_of(day: dt.date) -> int:
    return day.year * 100 + day.month


def month_start(month: int) -> dt.date:
    return dt.date(month // 100, month % 100, 1)


def month_end(month: int) -> dt.date:
    year, number = divmod(month, 100)
    following = dt.date(year + number // 12, number % 12 + 1, 1)
    return following - dt.timedelta(days=1)


def next_month(month: int) -> int:
    year, number = divmod(month, 100)
    return (year + 1) * 100 + 1 if number == 12 else month + 1


@dataclass
class Delta:
    amount: int = 0
    postings: int = 0


class TotalsChange:
    """Deltas collected while postings are written, applied once per transaction."""

    def __init__(self) -> None:
        self.deltas: dict[TotalKey, Delta] = defaultdict(Delta)

    def add(
        self, target: uuid.UUID, day: dt.date, currency: str, amount: int, *, postings: int = 1
    ) -> None:
        delta = self.deltas[(target, month_of(day), currency)]
        delta.amount += amount
        delta.postings += postings


async def apply(session: AsyncSession, tenant: Tenant, change: TotalsChange) -> None:
    """Add the deltas to their rows under a row lock, creating missing rows first."""
    deltas = {key: delta for key, delta in change.deltas.items() if delta.amount or delta.postings}
    if not deltas:
        return
    cipher = tenant.cipher
    insert = dialect_insert(session)
    fresh = []
    for target, month, currency in sorted(deltas, key=lambda k: (k[0].hex, k[1], k[2])):
        row_id = uuid.uuid4()
        fresh.append(
            {
                "id": row_id,
                "workspace_id": tenant.workspace_id,
                "target_id": target,
                "month": month,
                "currency": currency,
                "amount_enc": cipher.seal_int(0, TABLE, "amount", row_id),
                "postings": 0,
            }
        )
    await session.execute(insert(MonthTotal).on_conflict_do_nothing(), fresh)
    repository = LedgerRepository(session, tenant.workspace_id)
    rows = await repository.month_totals(
        {key[0] for key in deltas},
        month_from=min(key[1] for key in deltas),
        month_to=max(key[1] for key in deltas),
        lock=True,
    )
    updates = []
    for row in rows:
        delta = deltas.get((row.target_id, row.month, row.currency))
        if delta is None:
            continue
        amount = cipher.open_int(row.amount_enc, TABLE, "amount", row.id) + delta.amount
        updates.append(
            {
                "row_id": row.id,
                "new_amount": cipher.seal_int(amount, TABLE, "amount", row.id),
                "new_postings": row.postings + delta.postings,
            }
        )
    table = MonthTotal.__table__  # type: ignore[attr-defined]
    await session.execute(
        update(table)
        .where(table.c.id == bindparam("row_id"))
        .values(amount_enc=bindparam("new_amount"), postings=bindparam("new_postings")),
        updates,
    )


@dataclass(frozen=True)
class MonthAmount:
    target_id: uuid.UUID
    month: int
    currency: str
    amount: int
    postings: int


async def read(
    session: AsyncSession,
    tenant: Tenant,
    target_ids: Iterable[uuid.UUID] | None = None,
    *,
    month_from: int | None = None,
    month_to: int | None = None,
) -> list[MonthAmount]:
    rows = await LedgerRepository(session, tenant.workspace_id).month_totals(
        target_ids, month_from=month_from, month_to=month_to
    )
    cipher = tenant.cipher
    return [
        MonthAmount(
            row.target_id,
            row.month,
            row.currency,
            cipher.open_int(row.amount_enc, TABLE, "amount", row.id),
            row.postings,
        )
        for row in rows
    ]
