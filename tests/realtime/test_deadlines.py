"""api/realtime/deadlines.py: many timers on one loop timer, in order, never early."""

from __future__ import annotations

import asyncio

from api.realtime.deadlines import Deadlines, deadlines


async def test_callbacks_run_in_deadline_order_not_before_their_time() -> None:
    loop = asyncio.get_running_loop()
    timers = Deadlines(loop)
    ran: list[tuple[str, float]] = []
    start = loop.time()

    def note(name: str, when: float) -> None:
        timers.call_at(when, lambda: ran.append((name, loop.time())))

    note("third", start + 0.15)
    note("first", start + 0.05)  # earlier than the armed timer: re-armed
    note("second", start + 0.10)
    note("past", start - 1)  # already due: at the next turn
    assert len(timers) == 4
    await asyncio.sleep(0.3)
    assert [name for name, _ in ran] == ["past", "first", "second", "third"]
    due = {"first": 0.05, "second": 0.10, "third": 0.15, "past": -1}
    for name, at in ran:
        assert at >= start + due[name] - 0.002, (name, at - start)  # clock resolution
    assert len(timers) == 0


async def test_a_cancelled_entry_never_runs_and_cancelled_ones_are_dropped() -> None:
    loop = asyncio.get_running_loop()
    timers = Deadlines(loop)
    ran: list[int] = []
    entries = [timers.call_at(loop.time() + 60 + n, lambda n=n: ran.append(n)) for n in range(200)]
    kept = timers.call_at(loop.time() + 0.05, lambda: ran.append(-1))
    for entry in entries:
        timers.cancel(entry)
        timers.cancel(entry)  # twice: no effect
    assert len(timers) == 1
    assert len(timers._heap) < 100  # compacted, not 201 entries waiting an hour
    await asyncio.sleep(0.15)
    assert ran == [-1]
    timers.cancel(kept)  # after it ran: no effect
    assert len(timers) == 0


async def test_one_failing_callback_does_not_stop_the_others() -> None:
    loop = asyncio.get_running_loop()
    timers = Deadlines(loop)
    errors: list[BaseException] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context["exception"]))
    ran: list[str] = []

    def fail() -> None:
        raise RuntimeError("boom")

    try:
        timers.call_at(loop.time() + 0.02, fail)
        timers.call_at(loop.time() + 0.02, lambda: ran.append("after"))
        await asyncio.sleep(0.1)
    finally:
        loop.set_exception_handler(None)
    assert ran == ["after"]
    assert [str(error) for error in errors] == ["boom"]


async def test_one_set_of_timers_per_loop() -> None:
    loop = asyncio.get_running_loop()
    assert deadlines(loop) is deadlines(loop)
