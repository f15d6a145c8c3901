"""The fan-out hub against the real Redis (and a private one that gets killed) and against
broadcaster's memory backend, which must behave the same."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import statistics
import subprocess
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from broadcaster._backends.memory import MemoryBackend
from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.realtime.hub import (
    CloseReason,
    Hub,
    HubUnavailable,
    RealtimeEvent,
    Resync,
    Subscription,
    SubscriptionClosed,
    decode_envelope,
    workspace_channel,
)
from domain.core.settings import Settings
from tests.server import free_port

BACKENDS = ["memory", "redis"]


def hub_settings(redis_url: str | None, **overrides: object) -> Settings:
    settings = Settings(
        environment="test",
        redis_url=redis_url,
        realtime_channel_prefix=f"test:hub:{uuid.uuid4().hex}:",
        realtime_reconnect_max_seconds=0.5,
        realtime_health_check_seconds=1.0,
        log_level="WARNING",
    )
    return settings.model_copy(update=overrides)


def envelope(workspace: uuid.UUID, seq: int, **data: object) -> str:
    return json.dumps(
        {
            "v": 1,
            "workspace": str(workspace),
            "seq": seq,
            "type": "balance.updated",
            "data": data,
            "at": "2026-11-28T00:00:00Z",
        }
    )


@pytest.fixture(params=BACKENDS)
def settings(request: pytest.FixtureRequest) -> Settings:
    if request.param == "memory":
        return hub_settings(None)
    return hub_settings(request.getfixturevalue("redis_url"))


@pytest.fixture
async def hub(settings: Settings) -> AsyncIterator[Hub]:
    started = Hub(settings)
    await started.start()
    yield started
    await started.stop()


async def next_item(stream: Subscription, seconds: float = 5.0) -> RealtimeEvent | Resync:
    return await asyncio.wait_for(stream.__anext__(), seconds)


async def next_event(stream: Subscription, seconds: float = 5.0) -> RealtimeEvent:
    item = await next_item(stream, seconds)
    assert isinstance(item, RealtimeEvent), item
    return item


async def until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {seconds} s: {what}")
        await asyncio.sleep(0.01)


async def numsub(redis_url: str, channel: str) -> int:
    client = Redis.from_url(redis_url)
    try:
        [(_, count)] = await client.pubsub_numsub(channel)
        return int(count)
    finally:
        await client.aclose()


class Collector:
    """Reads one subscription in a task, keeping everything it yields."""

    def __init__(self, stream: Subscription) -> None:
        self.items: list[RealtimeEvent | Resync] = []
        self.closed: CloseReason | None = None
        self.task = asyncio.create_task(self._read(stream))

    async def _read(self, stream: Subscription) -> None:
        try:
            async for item in stream:
                self.items.append(item)
        except SubscriptionClosed as closed:
            self.closed = closed.reason

    def seqs(self) -> list[int]:
        return [item.seq for item in self.items if isinstance(item, RealtimeEvent)]

    def after_resync(self) -> list[int]:
        marks = [i for i, item in enumerate(self.items) if isinstance(item, Resync)]
        if not marks:
            return []
        return [item.seq for item in self.items[marks[-1] :] if isinstance(item, RealtimeEvent)]

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def test_envelopes_are_decoded_defensively() -> None:
    workspace = uuid.uuid4()
    event = decode_envelope(envelope(workspace, 7, amount="1.00"))
    assert event == RealtimeEvent(
        workspace=workspace,
        seq=7,
        type="balance.updated",
        data={"amount": "1.00"},
        at="2026-11-28T00:00:00+00:00",  # the shared decoder normalises the time
    )
    good = json.loads(envelope(workspace, 1))
    for broken in (
        "not json",
        "[1, 2]",
        json.dumps({**good, "v": 2}),
        json.dumps({**good, "seq": "1"}),
        json.dumps({**good, "seq": True}),
        json.dumps({**good, "seq": -1}),
        json.dumps({**good, "type": ""}),
        json.dumps({**good, "workspace": "not-a-uuid"}),
        json.dumps({key: value for key, value in good.items() if key != "at"}),
    ):
        assert decode_envelope(broken) is None, broken


async def test_fan_out_reaches_every_local_subscriber_over_one_subscription(
    hub: Hub, settings: Settings
) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    first_channel = workspace_channel(settings, first)
    second_channel = workspace_channel(settings, second)
    async with contextlib.AsyncExitStack() as stack:
        first_streams = [
            await stack.enter_async_context(hub.subscribe(first_channel)) for _ in range(200)
        ]
        second_streams = [
            await stack.enter_async_context(hub.subscribe(second_channel)) for _ in range(50)
        ]
        if settings.redis_url:
            assert await numsub(settings.redis_url, first_channel) == 1
            assert await numsub(settings.redis_url, second_channel) == 1
        metrics = hub.metrics()
        assert (metrics.channels, metrics.subscribers) == (2, 250)

        for seq in range(1, 21):
            await hub.publish(first_channel, envelope(first, seq))
            await hub.publish(second_channel, envelope(second, 100 + seq))
        for stream in first_streams:
            assert [(await next_event(stream)).seq for _ in range(20)] == list(range(1, 21))
            assert stream.pending == 0
        for stream in second_streams:
            items = [await next_event(stream) for _ in range(20)]
            assert [item.workspace for item in items] == [second] * 20
        assert hub.metrics().delivered == 20 * 250

    assert (hub.metrics().channels, hub.metrics().subscribers) == (0, 0)
    if settings.redis_url:
        deadline = time.monotonic() + 5
        while await numsub(settings.redis_url, first_channel) != 0:
            assert time.monotonic() < deadline, "the channel was not unsubscribed"
            await asyncio.sleep(0.01)


async def test_subscribe_returns_once_the_subscription_is_live(
    hub: Hub, settings: Settings
) -> None:
    """Subscribe, then publish at once from elsewhere: nothing published after subscribe()
    returned may be missed (the outbox backlog is read in between)."""
    for _ in range(20):
        workspace = uuid.uuid4()
        channel = workspace_channel(settings, workspace)
        async with hub.subscribe(channel) as stream:
            if settings.redis_url:
                publisher = Redis.from_url(settings.redis_url)
                assert await publisher.publish(channel, envelope(workspace, 1)) == 1
                await publisher.aclose()
            else:
                await hub.publish(channel, envelope(workspace, 1))
            assert (await next_event(stream, 2)).seq == 1


async def test_a_subscriber_gone_while_subscribing_leaves_no_subscription(
    hub: Hub, settings: Settings
) -> None:
    """A client that disconnects while its channel is still being subscribed (cancelled
    after 0, 1, 2, ... loop turns, each on a channel of its own)."""

    async def subscriber(channel: str) -> None:
        async with hub.subscribe(channel):
            await asyncio.Event().wait()

    channels = [workspace_channel(settings, uuid.uuid4()) for _ in range(30)]
    for ticks, channel in enumerate(channels):
        task = asyncio.create_task(subscriber(channel))
        for _ in range(ticks):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await asyncio.sleep(0.3)
    assert hub.metrics().channels == 0
    if settings.redis_url:
        for channel in channels:
            assert await numsub(settings.redis_url, channel) == 0, channel
    workspace = uuid.uuid4()
    channel = workspace_channel(settings, workspace)
    async with hub.subscribe(channel) as stream:
        await hub.publish(channel, envelope(workspace, 1))
        assert (await next_event(stream)).seq == 1


class FlakyMemoryBackend(MemoryBackend):
    """broadcaster's memory backend whose first subscribe fails (a backend bug, say)."""

    def __init__(self) -> None:
        super().__init__("memory://")
        self.failures = 1

    async def subscribe(self, channel: str) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("subscribe failed")
        await super().subscribe(channel)


async def test_a_failed_channel_closes_its_subscribers_and_the_next_one_starts_fresh() -> None:
    settings = hub_settings(None)
    hub = Hub(settings, backend=FlakyMemoryBackend())
    await hub.start()
    workspace = uuid.uuid4()
    channel = workspace_channel(settings, workspace)
    try:
        async with hub.subscribe(channel) as failed:
            with pytest.raises(SubscriptionClosed):
                await next_item(failed, 2)
            # While the failed one is still open, another subscriber must not join it.
            async with hub.subscribe(channel) as stream:
                await hub.publish(channel, envelope(workspace, 1))
                assert (await next_event(stream, 2)).seq == 1
    finally:
        await hub.stop()


async def test_malformed_or_foreign_messages_are_dropped_and_counted(
    hub: Hub, settings: Settings
) -> None:
    workspace = uuid.uuid4()
    channel = workspace_channel(settings, workspace)
    async with hub.subscribe(channel) as stream:
        await hub.publish(channel, "{not json")
        await hub.publish(channel, json.dumps({"v": 1, "seq": 1}))
        await hub.publish(channel, envelope(uuid.uuid4(), 1))  # another workspace's event
        await hub.publish(channel, envelope(workspace, 2))
        item = await next_item(stream)
        assert isinstance(item, RealtimeEvent) and item.seq == 2
    assert hub.metrics().malformed == 3


async def test_stopping_the_hub_closes_subscribers_with_a_retryable_code(
    settings: Settings,
) -> None:
    hub = Hub(settings)
    await hub.start()
    channel = workspace_channel(settings, uuid.uuid4())
    async with hub.subscribe(channel) as stream:
        reader = Collector(stream)
        await hub.stop()
        await asyncio.wait_for(reader.task, 2)
        assert reader.closed is CloseReason.SHUTDOWN
        assert CloseReason.SHUTDOWN.close_code == 1012
        assert await asyncio.wait_for(stream.wait_closed(), 1) is CloseReason.SHUTDOWN
    with pytest.raises(HubUnavailable):
        await hub.publish(channel, envelope(uuid.uuid4(), 1))


async def test_a_publish_on_one_hub_reaches_subscribers_of_another(redis_url: str) -> None:
    """Two hubs on the real Redis, as two API processes would have."""
    settings = hub_settings(redis_url)
    sender, receiver = Hub(settings), Hub(settings)
    await sender.start()
    await receiver.start()
    try:
        workspace = uuid.uuid4()
        channel = workspace_channel(settings, workspace)
        async with receiver.subscribe(channel) as one, receiver.subscribe(channel) as two:
            await sender.publish(channel, envelope(workspace, 1))
            assert (await next_event(one)).seq == 1
            assert (await next_event(two)).seq == 1
            assert await numsub(redis_url, channel) == 1
    finally:
        await sender.stop()
        await receiver.stop()


class PrivateRedis:
    """A redis-server of this test's own, on a fixed free port, that may be killed."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def wait_ready(self) -> None:
        client = Redis.from_url(self.url, socket_connect_timeout=0.2)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    await client.ping()
                    return
                except (RedisError, OSError):
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    try:
        yield server
    finally:
        server.kill()


async def test_a_redis_restart_resyncs_every_subscriber_then_delivers(
    private_redis: PrivateRedis,
) -> None:
    private_redis.start()
    await private_redis.wait_ready()
    # The production defaults: the backoff may reach its 2 s cap while Redis is down.
    settings = hub_settings(
        private_redis.url, realtime_reconnect_max_seconds=2.0, realtime_health_check_seconds=5.0
    )
    hub, relay = Hub(settings), Hub(settings)
    await hub.start()
    await relay.start()
    workspaces = [uuid.uuid4(), uuid.uuid4()]
    channels = [workspace_channel(settings, workspace) for workspace in workspaces]
    collectors: list[tuple[int, Collector]] = []
    try:
        async with contextlib.AsyncExitStack() as stack:
            for index in range(20):
                stream = await stack.enter_async_context(hub.subscribe(channels[index % 2]))
                collectors.append((index % 2, Collector(stream)))
            for index, workspace in enumerate(workspaces):
                await relay.publish(channels[index], envelope(workspace, 1))
            await until(lambda: all(c.seqs() == [1] for _, c in collectors), 5, "the first event")

            private_redis.kill()
            with pytest.raises(HubUnavailable):
                await relay.publish(channels[0], envelope(workspaces[0], 2))
            await until(lambda: not hub.metrics().connected, 5, "the hub noticing")
            await asyncio.sleep(3)  # down long enough for the backoff to reach its cap
            private_redis.start()
            restarted = time.monotonic()

            async def keep_publishing() -> None:
                seq = 100
                while True:
                    seq += 1
                    for index, workspace in enumerate(workspaces):
                        with contextlib.suppress(HubUnavailable):
                            await relay.publish(channels[index], envelope(workspace, seq))
                    await asyncio.sleep(0.05)

            publishing = asyncio.create_task(keep_publishing())
            try:
                await until(
                    lambda: all(c.after_resync() for _, c in collectors),
                    5,
                    "a Resync and then events published after the restart, on every subscriber",
                )
            finally:
                publishing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await publishing
            assert time.monotonic() - restarted < 5
            for channel in channels:
                assert await numsub(private_redis.url, channel) == 1

            for index, workspace in enumerate(workspaces):
                await relay.publish(channels[index], envelope(workspace, 10_000))
            await until(
                lambda: all(c.seqs()[-1] == 10_000 for _, c in collectors), 2, "the last event"
            )
            for _, collector in collectors:
                after = collector.after_resync()
                assert after == sorted(set(after)), "no duplicate, nothing out of order"
                assert after[:-1] == list(range(after[0], after[0] + len(after) - 1)), after
                assert collector.closed is None
            assert hub.metrics().reconnects >= 1
            assert hub.metrics().resyncs >= 20
            for _, collector in collectors:
                await collector.stop()
    finally:
        await hub.stop()
        await relay.stop()


async def test_a_frozen_redis_is_noticed_by_ping_and_resynced(
    private_redis: PrivateRedis,
) -> None:
    """A Redis that stops answering without closing the socket (a stalled host, a dead
    network path): the PING health check notices, and a fresh connection resyncs."""
    private_redis.start()
    await private_redis.wait_ready()
    settings = hub_settings(private_redis.url, realtime_health_check_seconds=0.5)
    hub = Hub(settings)
    await hub.start()
    workspace = uuid.uuid4()
    channel = workspace_channel(settings, workspace)
    try:
        async with hub.subscribe(channel) as stream:
            assert private_redis.process is not None
            private_redis.process.send_signal(signal.SIGSTOP)
            try:
                await until(lambda: not hub.metrics().connected, 5, "the hub noticing")
            finally:
                private_redis.process.send_signal(signal.SIGCONT)
            assert await next_item(stream, 5) == Resync(channel, "reconnected")
            publisher = Redis.from_url(private_redis.url)
            try:
                assert await publisher.publish(channel, envelope(workspace, 1)) == 1
            finally:
                await publisher.aclose()
            assert (await next_event(stream, 2)).seq == 1
    finally:
        await hub.stop()


async def test_a_hub_started_while_redis_is_down_catches_up_when_it_comes(
    private_redis: PrivateRedis,
) -> None:
    settings = hub_settings(private_redis.url)
    hub = Hub(settings)
    await hub.start()  # does not fail: it keeps retrying
    workspace = uuid.uuid4()
    channel = workspace_channel(settings, workspace)
    try:
        async with hub.subscribe(channel) as stream:
            private_redis.start()
            await private_redis.wait_ready()
            item = await next_item(stream, 5)
            assert item == Resync(channel, "reconnected")
            publisher = Redis.from_url(private_redis.url)
            try:
                assert await publisher.publish(channel, envelope(workspace, 1)) == 1
            finally:
                await publisher.aclose()
            assert (await next_event(stream, 2)).seq == 1
    finally:
        await hub.stop()


async def test_a_stalled_subscriber_stays_bounded_and_does_not_slow_the_others(
    settings: Settings,
) -> None:
    hub = Hub(settings)
    await hub.start()
    workspace = uuid.uuid4()
    channel = workspace_channel(settings, workspace)
    bound = settings.realtime_queue_size
    publisher = Redis.from_url(settings.redis_url) if settings.redis_url else None

    async def publish_batch(messages: list[str]) -> None:
        if publisher is None:
            for message in messages:
                await hub.publish(channel, message)
            return
        # A relay publishing as fast as Redis takes it: one round trip per batch.
        async with publisher.pipeline(transaction=False) as pipe:
            for message in messages:
                pipe.publish(channel, message)
            await pipe.execute()

    async def flow(events: int, stalled: Subscription | None) -> list[float]:
        async with hub.subscribe(channel) as stream:
            latencies: list[float] = []

            async def read() -> None:
                async for item in stream:
                    assert isinstance(item, RealtimeEvent), item
                    latencies.append(time.perf_counter() - item.data["t"])
                    if item.seq == events:
                        return

            reader = asyncio.create_task(read())
            most_pending = 0
            for first in range(1, events + 1, 50):
                batch = [
                    envelope(workspace, seq, t=time.perf_counter())
                    for seq in range(first, min(first + 50, events + 1))
                ]
                await publish_batch(batch)
                await asyncio.sleep(0.001)
                if stalled is not None:
                    most_pending = max(most_pending, stalled.pending)
                    assert stalled.pending <= bound
            await asyncio.wait_for(reader, 10)
            if stalled is not None:
                assert most_pending > bound // 2, "the stalled queue did fill up"
            return latencies

    try:
        # Both runs under tracemalloc (it slows everything): the same conditions.
        tracemalloc.start()
        try:
            baseline = await flow(20_000, None)
            async with hub.subscribe(channel) as stalled:
                before, _ = tracemalloc.get_traced_memory()
                with_stalled = await flow(20_000, stalled)
                after, _ = tracemalloc.get_traced_memory()
                assert stalled.closed_reason is CloseReason.SLOW_CONSUMER
                assert stalled.pending == 1  # only the close marker is left
                with pytest.raises(SubscriptionClosed) as closed:
                    await next_item(stalled, 1)
                assert closed.value.reason.close_code == 1013
        finally:
            tracemalloc.stop()
        # An unbounded queue would hold 20,000 events (several MB); this one held <= bound.
        assert after - before < 2_000_000, after - before
        metrics = hub.metrics()
        assert metrics.slow_consumers_closed == 1
        assert metrics.resyncs == settings.realtime_max_overflows - 1
        assert metrics.dropped >= bound * (settings.realtime_max_overflows - 1)
        assert len(baseline) == len(with_stalled) == 20_000

        def p99(latencies: list[float]) -> float:
            return statistics.quantiles(latencies, n=100)[98]

        assert p99(with_stalled) <= 2 * p99(baseline) + 0.025, (p99(baseline), p99(with_stalled))
    finally:
        await hub.stop()
        if publisher is not None:
            await publisher.aclose()


async def test_a_subscriber_that_falls_behind_once_is_told_to_resync(
    hub: Hub, settings: Settings
) -> None:
    workspace = uuid.uuid4()
    channel = workspace_channel(settings, workspace)
    bound = settings.realtime_queue_size
    async with hub.subscribe(channel) as slow, hub.subscribe(channel) as quick:
        reader = Collector(quick)
        for seq in range(1, bound + 11):
            await hub.publish(channel, envelope(workspace, seq))
            if seq % 50 == 0:
                await asyncio.sleep(0)
        await until(lambda: reader.seqs()[-1:] == [bound + 10], 5, "the quick subscriber")
        assert await next_item(slow) == Resync(channel, "overflow")
        assert [(await next_event(slow)).seq for _ in range(9)] == list(
            range(bound + 2, bound + 11)
        )
        await hub.publish(channel, envelope(workspace, bound + 11))
        assert (await next_event(slow)).seq == bound + 11
        assert slow.closed_reason is None
        await reader.stop()


async def test_on_closed_is_called_when_the_hub_closes_a_subscriber_not_when_it_leaves() -> None:
    """The callback a WebSocket connection uses instead of a task in `wait_closed()`:
    once per subscriber that the hub closes (slow consumer, stop), never for one that
    unsubscribes by itself or unregistered it."""
    settings = hub_settings(None, realtime_queue_size=2, realtime_max_overflows=1)
    hub = Hub(settings)
    await hub.start()
    workspace = uuid.uuid4()
    channel = workspace_channel(settings, workspace)
    calls: dict[str, list[CloseReason]] = {"slow": [], "left": [], "off": [], "stopped": []}
    try:
        async with hub.subscribe(channel) as left:
            left.on_closed(calls["left"].append)
        assert left.closed_reason is CloseReason.SHUTDOWN  # closed, but not by the hub
        async with hub.subscribe(channel) as slow:
            slow.on_closed(calls["slow"].append)
            for seq in range(1, 4):  # nobody reads: one more than the queue holds
                await hub.publish(channel, envelope(workspace, seq))
            assert await asyncio.wait_for(slow.wait_closed(), 5) is CloseReason.SLOW_CONSUMER
            assert calls["slow"] == [CloseReason.SLOW_CONSUMER]
        async with hub.subscribe(channel) as off, hub.subscribe(channel) as stopped:
            off.on_closed(calls["off"].append)
            off.on_closed(None)
            stopped.on_closed(calls["stopped"].append)
            await hub.stop()
            assert calls["stopped"] == [CloseReason.SHUTDOWN]
        assert calls["slow"] == [CloseReason.SLOW_CONSUMER]  # once
        assert calls["left"] == calls["off"] == []
        assert off.closed_reason is stopped.closed_reason is CloseReason.SHUTDOWN
    finally:
        await hub.stop()
