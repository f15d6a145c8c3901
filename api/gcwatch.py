"""Full garbage collections pause every coroutine of the process: log the long ones.

A full (generation 2) collection walks every tracked object, and a process holding
thousands of WebSocket connections tracks millions: such a pause delays every delivery
of that moment (bench/README.md, "Realtime"). `watch_gc` logs each full collection that
took at least `threshold_ms` as `gc_pause` (a warning, with its duration and what it
freed), so a latency spike can be matched to one.
"""

from __future__ import annotations

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


def watch_gc(threshold_ms: float) -> Callable[[], None]:
    """Start logging long full collections; returns the function that stops it."""
    started: list[float] = []

    def callback(phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            started[:] = [time.perf_counter()]
            return
        if not started:
            return
        ms = 1000 * (time.perf_counter() - started.pop())
        if ms >= threshold_ms:
            log.warning(
                "gc_pause",
                ms=round(ms, 1),
                collected=info.get("collected"),
                tracked=len(gc.get_objects(generation=2)),
            )

    gc.callbacks.append(callback)

    def stop() -> None:
        if callback in gc.callbacks:
            gc.callbacks.remove(callback)

    return stop
