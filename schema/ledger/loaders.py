"""DataLoaders for every relation a list can reach: one query per relation per request."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from strawberry.dataloader import DataLoader

from domain.core.money import Money
from domain.ledger import accounts as accounts_service
from domain.ledger import transactions as tx_service
from domain.ledger.models import Account, Category, Tag
from domain.ledger.repository import LedgerRepository

if TYPE_CHECKING:
    from schema.context import RequestContext


class LedgerLoaders:
    def __init__(self, context: RequestContext) -> None:
        self.context = context
        self.account = DataLoader(self._accounts)
        self.category = DataLoader(self._categories)
        self.balance = DataLoader(self._balances)
        self.postings = DataLoader(self._postings)
        self.tags = DataLoader(self._tags)

    async def _accounts(self, ids: Sequence[uuid.UUID]) -> list[Account | None]:
        tenant = await self.context.tenant()
        async with self.context.db() as session:
            rows = await LedgerRepository(session, tenant.workspace_id).accounts_by_ids(ids)
        found = {row.id: row for row in rows}
        return [found.get(i) for i in ids]

    async def _categories(self, ids: Sequence[uuid.UUID]) -> list[Category | None]:
        tenant = await self.context.tenant()
        async with self.context.db() as session:
            rows = await LedgerRepository(session, tenant.workspace_id).categories_by_ids(ids)
        found = {row.id: row for row in rows}
        return [found.get(i) for i in ids]

    async def _balances(self, ids: Sequence[uuid.UUID]) -> list[Money | None]:
        tenant = await self.context.tenant()
        async with self.context.db() as session:
            rows = await LedgerRepository(session, tenant.workspace_id).accounts_by_ids(ids)
            found = await accounts_service.balances(session, tenant, rows)
        return [found.get(i) for i in ids]

    async def _postings(self, ids: Sequence[uuid.UUID]) -> list[list[tx_service.PostingView]]:
        tenant = await self.context.tenant()
        async with self.context.db() as session:
            grouped = await tx_service.postings_of(session, tenant, ids)
        return [grouped.get(i, []) for i in ids]

    async def _tags(self, ids: Sequence[uuid.UUID]) -> list[list[Tag]]:
        tenant = await self.context.tenant()
        async with self.context.db() as session:
            links = await LedgerRepository(session, tenant.workspace_id).tag_links_of(ids)
        grouped: dict[uuid.UUID, list[Tag]] = defaultdict(list)
        for transaction_id, tag in links:
            grouped[transaction_id].append(tag)
        return [grouped.get(i, []) for i in ids]
