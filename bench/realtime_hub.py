"""The fan-out hub in one process: N idle subscribers, events at a steady rate.

Baseline, measured in the same run: broadcaster's own `Broadcast` (memory backend, one
unbounded queue per subscriber, each subscriber decoding the JSON itself), which is what
the hub wraps. Subscribers are spread over channels (workspaces), 10 per channel unless
`--per-channel` says otherwise; each is a task waiting on its stream, as a WebSocket
handler would be.

    PYTHONPATH=. .venv/bin/python -m bench.realtime_hub [--subscribers 1000 10000]
        [--per-channel 10] [--rate 1000] [--seconds 5] [--redis-url redis://...]

Per N and side it prints: memory per idle subscriber (tracemalloc, the subscription and
its waiting task), fan-out latency p50/p99 (publish call to the subscriber's loop body) at
the steady rate, the CPU share of that phase, and the flat-out rate (events/s and
deliveries/s with no pacing). With `--redis-url` the hub side goes through that Redis
(the baseline stays in memory: broadcaster's Redis listener is the one this project
replaces).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from broadcaster import Broadcast
from broadcaster._backends.memory import MemoryBackend
from broadcaster._base import Subscriber

from api.logging import configure_logging
from api.realtime.hub import Hub, RealtimeEvent, Subscription
from domain.core.settings import Settings

Publish = Callable[[str, str], Awaitable[None]]


@dataclass
class Result:
    side: str
    subscribers: int
    bytes_per_subscriber: float
    p50_ms: float
    p99_ms: float
    steady_rate: float
    cpu_share: float
    flat_out_events: float
    flat_out_deliveries: float


def envelope(workspace: uuid.UUID, seq: int) -> str:
    return json.dumps(
        {
            "v": 1,
            "workspace": str(workspace),
            "seq": seq,
            "type": "balance.updated",
            "data": {"t": time.perf_counter(), "account": "acc_1", "balance": "1024.50"},
            "at": "2026-11-28T00:00:00Z",
        }
    )


class Side:
    """One way of fanning out: subscribe N readers, publish, count what they receive."""

    name = ""

    def __init__(self) -> None:
        self.latencies: list[float] | None = None
        self.received = 0
        self.target = 0
        self.reached = asyncio.Event()

    def record(self, sent_at: float) -> None:
        self.received += 1
        if self.received == self.target:
            self.reached.set()
        if self.latencies is not None:
            self.latencies.append(time.perf_counter() - sent_at)

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def subscribe(self, stack: AsyncExitStack, channel: str) -> asyncio.Task[None]:
        raise NotImplementedError

    async def publish(self, channel: str, message: str) -> None:
        raise NotImplementedError


class HubSide(Side):
    name = "hub"

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.hub = Hub(settings)

    async def start(self) -> None:
        await self.hub.start()

    async def stop(self) -> None:
        await self.hub.stop()

    async def subscribe(self, stack: AsyncExitStack, channel: str) -> asyncio.Task[None]:
        stream = await stack.enter_async_context(self.hub.subscribe(channel))
        return asyncio.create_task(self._read(stream))

    async def _read(self, stream: Subscription) -> None:
        async for item in stream:
            if isinstance(item, RealtimeEvent):
                self.record(item.data["t"])

    async def publish(self, channel: str, message: str) -> None:
        await self.hub.publish(channel, message)


class BroadcasterSide(Side):
    name = "broadcaster"

    def __init__(self) -> None:
        super().__init__()
        self.broadcast = Broadcast(backend=MemoryBackend("memory://"))

    async def start(self) -> None:
        await self.broadcast.connect()

    async def stop(self) -> None:
        await self.broadcast.disconnect()

    async def subscribe(self, stack: AsyncExitStack, channel: str) -> asyncio.Task[None]:
        subscriber = await stack.enter_async_context(self.broadcast.subscribe(channel))
        return asyncio.create_task(self._read(subscriber))

    async def _read(self, subscriber: Subscriber) -> None:
        while True:
            event = await subscriber.get()
            self.record(json.loads(event.message)["data"]["t"])

    async def publish(self, channel: str, message: str) -> None:
        await self.broadcast.publish(channel, message)


async def measure(
    side: Side, subscribers: int, per_channel: int, rate: float, seconds: float
) -> Result:
    await side.start()
    channels = [
        (uuid.uuid4(), f"bench:{uuid.uuid4().hex}")
        for _ in range(max(1, subscribers // per_channel))
    ]
    readers: list[asyncio.Task[None]] = []
    try:
        async with AsyncExitStack() as stack:
            gc.collect()
            tracemalloc.start()
            before, _ = tracemalloc.get_traced_memory()
            for index in range(subscribers):
                readers.append(await side.subscribe(stack, channels[index % len(channels)][1]))
            await asyncio.sleep(0.1)  # every reader is now waiting on its stream
            after, _ = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            per_subscriber = (after - before) / subscribers

            side.latencies = []
            steady = await _steady(side, channels, rate, seconds)
            latencies = sorted(side.latencies)
            side.latencies = None
            flat_events, flat_deliveries = await _flat_out(side, channels, subscribers)
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
    finally:
        await side.stop()
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return Result(
        side=side.name,
        subscribers=subscribers,
        bytes_per_subscriber=per_subscriber,
        p50_ms=quantiles[49] * 1000,
        p99_ms=quantiles[98] * 1000,
        steady_rate=steady[0],
        cpu_share=steady[1],
        flat_out_events=flat_events,
        flat_out_deliveries=flat_deliveries,
    )


async def _steady(
    side: Side, channels: list[tuple[uuid.UUID, str]], rate: float, seconds: float
) -> tuple[float, float]:
    """Publish at `rate` events/s round-robin over the channels; (achieved rate, CPU share)."""
    total = int(rate * seconds)
    started, cpu_started = time.perf_counter(), time.process_time()
    for seq in range(total):
        workspace, channel = channels[seq % len(channels)]
        await side.publish(channel, envelope(workspace, seq))
        delay = started + (seq + 1) / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif seq % 20 == 0:
            await asyncio.sleep(0)  # behind schedule: still let the readers run
    await asyncio.sleep(0.2)
    elapsed = time.perf_counter() - started
    return total / (elapsed - 0.2), (time.process_time() - cpu_started) / elapsed


async def _flat_out(
    side: Side, channels: list[tuple[uuid.UUID, str]], subscribers: int
) -> tuple[float, float]:
    """Events as fast as the process fans them out: (events/s, deliveries/s)."""
    events = max(2_000, len(channels) * 2)
    per_event = subscribers / len(channels)
    side.target = side.received + int(events * per_event)
    side.reached.clear()
    started = time.perf_counter()
    for seq in range(events):
        workspace, channel = channels[seq % len(channels)]
        await side.publish(channel, envelope(workspace, seq))
        if seq % 50 == 0:
            await asyncio.sleep(0)
    await asyncio.wait_for(side.reached.wait(), 60)
    elapsed = time.perf_counter() - started
    return events / elapsed, events * per_event / elapsed


def _print(results: list[Result]) -> None:
    print(
        f"{'side':<12} {'subs':>6} {'B/idle sub':>10} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'rate/s':>7} {'CPU':>5} {'max ev/s':>9} {'deliv/s':>9}"
    )
    for r in results:
        print(
            f"{r.side:<12} {r.subscribers:>6} {r.bytes_per_subscriber:>10.0f} {r.p50_ms:>7.2f} "
            f"{r.p99_ms:>7.2f} {r.steady_rate:>7.0f} {r.cpu_share:>5.0%} "
            f"{r.flat_out_events:>9.0f} {r.flat_out_deliveries:>9.0f}"
        )


async def _run(args: argparse.Namespace) -> None:
    settings = Settings(redis_url=args.redis_url, log_level="WARNING")
    configure_logging(settings)
    for subscribers in args.subscribers:
        results = []
        for side in (BroadcasterSide(), HubSide(settings)):
            results.append(
                await measure(side, subscribers, args.per_channel, args.rate, args.seconds)
            )
        _print(results)
        base, hub = results
        print(
            f"hub/broadcaster: memory {hub.bytes_per_subscriber / base.bytes_per_subscriber:.2f}, "
            f"p99 {hub.p99_ms / base.p99_ms:.2f}, "
            f"flat-out deliveries {hub.flat_out_deliveries / base.flat_out_deliveries:.2f}\n"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--subscribers", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--per-channel", type=int, default=10)
    parser.add_argument("--rate", type=float, default=1_000)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--redis-url", default=None)
    args: Any = parser.parse_args(argv)
    asyncio.run(_run(args))


if __name__ == "__main__":
    main()
