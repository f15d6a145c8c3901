"""Garbage collections pause every coroutine of the process: log the long ones.

A full (generation 2) collection walks every tracked object, and a process holding
thousands of WebSocket connections tracks millions; a collection of the middle generation
walks whatever survived the last few young ones, which while thousands connect (or with
results in flight) is hundreds of thousands. Such a pause delays every delivery of that
moment (bench/README.md, "Realtime"). `watch_gc` logs each collection, of any generation,
that took at least `threshold_ms` as `gc_pause` (a warning, with its generation, its
duration and what it freed), so a latency spike can be matched to one.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

import structlog

log = structlog.get_logger(__name__)


def tune_gc(young_threshold: int) -> Callable[[], None]:
    """Collect the young generation every `young_threshold` allocations (0: leave it):
    short-lived objects then die young instead of being promoted to the old generation,
    whose growth is what triggers the long full collections. Returns the function that
    puts the previous thresholds back."""
    previous = gc.get_threshold()
    if young_threshold > 0:
        gc.set_threshold(young_threshold, previous[1], previous[2])

    def restore() -> None:
        gc.set_threshold(*previous)

    return restore


def freeze_gc(every_seconds: float, full_every_seconds: float) -> Callable[[], None]:
    """Every `every_seconds`, move every object that survived so far into the permanent
    generation (`gc.freeze`, a constant-time splice): collections then walk only what came
    since, not every open connection's objects. At 10,000 subscribers the collections of
    the middle generation alone walked 400,000-500,000 objects and paused the process
    250-350 ms every ~10 s (bench/README.md).

    Frozen objects are still freed by reference counting; cyclic garbage among them (a
    closed connection's cycles, and cycles no collection had reached yet at the tick)
    waits. A tick does not collect first: at 10,000 subscribers that cost 100-350 ms every
    tick. Every `full_every_seconds` (0: never) everything is put back and collected at
    once: one long pause, which `watch_gc` logs (1.2-1.7 s at 10,000 subscribers on this
    2-core machine). Off when `every_seconds` is 0. Returns the function that stops it.
    Call it on the running event loop."""
    if every_seconds <= 0:
        return lambda: None
    loop = asyncio.get_running_loop()
    last_full = time.monotonic()
    handle: asyncio.TimerHandle | None = None

    def tick() -> None:
        nonlocal handle, last_full
        if full_every_seconds > 0 and time.monotonic() - last_full >= full_every_seconds:
            gc.unfreeze()
            gc.collect()
            last_full = time.monotonic()
        gc.freeze()
        handle = loop.call_later(every_seconds, tick)

    handle = loop.call_later(every_seconds, tick)

    def stop() -> None:
        if handle is not None:
            handle.cancel()

    return stop


def on_long_collections(
    threshold_ms: float, report: Callable[[float, float, dict[str, Any]], None]
) -> Callable[[], None]:
    """Call `report(started, ms, info)` after each collection that took at least
    `threshold_ms` (`started`: wall-clock seconds; `info`: the collector's, with its
    generation). Returns the function that stops it."""
    started: list[float] = []

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[:] = [time.perf_counter(), time.time()]
            return
        if not started:
            return
        ms = 1000 * (time.perf_counter() - started[0])
        at = started[1]
        started.clear()
        if ms >= threshold_ms:
            report(at, ms, info)

    gc.callbacks.append(callback)

    def stop() -> None:
        if callback in gc.callbacks:
            gc.callbacks.remove(callback)

    return stop


def watch_gc(threshold_ms: float) -> Callable[[], None]:
    """Start logging long collections; returns the function that stops it."""

    def report(_started: float, ms: float, info: dict[str, Any]) -> None:
        log.warning(
            "gc_pause",
            generation=info.get("generation"),
            ms=round(ms, 1),
            collected=info.get("collected"),
            tracked=len(gc.get_objects(generation=2)),
        )

    return on_long_collections(threshold_ms, report)
