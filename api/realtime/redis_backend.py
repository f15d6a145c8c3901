"""A broadcaster backend for Redis pub/sub that survives Redis restarts.

broadcaster 0.3.1's own `RedisBackend` reads from one `PubSub.listen()` that ends for good
when the connection drops (encode/broadcaster#144): every subscriber then waits forever.
This one owns the connection's lifecycle: a supervisor task reconnects with capped,
jittered backoff, re-subscribes every channel in use, notices a silent connection by
PING, and emits a `ResyncEvent` per channel once its subscription is live again, because
whatever was published meanwhile is gone. Written by hand: neither broadcaster nor
redis-py does this (redis-py retries a few times, then raises out of `listen()`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from typing import Any

import structlog
from broadcaster import Event
from broadcaster._backends.base import BroadcastBackend
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)

# Bounds the hand-over from the socket reader to broadcaster's listener: when it is full the
# reader stops reading, the socket buffers fill and Redis's pub/sub output-buffer limit
# drops the connection, which ends in a reconnect and a resync, never in unbounded memory.
HANDOVER_QUEUE_SIZE = 10_000


class HubUnavailable(Exception):
    """Publishing failed: the pub/sub server is unreachable. The caller retries later."""


class ResyncEvent(Event):
    """The channel was (re)subscribed after a gap: messages published meanwhile are lost."""

    def __init__(self, channel: str) -> None:
        super().__init__(channel=channel, message="")


class ReconnectingRedisBackend(BroadcastBackend):
    """Redis pub/sub for `broadcaster.Broadcast(backend=...)`, with reconnects and resyncs.

    `subscribe` returns once Redis has confirmed the subscription (or at once when Redis
    is down: that channel then gets a `ResyncEvent` as soon as it is subscribed), so a
    caller that subscribes first and reads its backlog second misses nothing.
    """

    def __init__(
        self,
        url: str,
        *,
        reconnect_min_seconds: float = 0.05,
        reconnect_max_seconds: float = 2.0,
        health_check_seconds: float = 5.0,
        command_timeout_seconds: float = 2.0,
    ) -> None:
        # BroadcastBackend.__init__ only raises NotImplementedError: not called.
        self._url = url
        self._reconnect_min = reconnect_min_seconds
        self._reconnect_max = reconnect_max_seconds
        self._health_check = health_check_seconds
        self._timeout = command_timeout_seconds
        # A private channel keeps the connection in subscribed mode even with no channel
        # in use, so reading and PING-ing work the same at all times.
        self._control_channel = f"wealthwise:hub:{uuid.uuid4().hex}"
        self._channels: set[str] = set()
        self._resync_pending: set[str] = set()
        self._confirmations: dict[str, asyncio.Future[None]] = {}
        self._pubsub: PubSub | None = None
        self._connected = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._publisher: Redis | None = None
        self._events: asyncio.Queue[Event] = asyncio.Queue(maxsize=HANDOVER_QUEUE_SIZE)
        self.reconnects = 0

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def connect(self) -> None:
        """Start listening; waits briefly for Redis but never fails: it keeps retrying."""
        self._publisher = Redis.from_url(
            self._url,
            socket_connect_timeout=self._timeout,
            socket_timeout=self._timeout,
            # One retry on a fresh connection: a pooled one is dead after a Redis restart.
            retry=Retry(NoBackoff(), 1),
        )
        self._supervisor = asyncio.create_task(self._supervise(), name="realtime-redis")
        try:
            async with asyncio.timeout(self._timeout):
                await self._connected.wait()
        except TimeoutError:
            log.warning("realtime_redis_unavailable_at_start", retrying=True)

    async def disconnect(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        if self._publisher is not None:
            await self._publisher.aclose()
            self._publisher = None

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        pubsub = self._pubsub
        if pubsub is None or not self._connected.is_set():
            self._resync_pending.add(channel)
            return
        confirmed = asyncio.get_running_loop().create_future()
        self._confirmations[channel] = confirmed
        try:
            await pubsub.subscribe(channel)
            async with asyncio.timeout(self._timeout):
                await confirmed
        except (RedisError, OSError, TimeoutError) as error:
            log.warning("realtime_subscribe_failed", channel=channel, error=repr(error))
            # Start over on a fresh connection: it subscribes the channel and resyncs it.
            self._resync_pending.add(channel)
            await _close_quietly(pubsub)
        finally:
            self._confirmations.pop(channel, None)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        self._resync_pending.discard(channel)
        pubsub = self._pubsub
        if pubsub is not None and self._connected.is_set():
            # A failure needs nothing more: a reconnect subscribes only channels in use.
            with contextlib.suppress(RedisError, OSError):
                await pubsub.unsubscribe(channel)

    async def publish(self, channel: str, message: Any) -> None:
        if self._publisher is None:
            raise HubUnavailable("the realtime backend is not connected")
        try:
            await self._publisher.publish(channel, message)
        except (RedisError, OSError) as error:
            raise HubUnavailable(f"publishing to Redis failed: {error!r}") from error

    async def next_published(self) -> Event:
        return await self._events.get()

    async def _supervise(self) -> None:
        delay = self._reconnect_min
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # any failure: log it and reconnect, never die
                log.warning("realtime_redis_lost", error=repr(error), retry_in=round(delay, 3))
            if self._connected.is_set():
                delay = self._reconnect_min
                self._connected.clear()
            self._resync_pending |= self._channels
            self.reconnects += 1
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self._reconnect_max)

    def _on_connected(self) -> None:
        self._connected.set()
        log.info("realtime_redis_connected", channels=len(self._channels))

    async def _listen(self) -> None:
        client = Redis.from_url(
            self._url,
            socket_connect_timeout=self._timeout,
            # redis-py must not reconnect behind our back: a reconnect means a resync.
            retry=Retry(NoBackoff(), 0),
        )
        pubsub = client.pubsub()
        try:
            initial = set(self._channels)
            await pubsub.subscribe(self._control_channel, *initial)
            self._pubsub = pubsub
            await self._read(pubsub, initial)
        finally:
            self._pubsub = None
            # A subscribe() waiting for its confirmation must not wait out its timeout.
            for waiter in self._confirmations.values():
                if not waiter.done():
                    waiter.set_exception(ConnectionError("the Redis connection was lost"))
            await _close_quietly(pubsub)
            await client.aclose()

    async def _read(self, pubsub: PubSub, initial: set[str]) -> None:
        loop = asyncio.get_running_loop()
        last_heard = loop.time()
        while True:
            message = await pubsub.get_message(timeout=self._health_check)
            now = loop.time()
            if message is None:
                if now - last_heard > 2 * self._health_check:
                    raise ConnectionError("Redis did not answer a PING")
                await pubsub.ping()
                continue
            last_heard = now
            kind = message["type"]
            if kind == "message":
                data = message["data"]
                text = data.decode(errors="replace") if isinstance(data, bytes) else str(data)
                await self._events.put(Event(_text(message["channel"]), text))
            elif kind == "subscribe":
                channel = _text(message["channel"])
                if channel == self._control_channel:
                    self._on_connected()
                    # Channels taken up while this connection was being made.
                    if missing := self._channels - initial:
                        await pubsub.subscribe(*missing)
                await self._confirmed(channel)

    async def _confirmed(self, channel: str) -> None:
        waiter = self._confirmations.get(channel)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if channel in self._resync_pending and channel in self._channels:
            self._resync_pending.discard(channel)
            # Ahead of any message this subscription delivers: nothing after it is missed.
            await self._events.put(ResyncEvent(channel))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def _close_quietly(pubsub: PubSub) -> None:
    with contextlib.suppress(RedisError, OSError, RuntimeError):
        await pubsub.aclose()
