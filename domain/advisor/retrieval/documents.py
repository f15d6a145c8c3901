"""What gets indexed for a transaction: its decrypted text (for BM25 and the embedder, in
memory only) and the ids and date it may be filtered by (the only things stored)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from domain.advisor.retrieval.port import day_number
from domain.core.tenancy import Tenant
from domain.ledger import transactions
from domain.ledger.models import Posting, Transaction
from domain.ledger.repository import LedgerRepository

PAGE = 2_000


@dataclass(frozen=True)
class TransactionDocument:
    transaction_id: uuid.UUID
    workspace_id: uuid.UUID
    date: int  # yyyymmdd
    account_ids: tuple[str, ...]
    category_ids: tuple[str, ...]
    text: str  # plaintext: never leaves the process

    def payload(self) -> dict[str, object]:
        """The vector index's payload: ids and the date, no text, no amounts."""
        return {
            "workspace_id": str(self.workspace_id),
            "date": self.date,
            "account_ids": list(self.account_ids),
            "category_ids": list(self.category_ids),
        }


def _document(tenant: Tenant, row: Transaction, postings: Sequence[Posting]) -> TransactionDocument:
    item = transactions.view(tenant, row)
    memos = [transactions.posting_view(tenant, posting).memo for posting in postings]
    parts = [item.payee, item.narration, item.notes, *memos]
    accounts = {str(row.account_id)} | {str(p.account_id) for p in postings if p.account_id}
    return TransactionDocument(
        transaction_id=row.id,
        workspace_id=row.workspace_id,
        date=day_number(row.date),
        account_ids=tuple(sorted(accounts)),
        category_ids=tuple(sorted({str(p.category_id) for p in postings if p.category_id})),
        text=" ".join(dict.fromkeys(part for part in parts if part)),
    )


async def _documents_of(
    session: AsyncSession, tenant: Tenant, rows: Sequence[Transaction]
) -> list[TransactionDocument]:
    repository = LedgerRepository(session, tenant.workspace_id)
    by_transaction: dict[uuid.UUID, list[Posting]] = defaultdict(list)
    for posting in await repository.postings_of(row.id for row in rows):
        by_transaction[posting.transaction_id].append(posting)
    return [_document(tenant, row, by_transaction[row.id]) for row in rows]


async def workspace_documents(
    session: AsyncSession, tenant: Tenant, page: int = PAGE
) -> AsyncIterator[list[TransactionDocument]]:
    """Every transaction of the tenant's workspace, newest first, a page at a time."""
    repository = LedgerRepository(session, tenant.workspace_id)
    after = None
    while True:
        rows = await repository.transaction_page(limit=page, after=after)
        if not rows:
            return
        yield await _documents_of(session, tenant, rows)
        if len(rows) < page:
            return
        after = (rows[-1].date, rows[-1].id)


async def documents_by_ids(
    session: AsyncSession, tenant: Tenant, ids: Iterable[uuid.UUID]
) -> list[TransactionDocument]:
    """The documents of those ids that still exist in the workspace (deleted ones: absent)."""
    repository = LedgerRepository(session, tenant.workspace_id)
    rows = await repository.transactions_by_ids(list(dict.fromkeys(ids)))
    return await _documents_of(session, tenant, rows)
