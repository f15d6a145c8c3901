"""Queries of the audit context."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime

from sqlalchemy import func, insert, text, union, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from domain.audit.models import GENESIS, AuditCheckpoint, AuditEvent, AuditHead
from domain.core.db import dialect_insert

PAGE = 1000


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_head(self, workspace_id: uuid.UUID) -> tuple[int, str]:
        """The chain's head (seq, hash) under a row lock; created at seq 0 if missing."""
        locked = await self._head(workspace_id, lock=True)
        if locked is None:
            insert = dialect_insert(self.session)
            await self.session.execute(
                insert(AuditHead)
                .values(workspace_id=workspace_id, seq=0, hash=GENESIS)
                .on_conflict_do_nothing()
            )
            locked = await self._head(workspace_id, lock=True)
            assert locked is not None
        return locked

    async def head(self, workspace_id: uuid.UUID) -> tuple[int, str] | None:
        return await self._head(workspace_id, lock=False)

    async def _head(self, workspace_id: uuid.UUID, *, lock: bool) -> tuple[int, str] | None:
        query = select(col(AuditHead.seq), col(AuditHead.hash)).where(
            AuditHead.workspace_id == workspace_id
        )
        row = (await self.session.execute(query.with_for_update() if lock else query)).first()
        return None if row is None else (row[0], row[1])

    async def add_event(self, event: AuditEvent) -> None:
        # A Core INSERT: the hot path of every audited read, without the ORM's flush.
        await self.session.execute(insert(AuditEvent).values(**event.model_dump()))

    async def move_head(self, workspace_id: uuid.UUID, seq: int, hash: str) -> None:
        await self.session.execute(
            update(AuditHead)
            .where(col(AuditHead.workspace_id) == workspace_id)
            .values(seq=seq, hash=hash)
        )

    async def checkpoint_at(self, workspace_id: uuid.UUID, seq: int) -> AuditCheckpoint | None:
        result = await self.session.execute(
            select(AuditCheckpoint).where(
                AuditCheckpoint.workspace_id == workspace_id, AuditCheckpoint.seq == seq
            )
        )
        return result.scalars().first()

    async def checkpoints(self, workspace_id: uuid.UUID) -> list[AuditCheckpoint]:
        result = await self.session.execute(
            select(AuditCheckpoint)
            .where(AuditCheckpoint.workspace_id == workspace_id)
            .order_by(col(AuditCheckpoint.seq))
        )
        return list(result.scalars())

    async def unsealed_chains(self) -> list[uuid.UUID]:
        """Chains whose head moved past their newest checkpoint (or that have none)."""
        if self.session.get_bind().dialect.name == "postgresql":
            # The API role sees one workspace per transaction (row-level security): this
            # owner-defined function lists chain ids and nothing else (migration 0006).
            found = await self.session.execute(text("SELECT ww_audit_chains_to_seal()"))
            return [uuid.UUID(str(value)) for value in found.scalars()]
        sealed = (
            select(func.max(AuditCheckpoint.seq))
            .where(col(AuditCheckpoint.workspace_id) == col(AuditHead.workspace_id))
            .scalar_subquery()
        )
        result = await self.session.execute(
            select(col(AuditHead.workspace_id))
            .where(AuditHead.seq > func.coalesce(sealed, 0))
            .order_by(col(AuditHead.workspace_id))
        )
        return list(result.scalars())

    async def chain_ids(self) -> list[uuid.UUID]:
        """Every chain any table knows of: heads and checkpoints witness deleted events."""
        query = union(
            select(col(AuditEvent.workspace_id)).distinct(),
            select(col(AuditHead.workspace_id)),
            select(col(AuditCheckpoint.workspace_id)).distinct(),
        )
        found = {uuid.UUID(str(value)) for value in (await self.session.execute(query)).scalars()}
        return sorted(found)

    async def events(self, workspace_id: uuid.UUID) -> AsyncIterator[AuditEvent]:
        """The chain in seq order, a page at a time."""
        after = -1
        while True:
            result = await self.session.execute(
                select(AuditEvent)
                .where(AuditEvent.workspace_id == workspace_id, AuditEvent.seq > after)
                .order_by(col(AuditEvent.seq))
                .limit(PAGE)
            )
            page = list(result.scalars())
            for event in page:
                yield event
            if len(page) < PAGE:
                return
            after = page[-1].seq
            self.session.expunge_all()

    async def page(
        self,
        workspace_id: uuid.UUID,
        *,
        first: int,
        before_event: uuid.UUID | None = None,
        action: str | None = None,
        actor_id: uuid.UUID | None = None,
        since: datetime | None = None,
    ) -> list[AuditEvent]:
        """Newest first; `first + 1` rows so the caller can tell whether more follow."""
        query = select(AuditEvent).where(AuditEvent.workspace_id == workspace_id)
        if before_event is not None:
            position = (
                select(col(AuditEvent.seq))
                .where(AuditEvent.workspace_id == workspace_id, AuditEvent.id == before_event)
                .scalar_subquery()
            )
            query = query.where(col(AuditEvent.seq) < position)
        if action is not None:
            query = query.where(AuditEvent.action == action)
        if actor_id is not None:
            query = query.where(AuditEvent.actor_id == actor_id)
        if since is not None:
            query = query.where(col(AuditEvent.occurred_at) >= since)
        result = await self.session.execute(
            query.order_by(col(AuditEvent.seq).desc()).limit(first + 1)
        )
        return list(result.scalars())
