"""One workspace's events for one subscriber: the outbox backlog, then the live stream, in
order and without duplicates, through any number of resyncs.

    async for envelope in workspace_stream(hub, engine, settings, workspace_id, since=41):
        ...  # seq 42, 43, ... exactly once each

The hub's contract (api/realtime/hub.py): subscribe first, then read the backlog from the
outbox, then the stream, dropping by sequence what the backlog already had; on `Resync`,
or when a live event skips a sequence, read the outbox again from the last one delivered.
Each outbox read is a short transaction of its own: a subscription holds no connection
while it waits.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from api.realtime.hub import Hub, RealtimeEvent, Resync, Subscription, workspace_channel
from domain.core.db import bind_scope, unit_of_work
from domain.core.errors import DomainError
from domain.core.settings import Settings
from domain.realtime import outbox
from domain.realtime.envelope import Envelope
from domain.realtime.models import OutboxHead


class SinceTooOld(DomainError):
    code = "SINCE_TOO_OLD"


async def current_seq(engine: AsyncEngine, workspace_id: uuid.UUID) -> int:
    """The last sequence number given out in the workspace (0 before its first event)."""
    async with unit_of_work(engine, write=False) as session:
        await bind_scope(session, workspace_id=workspace_id)
        seq = await session.scalar(
            select(col(OutboxHead.seq)).where(col(OutboxHead.workspace_id) == workspace_id)
        )
    return int(seq or 0)


async def _backlog(engine: AsyncEngine, workspace_id: uuid.UUID, after: int) -> list[Envelope]:
    async with unit_of_work(engine, write=False) as session:
        await bind_scope(session, workspace_id=workspace_id)
        return await outbox.events_since(session, workspace_id, after)


async def replay(
    engine: AsyncEngine,
    settings: Settings,
    workspace_id: uuid.UUID,
    after: int,
    *,
    strict: bool,
) -> AsyncIterator[Envelope]:
    """Every event after `after` that the outbox holds now, in order. `strict` (a client's
    own position): `SinceTooOld` when events after it were pruned already."""
    position = after
    while True:
        batch = await _backlog(engine, workspace_id, position)
        if not batch:
            return
        if strict and batch[0].seq > position + 1:
            raise SinceTooOld(
                f"Events after {position} are no longer kept "
                f"({settings.outbox_retention_days:g} days): reload, then subscribe "
                "without since",
                field="since",
            )
        strict = False
        for envelope in batch:
            if envelope.seq > position:
                position = envelope.seq
                yield envelope
        if len(batch) < outbox.MAX_REPLAY:
            return


def _envelope(event: RealtimeEvent) -> Envelope:
    return Envelope(
        workspace_id=event.workspace,
        seq=event.seq,
        type=event.type,
        data=event.data,
        at=datetime.fromisoformat(event.at),
    )


async def workspace_stream(
    hub: Hub,
    engine: AsyncEngine,
    settings: Settings,
    workspace_id: uuid.UUID,
    *,
    since: int | None = None,
    watch: Callable[[Subscription], object] | None = None,
    ready: Callable[[], object] | None = None,
) -> AsyncIterator[Envelope]:
    """Every event of the workspace after `since` (None: from now on), in sequence order.

    Raises `SinceTooOld` when events after `since` were already pruned from the outbox, and
    lets the hub's `SubscriptionClosed` through (the connection closes with its code).
    `watch` sees the hub subscription first: a caller whose consumer may block elsewhere
    (a WebSocket send) can wait for the hub to close it. `ready` is called once the stream
    is live and its starting position known, before the first event."""
    if since is not None and since < 0:
        raise SinceTooOld("since is a sequence number: 0 or more", field="since")
    async with hub.subscribe(workspace_channel(settings, workspace_id)) as live:
        if watch is not None:
            watch(live)
        position = since if since is not None else await current_seq(engine, workspace_id)
        strict = since is not None  # only a client's own position can be too old
        if ready is not None:
            ready()

        async def catch_up() -> AsyncIterator[Envelope]:
            nonlocal position, strict
            async for envelope in replay(engine, settings, workspace_id, position, strict=strict):
                position = envelope.seq
                yield envelope
            strict = False

        async for envelope in catch_up():
            yield envelope
        strict = False
        async for item in live:
            if isinstance(item, Resync):
                async for envelope in catch_up():
                    yield envelope
                continue
            if item.workspace != workspace_id or item.seq <= position:
                continue  # already delivered (backlog, or a relay that published twice)
            if item.seq > position + 1:  # a gap: what is missing is in the outbox
                async for envelope in catch_up():
                    yield envelope
                continue
            position = item.seq
            yield _envelope(item)
