"""The relay: publish committed outbox events in (workspace, seq) order, then mark them.

At-least-once: a relay that dies after publishing and before marking publishes the same
events again when it restarts; subscribers drop what they already saw by seq. Per
workspace, events commit in seq order (the head row lock), so every round publishes a
prefix of what is pending and a channel never skips ahead.

A round starts on a commit that emitted: in this process through the session hook, and on
PostgreSQL in any process through LISTEN on `ww_outbox` (migration 0011 notifies it once per
committing transaction that appended events). Every `poll_seconds` a round runs anyway, so a
notification lost with its connection costs at most one poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from domain.core.db import unit_of_work
from domain.core.models import utcnow
from domain.core.settings import Settings
from domain.realtime import outbox
from domain.realtime.envelope import CHANNEL_PREFIX, channel_for, encode
from domain.realtime.models import OutboxEvent

logger = logging.getLogger(__name__)

Publish = Callable[[str, str], Awaitable[Any]]

# One relay round at a time across every process (pg_try_advisory_xact_lock's key).
RELAY_LOCK = 0x5757_4F42_5245_4C59 & 0x7FFF_FFFF_FFFF_FFFF
DEFAULT_BATCH = 500
NOTIFY_CHANNEL = "ww_outbox"  # migration 0011's trigger notifies it
LISTEN_CHECK_SECONDS = 30.0  # a quiet listening connection is asked whether it still lives
LISTEN_RETRY_SECONDS = 0.5  # a lost one is replaced after this, doubling while that fails


async def relay_once(
    engine: AsyncEngine,
    publish: Publish,
    *,
    batch: int = DEFAULT_BATCH,
    channel_prefix: str = CHANNEL_PREFIX,
) -> int:
    """Publish up to `batch` pending events, then mark them published; returns how many.

    If `publish` raises an Exception, the events published before it are marked and the
    error is raised: the failed one (and everything after it) goes out again next round.
    Killed or cancelled mid-round, nothing of the round is marked: all of it goes again.
    """
    if engine.dialect.name == "postgresql":
        return await _relay_postgresql(engine, publish, batch, channel_prefix)
    return await _relay_sqlite(engine, publish, batch, channel_prefix)


async def _publish_all(
    rows: Sequence[Any], publish: Publish, published: list[uuid.UUID], channel_prefix: str
) -> Exception | None:
    """Publish in order, collecting ids; stop at the first error and return it, so the
    caller marks what went out. Anything else (cancellation, a kill) marks nothing."""
    for row in rows:
        envelope = outbox.envelope_of(row)
        try:
            await publish(channel_for(envelope.workspace_id, channel_prefix), encode(envelope))
        except Exception as error:
            return error
        published.append(uuid.UUID(str(row.id)))
    return None


async def _relay_postgresql(
    engine: AsyncEngine, publish: Publish, batch: int, channel_prefix: str
) -> int:
    # The API's role sees one workspace per transaction: owner-defined functions
    # (migration 0007) list pending events of every workspace and mark them by id.
    published: list[uuid.UUID] = []
    async with unit_of_work(engine) as session:
        locked = await session.execute(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": RELAY_LOCK}
        )
        if not locked.scalar_one():
            return 0  # another relay is in a round; its marks will show on our next one
        rows = (
            await session.execute(
                text(
                    "SELECT id, workspace_id, seq, type, data, occurred_at"
                    " FROM ww_outbox_pending(:batch)"
                ),
                {"batch": batch},
            )
        ).all()
        failure = await _publish_all(rows, publish, published, channel_prefix)
        if published:
            await session.execute(text("SELECT ww_outbox_mark_published(:ids)"), {"ids": published})
    if failure is not None:
        raise failure
    return len(published)


async def _relay_sqlite(
    engine: AsyncEngine, publish: Publish, batch: int, channel_prefix: str
) -> int:
    async with unit_of_work(engine, write=False) as session:
        rows = (
            await session.execute(
                select(OutboxEvent)
                .where(col(OutboxEvent.published_at).is_(None))
                .order_by(col(OutboxEvent.workspace_id), col(OutboxEvent.seq))
                .limit(batch)
            )
        ).scalars()
        pending = list(rows)
    published: list[uuid.UUID] = []
    failure = await _publish_all(pending, publish, published, channel_prefix)
    if published:
        async with unit_of_work(engine) as session:
            await session.execute(
                update(OutboxEvent)
                .where(col(OutboxEvent.id).in_(published))
                .values(published_at=utcnow())
            )
    if failure is not None:
        raise failure
    return len(published)


def backoff(base: float, failures: int, cap: float) -> float:
    """`base` doubled per consecutive failure, at most `cap` (before jitter). The exponent
    is bounded: 2.0**1024 overflows a float, which a long outage would otherwise reach."""
    return min(cap, base * 2.0 ** min(failures, 32))


class Relay:
    """Runs `relay_once` until stopped: again at once while a full batch came back, else
    on a wake-up (a commit that emitted: in this process, or on PostgreSQL in any process)
    or every `poll_seconds`. Errors back off exponentially (with jitter) up to
    `max_backoff_seconds`."""

    def __init__(
        self,
        engine: AsyncEngine,
        publish: Publish,
        *,
        poll_seconds: float = 0.2,
        batch: int = DEFAULT_BATCH,
        max_backoff_seconds: float = 30.0,
        channel_prefix: str = CHANNEL_PREFIX,
    ) -> None:
        self.engine = engine
        self.channel_prefix = channel_prefix
        self.publish = publish
        self.poll_seconds = poll_seconds
        self.batch = batch
        self.max_backoff_seconds = max_backoff_seconds
        self.published = 0
        self.failures = 0  # consecutive
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self.listening = False  # LISTEN is in place (PostgreSQL)
        self.listens = 0  # how many times it was put in place (1 + reconnects)

    @classmethod
    def from_settings(cls, engine: AsyncEngine, publish: Publish, settings: Settings) -> Relay:
        return cls(
            engine,
            publish,
            poll_seconds=settings.outbox_poll_seconds,
            batch=settings.outbox_batch,
            channel_prefix=settings.realtime_channel_prefix,
            # Capped like the hub's reconnects: after a long Redis outage a 30 s backoff
            # would hold back events committed once Redis is back.
            max_backoff_seconds=settings.realtime_reconnect_max_seconds,
        )

    def wake(self) -> None:
        """Run a round now (safe from any thread)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wakeup.set)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        stop_listening = outbox.on_commit_with_events(self.wake)
        listener = (
            asyncio.create_task(self._listen(), name="outbox-listen")
            if self.engine.dialect.name == "postgresql"
            else None
        )
        try:
            while not self._stopping:
                self._wakeup.clear()  # before reading: a commit during the round re-arms it
                try:
                    sent = await relay_once(
                        self.engine,
                        self.publish,
                        batch=self.batch,
                        channel_prefix=self.channel_prefix,
                    )
                except Exception:
                    self.failures += 1
                    delay = backoff(self.poll_seconds, self.failures, self.max_backoff_seconds)
                    logger.warning("outbox_relay_failed", exc_info=True, extra={"retry_in": delay})
                    await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                    continue
                self.failures = 0
                self.published += sent
                if sent >= self.batch:
                    continue
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel
                # that lands as the event fires, and stop() would then wait forever.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_seconds):
                        await self._wakeup.wait()
        finally:
            stop_listening()
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
            self._loop = None

    async def _listen(self) -> None:
        """LISTEN on a connection of its own, for as long as the relay runs: every
        notification starts a round. A connection that fails or is lost is replaced after
        a backoff; meanwhile the poll goes on, so events are late, never lost."""
        failures = 0
        while True:
            try:
                await self._listen_once()
                failures = 0  # it was in place, then the connection went
            except Exception:
                failures += 1
                logger.warning("outbox_listen_failed", exc_info=True)
            finally:
                self.listening = False
            delay = backoff(LISTEN_RETRY_SECONDS, failures, self.max_backoff_seconds)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))

    async def _listen_once(self) -> None:
        # A pool connection (so every connect setting applies), taken out of the pool at
        # once: one holding a listener must never be handed to a request.
        raw = await self.engine.raw_connection()
        connection = raw.driver_connection
        raw.detach()
        assert connection is not None
        lost = asyncio.Event()
        try:
            connection.add_termination_listener(lambda _connection: lost.set())
            async with asyncio.timeout(LISTEN_CHECK_SECONDS):  # a dead link could hang it
                await connection.add_listener(NOTIFY_CHANNEL, self._notified)
            self.listening = True
            self.listens += 1
            self._wakeup.set()  # what committed before LISTEN took effect
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(LISTEN_CHECK_SECONDS):
                        await lost.wait()
                if not lost.is_set():  # a quiet connection may be a dead one: ask it
                    await connection.fetchval("SELECT 1", timeout=LISTEN_CHECK_SECONDS)
        finally:
            connection.terminate()

    def _notified(self, *_args: Any) -> None:
        self._wakeup.set()

    def start(self) -> asyncio.Task[None]:
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self.run(), name="outbox-relay")
        return self._task

    async def stop(self) -> None:
        if self._task is None:
            return
        self._stopping = True  # ends the loop even if a cancel were lost
        self._wakeup.set()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
