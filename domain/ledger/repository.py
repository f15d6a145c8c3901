"""Queries of the ledger, every one scoped to the repository's workspace."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import and_, exists, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from domain.ledger.models import (
    Account,
    Category,
    CategoryKind,
    FxRate,
    MonthTotal,
    Posting,
    Tag,
    Transaction,
    TransactionTag,
)


class LedgerRepository:
    def __init__(self, session: AsyncSession, workspace_id: uuid.UUID) -> None:
        self.session = session
        self.workspace_id = workspace_id

    async def _all(self, statement: Any) -> list[Any]:
        return list((await self.session.execute(statement)).scalars())

    async def account(self, account_id: uuid.UUID) -> Account | None:
        found = await self.accounts_by_ids([account_id])
        return found[0] if found else None

    async def accounts(self, *, include_archived: bool = True) -> list[Account]:
        statement = select(Account).where(Account.workspace_id == self.workspace_id)
        if not include_archived:
            statement = statement.where(col(Account.archived).is_(False))
        return await self._all(statement.order_by(col(Account.created_at), col(Account.id)))

    async def accounts_by_ids(self, ids: Iterable[uuid.UUID]) -> list[Account]:
        ids = list(ids)
        if not ids:
            return []
        return await self._all(
            select(Account).where(
                Account.workspace_id == self.workspace_id, col(Account.id).in_(list(ids))
            )
        )

    async def categories(self) -> list[Category]:
        return await self._all(
            select(Category)
            .where(Category.workspace_id == self.workspace_id)
            .order_by(col(Category.kind), col(Category.name))
        )

    async def category_tree(self) -> list[tuple[uuid.UUID, uuid.UUID | None]]:
        """(id, parent id) of every category: enough to expand a filter to subcategories."""
        result = await self.session.execute(
            select(col(Category.id), col(Category.parent_id)).where(
                Category.workspace_id == self.workspace_id
            )
        )
        return [(row[0], row[1]) for row in result.all()]

    async def category(self, category_id: uuid.UUID) -> Category | None:
        found = await self.categories_by_ids([category_id])
        return found[0] if found else None

    async def categories_by_ids(self, ids: Iterable[uuid.UUID]) -> list[Category]:
        ids = list(ids)
        if not ids:
            return []
        return await self._all(
            select(Category).where(
                Category.workspace_id == self.workspace_id, col(Category.id).in_(list(ids))
            )
        )

    async def exchange_category(self) -> Category | None:
        found = await self._all(
            select(Category).where(
                Category.workspace_id == self.workspace_id,
                Category.kind == CategoryKind.EXCHANGE.value,
            )
        )
        return found[0] if found else None

    async def transaction(
        self, transaction_id: uuid.UUID, *, lock: bool = False
    ) -> Transaction | None:
        statement = select(Transaction).where(
            Transaction.workspace_id == self.workspace_id, Transaction.id == transaction_id
        )
        if lock:
            statement = statement.with_for_update()
        found = await self._all(statement)
        return found[0] if found else None

    async def transactions_by_ids(self, ids: Iterable[uuid.UUID]) -> list[Transaction]:
        return await self._all(
            select(Transaction).where(
                Transaction.workspace_id == self.workspace_id, col(Transaction.id).in_(list(ids))
            )
        )

    async def postings_of(self, transaction_ids: Iterable[uuid.UUID]) -> list[Posting]:
        return await self._all(
            select(Posting)
            .where(
                Posting.workspace_id == self.workspace_id,
                col(Posting.transaction_id).in_(list(transaction_ids)),
            )
            .order_by(col(Posting.transaction_id), col(Posting.position))
        )

    async def tags(self) -> list[Tag]:
        return await self._all(
            select(Tag).where(Tag.workspace_id == self.workspace_id).order_by(col(Tag.name))
        )

    async def tags_by_names(self, names: Iterable[str]) -> list[Tag]:
        return await self._all(
            select(Tag).where(Tag.workspace_id == self.workspace_id, col(Tag.name).in_(list(names)))
        )

    async def tags_by_ids(self, ids: Iterable[uuid.UUID]) -> list[Tag]:
        ids = list(ids)
        if not ids:
            return []
        return await self._all(
            select(Tag).where(Tag.workspace_id == self.workspace_id, col(Tag.id).in_(list(ids)))
        )

    async def tag_links_of(
        self, transaction_ids: Iterable[uuid.UUID]
    ) -> list[tuple[uuid.UUID, Tag]]:
        result = await self.session.execute(
            select(TransactionTag.transaction_id, Tag)
            .join(Tag, col(Tag.id) == col(TransactionTag.tag_id))
            .where(
                TransactionTag.workspace_id == self.workspace_id,
                col(TransactionTag.transaction_id).in_(list(transaction_ids)),
            )
            .order_by(col(Tag.name))
        )
        return [(row[0], row[1]) for row in result.all()]

    async def month_totals(
        self,
        target_ids: Iterable[uuid.UUID] | None = None,
        *,
        month_from: int | None = None,
        month_to: int | None = None,
        lock: bool = False,
    ) -> list[Any]:
        """Rows (id, target_id, month, currency, amount_enc, postings): columns, not ORM
        objects, since balances and reports read hundreds of them per request."""
        columns: list[Any] = [
            col(MonthTotal.id),
            col(MonthTotal.target_id),
            col(MonthTotal.month),
            col(MonthTotal.currency),
            col(MonthTotal.amount_enc),
            col(MonthTotal.postings),
        ]
        statement = select(*columns).where(col(MonthTotal.workspace_id) == self.workspace_id)
        if target_ids is not None:
            statement = statement.where(col(MonthTotal.target_id).in_(list(target_ids)))
        if month_from is not None:
            statement = statement.where(col(MonthTotal.month) >= month_from)
        if month_to is not None:
            statement = statement.where(col(MonthTotal.month) <= month_to)
        if lock:
            statement = statement.order_by(col(MonthTotal.id)).with_for_update()
        return list((await self.session.execute(statement)).all())

    async def posting_amounts_between(
        self,
        date_from: dt.date,
        date_to: dt.date,
        category_ids: Sequence[uuid.UUID],
        *,
        with_payee: bool = False,
    ) -> list[Any]:
        """Rows of (id, category_id, date, currency, amount_enc[, transaction_id, payee_enc,
        account_id]): plain columns, no ORM objects, because a period scan may touch every
        posting. `account_id` is the account the transaction is about."""
        columns: list[Any] = [
            col(Posting.id),
            col(Posting.category_id),
            col(Posting.date),
            col(Posting.currency),
            col(Posting.amount_enc),
        ]
        statement = select(*columns)
        if with_payee:
            statement = statement.add_columns(
                col(Transaction.id), col(Transaction.payee_enc), col(Transaction.account_id)
            ).join(Transaction, col(Transaction.id) == col(Posting.transaction_id))
        statement = statement.where(
            col(Posting.workspace_id) == self.workspace_id,
            col(Posting.date) >= date_from,
            col(Posting.date) <= date_to,
            col(Posting.category_id).in_(list(category_ids)),
        )
        return list((await self.session.execute(statement)).all())

    async def posting_transactions_between(
        self, date_from: dt.date, date_to: dt.date, category_ids: Sequence[uuid.UUID]
    ) -> list[Any]:
        """Rows of (transaction_id, category_id, date) of the postings on these categories:
        which transactions a period's category sums come from, with nothing to decrypt."""
        statement = select(
            col(Posting.transaction_id), col(Posting.category_id), col(Posting.date)
        ).where(
            col(Posting.workspace_id) == self.workspace_id,
            col(Posting.date) >= date_from,
            col(Posting.date) <= date_to,
            col(Posting.category_id).in_(list(category_ids)),
        )
        return list((await self.session.execute(statement)).all())

    async def transaction_page(
        self,
        *,
        limit: int,
        after: tuple[dt.date, uuid.UUID] | None,
        account_ids: Sequence[uuid.UUID] = (),
        category_ids: Sequence[uuid.UUID] = (),
        tag_ids: Sequence[uuid.UUID] = (),
        date_from: dt.date | None = None,
        date_to: dt.date | None = None,
    ) -> list[Transaction]:
        """Newest first, keyset-paginated on (date, id)."""
        conditions: list[Any] = [Transaction.workspace_id == self.workspace_id]
        if after is not None:
            conditions.append(tuple_(col(Transaction.date), col(Transaction.id)) < tuple_(*after))
        if date_from is not None:
            conditions.append(col(Transaction.date) >= date_from)
        if date_to is not None:
            conditions.append(col(Transaction.date) <= date_to)
        if account_ids:
            conditions.append(
                exists().where(
                    col(Posting.transaction_id) == col(Transaction.id),
                    col(Posting.account_id).in_(list(account_ids)),
                )
            )
        if category_ids:
            conditions.append(
                exists().where(
                    col(Posting.transaction_id) == col(Transaction.id),
                    col(Posting.category_id).in_(list(category_ids)),
                )
            )
        if tag_ids:
            conditions.append(
                exists().where(
                    col(TransactionTag.transaction_id) == col(Transaction.id),
                    col(TransactionTag.tag_id).in_(list(tag_ids)),
                )
            )
        return await self._all(
            select(Transaction)
            .where(and_(*conditions))
            .order_by(col(Transaction.date).desc(), col(Transaction.id).desc())
            .limit(limit)
        )

    async def all_fx_rates(self) -> list[FxRate]:
        return await self._all(
            select(FxRate)
            .where(FxRate.workspace_id == self.workspace_id)
            .order_by(col(FxRate.base), col(FxRate.quote), col(FxRate.date))
        )

    async def fx_rate_on(self, base: str, quote: str, on: dt.date) -> FxRate | None:
        found = await self._all(
            select(FxRate).where(
                FxRate.workspace_id == self.workspace_id,
                FxRate.base == base,
                FxRate.quote == quote,
                FxRate.date == on,
            )
        )
        return found[0] if found else None
