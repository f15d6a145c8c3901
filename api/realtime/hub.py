"""The per-process fan-out hub: one pub/sub subscription per channel in use, shared by
every local subscriber, each with a bounded queue.

    hub = Hub(settings)
    await hub.start()                                   # lifespan start
    async with hub.subscribe(workspace_channel(settings, ws)) as stream:
        async for item in stream:                       # RealtimeEvent or Resync
            ...
    await hub.publish(channel, envelope_json)           # the relay's publish callable
    await hub.stop()                                    # lifespan end

Built on `broadcaster.Broadcast` through its `backend=` seam: Redis pub/sub with
`ReconnectingRedisBackend` when `redis_url` is set, broadcaster's memory backend otherwise.

Contract for the subscription layer: `subscribe()` returns once the channel's subscription
is live, so subscribe first, then read the backlog from the outbox, then the stream,
dropping events by sequence that the backlog already had. A `Resync` item means events may
have been lost (a pub/sub reconnect, or this subscriber fell a whole queue behind): read
the outbox again from the last sequence delivered. `SubscriptionClosed` (raised by the
stream; `wait_closed()` or an `on_closed` callback for a caller blocked elsewhere) carries
a reason whose `close_code` the client retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import structlog
from broadcaster import Broadcast, Event
from broadcaster._backends.base import BroadcastBackend
from broadcaster._backends.memory import MemoryBackend
from broadcaster._base import Unsubscribed

from api.realtime.redis_backend import HubUnavailable, ReconnectingRedisBackend, ResyncEvent
from domain.core.settings import Settings
from domain.realtime.envelope import EnvelopeError, channel_for, decode

log = structlog.get_logger(__name__)

__all__ = [
    "CloseReason",
    "Hub",
    "HubMetrics",
    "HubUnavailable",
    "RealtimeEvent",
    "Resync",
    "Subscription",
    "SubscriptionClosed",
    "decode_envelope",
    "workspace_channel",
]


@dataclass(frozen=True, slots=True)
class RealtimeEvent:
    """One outbox event, decoded from the envelope
    `{"v":1,"workspace":..,"seq":..,"type":..,"data":..,"at":..}`; shared by all subscribers."""

    workspace: uuid.UUID
    seq: int
    type: str
    data: Any
    at: str


@dataclass(frozen=True, slots=True)
class Resync:
    """Events may have been missed on `channel`: replay from the outbox, then carry on."""

    channel: str
    reason: str  # "reconnected" (pub/sub came back) or "overflow" (this subscriber lagged)


class CloseReason(enum.Enum):
    SLOW_CONSUMER = "slow_consumer"
    SHUTDOWN = "shutdown"

    @property
    def close_code(self) -> int:
        """WebSocket close code: 1013 Try Again Later, 1012 Service Restart; graphql-ws
        clients reconnect on both (and then resume with `since`)."""
        return 1013 if self is CloseReason.SLOW_CONSUMER else 1012


class SubscriptionClosed(Exception):
    def __init__(self, reason: CloseReason) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass(slots=True)
class HubMetrics:
    """Counters of one process; cheap to read (for /metrics later)."""

    subscribers: int = 0
    channels: int = 0
    connected: bool = True
    delivered: int = 0  # events queued to subscribers
    dropped: int = 0  # queued events discarded by an overflow or a resync
    resyncs: int = 0  # Resync markers handed to subscribers
    slow_consumers_closed: int = 0
    malformed: int = 0  # messages that were no valid envelope of their channel's workspace
    reconnects: int = 0  # Redis connections lost or attempts that failed


def workspace_channel(settings: Settings, workspace_id: uuid.UUID) -> str:
    """The pub/sub channel that carries one workspace's events (named by the envelope
    module, which the relay uses too)."""
    return channel_for(workspace_id, settings.realtime_channel_prefix)


def decode_envelope(raw: str) -> RealtimeEvent | None:
    """The event in a published envelope, or None when it is not a valid version-1 one."""
    try:
        envelope = decode(raw)
    except EnvelopeError:
        return None
    if envelope.seq < 0 or not envelope.type:
        return None
    return RealtimeEvent(
        workspace=envelope.workspace_id,
        seq=envelope.seq,
        type=envelope.type,
        data=envelope.data,
        at=envelope.at.isoformat(),
    )


class _Closed:
    __slots__ = ("reason",)

    def __init__(self, reason: CloseReason) -> None:
        self.reason = reason


StreamItem = RealtimeEvent | Resync


class Subscription:
    """One local subscriber's stream: a bounded queue the hub fills and the caller drains."""

    __slots__ = (
        "_bound",
        "_closed",
        "_closed_event",
        "_hub",
        "_items",
        "_on_closed",
        "_overflows",
        "_waiter",
        "channel",
    )

    def __init__(self, hub: Hub, channel: str, bound: int) -> None:
        self._hub = hub
        self.channel = channel
        self._bound = bound
        self._items: deque[RealtimeEvent | Resync | _Closed] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._overflows = 0
        self._closed: CloseReason | None = None
        self._closed_event: asyncio.Event | None = None
        self._on_closed: Callable[[CloseReason], object] | None = None

    @property
    def pending(self) -> int:
        """Items waiting in this subscriber's queue (never more than the bound)."""
        return len(self._items)

    @property
    def closed_reason(self) -> CloseReason | None:
        return self._closed

    async def wait_closed(self) -> CloseReason:
        """Until the hub closes this subscriber (e.g. to close a WebSocket stuck sending)."""
        if self._closed is None:
            if self._closed_event is None:
                self._closed_event = asyncio.Event()
            await self._closed_event.wait()
        assert self._closed is not None
        return self._closed

    def on_closed(self, callback: Callable[[CloseReason], object] | None) -> None:
        """Call `callback(reason)` when the hub closes this subscriber (None: no longer).
        No task waits for it: a callback costs an idle subscriber far less memory than
        a task in `wait_closed()`. It runs inside the hub's fan-out: it must not block."""
        self._on_closed = callback

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> StreamItem:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items.popleft()
        if isinstance(item, _Closed):
            self._items.append(item)  # every later read raises too
            raise SubscriptionClosed(item.reason)
        if not self._items and isinstance(item, RealtimeEvent):
            self._overflows = 0  # caught up with the live stream
        return item

    def _push(self, item: RealtimeEvent | Resync | _Closed) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _offer(self, event: RealtimeEvent) -> bool:
        """Queue an event; False when this subscriber overflowed and was closed."""
        if len(self._items) < self._bound:
            self._push(event)
            return True
        self._overflows += 1
        self._hub._dropped(len(self._items))
        self._items.clear()
        if self._overflows >= self._hub._max_overflows:
            self._close(CloseReason.SLOW_CONSUMER)
            return False
        self._hub._resynced(1)
        self._push(Resync(self.channel, "overflow"))
        return True

    def _resync(self, marker: Resync) -> None:
        # Anything queued is in the outbox replay the marker asks for: drop it, keep memory low.
        if self._closed is not None:
            return
        if len(self._items) == 1 and isinstance(self._items[0], Resync):
            return
        self._hub._dropped(len(self._items))
        self._items.clear()
        self._hub._resynced(1)
        self._push(marker)

    def _close(self, reason: CloseReason) -> None:
        if self._closed is not None:
            return
        self._closed = reason
        self._items.clear()
        self._push(_Closed(reason))
        if self._closed_event is not None:
            self._closed_event.set()
        callback, self._on_closed = self._on_closed, None
        if callback is not None:
            callback(reason)


class _Channel:
    __slots__ = ("leaving", "name", "pump", "ready", "subscribers", "workspace")

    def __init__(self, name: str, prefix: str) -> None:
        self.name = name
        # A workspace channel only ever carries that workspace's events (a second wall).
        self.workspace = name.removeprefix(prefix) if name.startswith(prefix) else None
        self.subscribers: set[Subscription] = set()
        self.ready = asyncio.Event()
        self.pump: asyncio.Task[None] | None = None
        self.leaving = False

    def end_pump(self) -> None:
        """Stop the pump; one still subscribing finishes first and then leaves by itself
        (cancelling broadcaster's subscribe() midway would leak the Redis subscription)."""
        self.leaving = True
        if self.pump is not None and self.ready.is_set():
            self.pump.cancel()


class Hub:
    """Fan-out of pub/sub channels to local subscribers; one per API process."""

    def __init__(self, settings: Settings, *, backend: BroadcastBackend | None = None) -> None:
        if backend is None:
            backend = _backend_for(settings)
        self._backend = backend
        self._broadcast = Broadcast(backend=backend)
        self._prefix = settings.realtime_channel_prefix
        self._queue_size = settings.realtime_queue_size
        self._max_overflows = settings.realtime_max_overflows
        self._channels: dict[str, _Channel] = {}
        # Pumps still unsubscribing: the next pump of the same channel waits for them.
        self._leaving: dict[str, asyncio.Task[None]] = {}
        self._running = False
        self._counts = HubMetrics()

    async def start(self) -> None:
        await self._broadcast.connect()
        self._running = True

    async def stop(self) -> None:
        self._running = False
        channels = list(self._channels.values())
        self._channels.clear()
        pumps = [ch.pump for ch in channels if ch.pump is not None]
        pumps += list(self._leaving.values())
        for ch in channels:
            for subscription in ch.subscribers:
                subscription._close(CloseReason.SHUTDOWN)
            ch.subscribers.clear()
        for ch in channels:
            ch.end_pump()
        for pump in self._leaving.values():
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        with contextlib.suppress(Exception):  # a failed listener was already logged
            await self._broadcast.disconnect()

    async def publish(self, channel: str, message: str | Mapping[str, Any]) -> None:
        """Publish an envelope (JSON text, or a mapping to serialise) to every process.
        Raises HubUnavailable when Redis cannot take it (the relay retries later)."""
        if not self._running:
            raise HubUnavailable("the hub is not running")
        text = message if isinstance(message, str) else json.dumps(message, separators=(",", ":"))
        await self._broadcast.publish(channel, text)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscription]:
        if not self._running:
            raise HubUnavailable("the hub is not running")
        subscription = Subscription(self, channel, self._queue_size)
        hub_channel = self._channels.get(channel)
        if hub_channel is None:
            hub_channel = self._channels[channel] = _Channel(channel, self._prefix)
            hub_channel.pump = asyncio.create_task(self._pump(hub_channel), name=f"hub:{channel}")
        hub_channel.subscribers.add(subscription)
        try:
            await hub_channel.ready.wait()
            yield subscription
        finally:
            hub_channel.subscribers.discard(subscription)
            subscription._on_closed = None  # it leaves: the hub did not close it
            subscription._close(CloseReason.SHUTDOWN)
            if not hub_channel.subscribers and self._channels.get(channel) is hub_channel:
                self._leave(hub_channel)

    def metrics(self) -> HubMetrics:
        counts = self._counts
        counts.channels = len(self._channels)
        counts.subscribers = sum(len(ch.subscribers) for ch in self._channels.values())
        if isinstance(self._backend, ReconnectingRedisBackend):
            counts.connected = self._backend.connected
            counts.reconnects = self._backend.reconnects
        return HubMetrics(**{name: getattr(counts, name) for name in HubMetrics.__slots__})

    def _leave(self, hub_channel: _Channel) -> None:
        del self._channels[hub_channel.name]
        pump = hub_channel.pump
        if pump is None:
            return
        hub_channel.end_pump()
        self._leaving[hub_channel.name] = pump

        def forget(task: asyncio.Task[None]) -> None:
            if self._leaving.get(hub_channel.name) is task:
                del self._leaving[hub_channel.name]

        pump.add_done_callback(forget)

    async def _pump(self, hub_channel: _Channel) -> None:
        """Hold the channel's one broadcaster subscription; fan each event out."""
        previous = self._leaving.get(hub_channel.name)
        try:
            if previous is not None:
                await asyncio.wait([previous])
            if hub_channel.leaving:
                return
            async with self._broadcast.subscribe(hub_channel.name) as source:
                hub_channel.ready.set()
                while not hub_channel.leaving:
                    self._fan_out(hub_channel, await source.get())
        except Unsubscribed:
            pass
        except Exception:
            log.exception("realtime_pump_failed", channel=hub_channel.name)
        finally:
            # Whatever ended the pump, nobody may wait on it: later subscribers get a new one.
            if self._channels.get(hub_channel.name) is hub_channel:
                del self._channels[hub_channel.name]
            for subscription in hub_channel.subscribers:
                subscription._close(CloseReason.SHUTDOWN)
            hub_channel.ready.set()

    def _fan_out(self, hub_channel: _Channel, event: Event) -> None:
        subscribers = hub_channel.subscribers
        if isinstance(event, ResyncEvent):
            marker = Resync(hub_channel.name, "reconnected")
            for subscription in subscribers:
                subscription._resync(marker)
            return
        decoded = decode_envelope(event.message)
        if decoded is not None and hub_channel.workspace not in (None, str(decoded.workspace)):
            decoded = None
        if decoded is None:
            self._counts.malformed += 1
            log.warning(
                "realtime_malformed_message", channel=hub_channel.name, size=len(event.message)
            )
            return
        lagging: list[Subscription] = []
        for subscription in subscribers:
            if not subscription._offer(decoded):
                lagging.append(subscription)
        self._counts.delivered += len(subscribers) - len(lagging)
        for subscription in lagging:
            subscribers.discard(subscription)
            self._counts.slow_consumers_closed += 1
            log.info("realtime_slow_consumer_closed", channel=hub_channel.name)

    def _dropped(self, count: int) -> None:
        self._counts.dropped += count

    def _resynced(self, count: int) -> None:
        self._counts.resyncs += count


def _backend_for(settings: Settings) -> BroadcastBackend:
    if settings.redis_url:
        return ReconnectingRedisBackend(
            settings.redis_url,
            reconnect_max_seconds=settings.realtime_reconnect_max_seconds,
            health_check_seconds=settings.realtime_health_check_seconds,
        )
    return MemoryBackend("memory://")
