"""Timers for many long-lived connections, sharing one event-loop timer per loop.

    entry = deadlines(loop).call_at(loop.time() + 900, callback)
    deadlines(loop).cancel(entry)

Each open WebSocket has one (its access token's expiry). A loop timer handle of its own
costs ~0.6 KB under uvloop (a TimerHandle and a libuv timer); an entry in this heap ~0.1 KB.
Callbacks run in the loop, in deadline order, never before their time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import weakref
from collections.abc import Callable


class Entry:
    """One timer: `callback` is None once cancelled or run."""

    __slots__ = ("callback", "owner", "sequence", "when")

    def __init__(
        self, when: float, sequence: int, callback: Callable[[], object], owner: Deadlines
    ) -> None:
        self.when = when
        self.sequence = sequence
        self.callback: Callable[[], object] | None = callback
        self.owner = owner

    def cancel(self) -> None:
        """As `asyncio.TimerHandle.cancel` (so an entry can stand in for one)."""
        self.owner.cancel(self)

    def __lt__(self, other: Entry) -> bool:
        return (self.when, self.sequence) < (other.when, other.sequence)


_per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Deadlines] = (
    weakref.WeakKeyDictionary()
)


def deadlines(loop: asyncio.AbstractEventLoop) -> Deadlines:
    """The loop's shared timers."""
    found = _per_loop.get(loop)
    if found is None:
        found = _per_loop[loop] = Deadlines(loop)
    return found


class Deadlines:
    __slots__ = ("_cancelled", "_heap", "_loop", "_sequence", "_timer", "_timer_at")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[Entry] = []
        self._sequence = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._cancelled = 0

    def __len__(self) -> int:
        """Entries still to run."""
        return len(self._heap) - self._cancelled

    def call_at(self, when: float, callback: Callable[[], object]) -> Entry:
        """Run `callback()` at loop time `when` (at once if that has passed)."""
        entry = Entry(when, next(self._sequence), callback, self)
        heapq.heappush(self._heap, entry)
        if when < self._timer_at:
            self._arm(when)
        return entry

    def cancel(self, entry: Entry) -> None:
        if entry.callback is None:
            return
        entry.callback = None
        self._cancelled += 1
        if self._cancelled > 64 and self._cancelled * 2 > len(self._heap):
            # Mostly cancelled (connections that closed before their token expired): drop them.
            # In place: `_fire` may be iterating this very list (a callback that cancels).
            self._heap[:] = [alive for alive in self._heap if alive.callback is not None]
            heapq.heapify(self._heap)
            self._cancelled = 0

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer, self._timer_at = None, float("inf")
        now = self._loop.time()
        heap = self._heap
        while heap and heap[0].when <= now:
            entry = heapq.heappop(heap)
            callback = entry.callback
            if callback is None:
                self._cancelled -= 1
                continue
            entry.callback = None
            try:
                callback()
            except Exception as error:  # one failing callback must not stop the others
                self._loop.call_exception_handler(
                    {"message": "deadline callback failed", "exception": error}
                )
        while heap and heap[0].callback is None:
            heapq.heappop(heap)
            self._cancelled -= 1
        if heap:
            self._arm(heap[0].when)
