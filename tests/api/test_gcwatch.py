"""Long full garbage collections are logged (api/gcwatch.py)."""

from __future__ import annotations

import asyncio
import gc
import weakref

from structlog.testing import capture_logs

from api.gcwatch import freeze_gc, tune_gc, watch_gc
from tests.realtime.processes import eventually


def test_a_collection_over_the_threshold_is_logged_with_its_generation_and_duration() -> None:
    stop = watch_gc(0)  # every collection is "long"
    gc.disable()  # only the two below
    try:
        with capture_logs() as logs:
            gc.collect(1)
            gc.collect(2)
    finally:
        gc.enable()
        stop()
    pauses = [entry for entry in logs if entry["event"] == "gc_pause"]
    assert [p["generation"] for p in pauses] == [1, 2]
    assert all(p["log_level"] == "warning" for p in pauses)
    assert all(p["ms"] >= 0 and p["tracked"] > 0 for p in pauses)


def test_short_collections_and_a_stopped_watch_log_nothing() -> None:
    stop = watch_gc(60_000)
    try:
        with capture_logs() as logs:
            gc.collect()
    finally:
        stop()
    stopped = watch_gc(0)
    stopped()
    with capture_logs() as after:
        gc.collect()
    assert [e for e in logs + after if e["event"] == "gc_pause"] == []


def test_the_young_threshold_is_set_and_put_back() -> None:
    before = gc.get_threshold()
    restore = tune_gc(50_000)
    try:
        assert gc.get_threshold() == (50_000, before[1], before[2])
    finally:
        restore()
    assert gc.get_threshold() == before
    tune_gc(0)()  # 0 leaves it alone
    assert gc.get_threshold() == before


class _Cycle:
    def __init__(self) -> None:
        self.me = self


async def test_frozen_objects_escape_collections_until_the_periodic_full_collection() -> None:
    """A cycle that was alive at a freeze is not freed by a full collection afterwards
    (the collector no longer walks it): that is what keeps pauses short. The periodic
    full collection unfreezes and frees it."""
    gc.unfreeze()
    try:
        cycle = _Cycle()
        alive = weakref.ref(cycle)
        stop = freeze_gc(0.05, 0)  # freezes every 50 ms, never collects everything
        try:
            await asyncio.sleep(0.2)
        finally:
            stop()
        assert gc.get_freeze_count() > 0
        del cycle
        gc.collect()
        assert alive() is not None  # garbage, but frozen: out of the collector's sight

        stop = freeze_gc(0.05, 0.1)  # and now a full collection every 100 ms
        try:
            await eventually(lambda: alive() is None, 5, "the periodic full collection")
        finally:
            stop()
    finally:
        gc.unfreeze()


async def test_freezing_is_off_at_zero_and_stops_when_told() -> None:
    gc.unfreeze()
    try:
        freeze_gc(0, 0)()
        stop = freeze_gc(0.05, 0)
        stop()
        await asyncio.sleep(0.15)
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
