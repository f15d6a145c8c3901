"""Long full garbage collections are logged (api/gcwatch.py)."""

from __future__ import annotations

import gc

from structlog.testing import capture_logs

from api.gcwatch import tune_gc, watch_gc


def test_a_full_collection_over_the_threshold_is_logged_with_its_duration() -> None:
    stop = watch_gc(0)  # every full collection is "long"
    try:
        with capture_logs() as logs:
            gc.collect(1)  # not a full one: not logged
            gc.collect(2)
    finally:
        stop()
    pauses = [entry for entry in logs if entry["event"] == "gc_pause"]
    assert len(pauses) == 1
    assert pauses[0]["log_level"] == "warning"
    assert pauses[0]["ms"] >= 0 and pauses[0]["tracked"] > 0


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
