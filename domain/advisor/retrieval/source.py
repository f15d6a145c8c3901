"""Where the in-memory BM25 side reads its documents from: the ledger, decrypted under the
workspace's key, plus the outbox events since the last read (so every process stays fresh,
whichever worker ran the indexing task)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col, select

from domain.advisor.retrieval.documents import (
    TransactionDocument,
    documents_by_ids,
    workspace_documents,
)
from domain.core.crypto import SYSTEM_OWNER
from domain.core.db import bind_scope, unit_of_work
from domain.core.errors import NotFound
from domain.core.keys import Keyring
from domain.core.tenancy import Tenant
from domain.identity.models import Workspace
from domain.realtime import outbox
from domain.realtime.envelope import Envelope
from domain.realtime.events import EventType
from domain.realtime.models import OutboxHead

TRANSACTION_EVENTS = frozenset(
    {EventType.TRANSACTION_POSTED, EventType.TRANSACTION_EDITED, EventType.TRANSACTION_DELETED}
)


@dataclass(frozen=True)
class Changes:
    documents: list[TransactionDocument]  # posted or edited, as they are now
    removed: list[uuid.UUID]
    seq: int


def changed_transactions(events: Iterable[Envelope]) -> dict[uuid.UUID, list[uuid.UUID]]:
    """The transactions that transaction.* events touched, per workspace, in order: what
    the `advisor.index_transactions` task takes (one call per workspace)."""
    found: dict[uuid.UUID, dict[uuid.UUID, None]] = {}
    for event in events:
        if event.type in TRANSACTION_EVENTS:
            touched = found.setdefault(event.workspace_id, {})
            touched[uuid.UUID(event.data["transaction"])] = None
    return {workspace: list(ids) for workspace, ids in found.items()}


class WorkspaceSource(Protocol):
    async def load(self, workspace_id: uuid.UUID) -> tuple[list[TransactionDocument], int]:
        """Every document of the workspace and the outbox seq they are current to."""

    async def changes(self, workspace_id: uuid.UUID, since: int) -> Changes | None:
        """What changed after `since`; None when events were pruned (load again)."""


async def indexing_tenant(
    session: AsyncSession, keyring: Keyring, workspace_id: uuid.UUID
) -> Tenant:
    """A read-only tenant for the indexer: the workspace's key, acting for no user."""
    await bind_scope(session, workspace_id=workspace_id)
    workspace = await session.get(Workspace, workspace_id)
    if workspace is None:
        raise NotFound("Workspace not found")
    cipher = await keyring.cipher(session, workspace_id)
    return Tenant(workspace_id, workspace.base_currency, cipher, SYSTEM_OWNER, "viewer")


async def outbox_head(session: AsyncSession, workspace_id: uuid.UUID) -> int:
    result = await session.execute(
        select(col(OutboxHead.seq)).where(col(OutboxHead.workspace_id) == workspace_id)
    )
    return int(result.scalar_one_or_none() or 0)


async def changes_since(session: AsyncSession, tenant: Tenant, since: int) -> Changes | None:
    touched: dict[uuid.UUID, None] = {}
    seq = since
    while True:
        events = await outbox.events_since(session, tenant.workspace_id, seq)
        if not events:
            break
        if events[0].seq != seq + 1:
            return None
        for transaction_id in changed_transactions(events).get(tenant.workspace_id, []):
            touched[transaction_id] = None
        seq = events[-1].seq
    documents = await documents_by_ids(session, tenant, touched) if touched else []
    present = {doc.transaction_id for doc in documents}
    return Changes(documents, [i for i in touched if i not in present], seq)


class LedgerSource:
    """Reads through short read-only sessions of its own, scoped to the workspace."""

    def __init__(self, engine: AsyncEngine, keyring: Keyring) -> None:
        self.engine = engine
        self.keyring = keyring

    async def load(self, workspace_id: uuid.UUID) -> tuple[list[TransactionDocument], int]:
        async with unit_of_work(self.engine, write=False) as session:
            tenant = await indexing_tenant(session, self.keyring, workspace_id)
            # The head first: events after it are applied again later, which is harmless.
            seq = await outbox_head(session, workspace_id)
            documents = [doc async for page in workspace_documents(session, tenant) for doc in page]
            return documents, seq

    async def changes(self, workspace_id: uuid.UUID, since: int) -> Changes | None:
        async with unit_of_work(self.engine, write=False) as session:
            await bind_scope(session, workspace_id=workspace_id)
            if await outbox_head(session, workspace_id) == since:
                return Changes([], [], since)
            tenant = await indexing_tenant(session, self.keyring, workspace_id)
            return await changes_since(session, tenant, since)
