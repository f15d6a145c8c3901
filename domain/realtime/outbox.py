"""The transactional outbox: `emit` appends events in the caller's transaction, so they
commit (or roll back) with the change they announce; the relay publishes them later.

Services never commit. A commit that emitted wakes the in-process relay (see
`on_commit_with_events`); relays elsewhere (the worker) find the events by polling.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, event, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session, SessionTransaction
from sqlmodel import col

from domain.core.db import dialect_insert, unit_of_work
from domain.core.models import as_utc, utcnow
from domain.core.settings import Settings
from domain.realtime.envelope import Envelope
from domain.realtime.events import EVENT_FIELDS, EventType
from domain.realtime.models import OutboxEvent, OutboxHead

EMITTED = "wealthwise_outbox_emitted"
INSERT_BATCH = 2_000
MAX_REPLAY = 1_000
PRUNE_BATCH = 5_000

EventDraft = tuple[EventType, Mapping[str, Any]]


class EventDataError(ValueError):
    """Event data with a field its type does not allow, or a value that is not plain."""


def _check(event_type: EventType, data: Mapping[str, Any]) -> str:
    allowed = EVENT_FIELDS[event_type]
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise EventDataError(f"{event_type} events carry no {', '.join(unknown)}")
    for name, value in data.items():
        values = value if isinstance(value, list) else [value]
        if not all(v is None or isinstance(v, str | int | bool) for v in values):
            raise EventDataError(f"{event_type}.{name} must be ids, dates or flags")
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


async def emit(
    session: AsyncSession, workspace_id: uuid.UUID, event_type: EventType, data: Mapping[str, Any]
) -> int:
    """Append one event in the caller's transaction; returns its seq."""
    return (await emit_many(session, workspace_id, [(event_type, data)]))[0]


async def emit_many(
    session: AsyncSession, workspace_id: uuid.UUID, events: Sequence[EventDraft]
) -> list[int]:
    """Append events in order, with contiguous seqs, in bulk inserts (one head lock).

    The head row stays locked until the caller's transaction ends: per workspace, events
    commit in seq order, so a relay never sees seq n+1 before n.
    """
    bodies = [(event_type, _check(event_type, data)) for event_type, data in events]
    if not bodies:
        return []
    last = await _advance_head(session, workspace_id, len(bodies))
    first = last - len(bodies) + 1
    now = utcnow()
    rows = [
        {
            "id": uuid.uuid4(),
            "workspace_id": workspace_id,
            "seq": first + offset,
            "type": event_type.value,
            "data": body,
            "occurred_at": now,
            "published_at": None,
        }
        for offset, (event_type, body) in enumerate(bodies)
    ]
    table = OutboxEvent.__table__  # type: ignore[attr-defined]
    for start in range(0, len(rows), INSERT_BATCH):
        await session.execute(table.insert(), rows[start : start + INSERT_BATCH])
    session.info[EMITTED] = True
    return list(range(first, last + 1))


async def _advance_head(session: AsyncSession, workspace_id: uuid.UUID, count: int) -> int:
    """Move the workspace's head by `count` under its row lock; returns the new head.

    UPDATE ... RETURNING takes the same row lock as SELECT ... FOR UPDATE in one statement
    (the hot path of every ledger write); a workspace's first event creates the row.
    """
    table = OutboxHead.__table__  # type: ignore[attr-defined]
    move = (
        update(table)
        .where(table.c.workspace_id == workspace_id)
        .values(seq=table.c.seq + count)
        .returning(table.c.seq)
    )
    moved = (await session.execute(move)).scalar_one_or_none()
    if moved is None:
        insert = dialect_insert(session)
        await session.execute(
            insert(table).values(workspace_id=workspace_id, seq=0).on_conflict_do_nothing()
        )
        moved = (await session.execute(move)).scalar_one()
    return int(moved)


def envelope_of(row: Any) -> Envelope:
    """An outbox row (ORM object or result row with the same names) as an envelope."""
    return Envelope(
        workspace_id=uuid.UUID(str(row.workspace_id)),
        seq=int(row.seq),
        type=str(row.type),
        data=json.loads(row.data),
        at=as_utc(row.occurred_at),
    )


async def events_since(
    session: AsyncSession, workspace_id: uuid.UUID, seq: int, limit: int = MAX_REPLAY
) -> list[Envelope]:
    """The workspace's committed events after `seq`, in order (a reconnecting client's
    replay). The caller binds the workspace's scope. Seqs are contiguous: if the first one
    returned is not `seq + 1`, the events in between were pruned and the client resyncs."""
    limit = max(1, min(limit, MAX_REPLAY))
    result = await session.execute(
        select(OutboxEvent)
        .where(col(OutboxEvent.workspace_id) == workspace_id, col(OutboxEvent.seq) > seq)
        .order_by(col(OutboxEvent.seq))
        .limit(limit)
    )
    return [envelope_of(row) for row in result.scalars()]


async def prune(engine: AsyncEngine, *, older_than: dt.timedelta, batch: int = PRUNE_BATCH) -> int:
    """Delete events published before now - `older_than`, `batch` rows per transaction.

    Never touches unpublished events; the heads keep seq monotonic. On PostgreSQL the
    API's role sees one workspace per transaction: an owner-defined function (migration
    0007) deletes across workspaces and returns only a count.
    """
    before = utcnow() - older_than
    deleted = 0
    while True:
        async with unit_of_work(engine) as session:
            if session.get_bind().dialect.name == "postgresql":
                found = await session.execute(
                    text("SELECT ww_outbox_prune(:before, :batch)"),
                    {"before": before, "batch": batch},
                )
                count = int(found.scalar_one())
            else:
                table = OutboxEvent.__table__  # type: ignore[attr-defined]
                old = (
                    select(table.c.id)
                    .where(table.c.published_at < before)
                    .order_by(table.c.published_at)
                    .limit(batch)
                )
                result = await session.execute(delete(table).where(table.c.id.in_(old)))
                count = int(result.rowcount)  # type: ignore[attr-defined]
        deleted += count
        if count < batch:
            return deleted


async def prune_expired(engine: AsyncEngine, settings: Settings) -> int:
    """The retention job: published events older than `outbox_retention_days` go."""
    return await prune(engine, older_than=dt.timedelta(days=settings.outbox_retention_days))


def on_commit_with_events(callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback` after every commit, in this process, whose transaction emitted.

    Returns a function that stops it. Sessions of any engine count: a spurious wake-up
    only costs the relay one query.
    """

    def after_commit(session: Session) -> None:
        if session.info.get(EMITTED):
            callback()

    event.listen(Session, "after_commit", after_commit)
    return lambda: event.remove(Session, "after_commit", after_commit)


@event.listens_for(Session, "after_transaction_end")
def _forget_emitted(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(EMITTED, None)
