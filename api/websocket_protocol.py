"""uvicorn's websockets-sansio WebSocket protocol, lighter per open connection.

A WebSocket stays open for hours, mostly idle, and each one held objects it no longer needs
(measured with bench/ws_memory.py, per connection):

- the parsed upgrade request and the handshake response, headers and all (~4 KB): the app
  reads the headers from the ASGI scope, which keeps its own copy; uvicorn uses them only
  until `websocket.accept` has sent the response;
- an `asyncio.Queue` for the incoming ASGI events (~3 KB: four deques and an Event): one
  consumer (the app's `receive`) and an unbounded queue need a list and a future;
- an `asyncio.Event` for "the transport can take more" (~0.8 KB: a deque of waiters);
- a loop `TimerHandle` for the next keepalive ping (~0.6 KB with its libuv timer): an entry
  in the loop's shared timers (api/realtime/deadlines.py) does.

Behaviour is uvicorn's: this only swaps those containers for lean ones with the methods
uvicorn calls (`put_nowait`, `get`, `empty`; `set`, `clear`, `is_set`, `wait`) and drops
the handshake objects once the handshake is over. `api.cli.uvicorn_options` selects it.
"""

from __future__ import annotations

import asyncio
import random
import struct
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from api.realtime.deadlines import deadlines


class _Inbox:
    """An unbounded FIFO for one consumer (uvicorn's `receive`)."""

    __slots__ = ("_items", "_loop", "_waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)


class _Flag:
    """An `asyncio.Event` whose waiters are made only while someone waits."""

    __slots__ = ("_loop", "_set", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter = self._loop.create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
            return True
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's `websockets-sansio` protocol with lean containers (see the module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = _Inbox(self.loop)  # type: ignore[assignment]
        writable = _Flag(self.loop)
        writable.set()
        self.writable = writable  # type: ignore[assignment]

    # Keepalive: uvicorn's, with the ping's and the pong's timers entries in the loop's
    # shared heap (api/realtime/deadlines.py) instead of a TimerHandle each (~0.6 KB).

    def schedule_ping(self) -> None:
        assert self.ping_interval is not None
        delay = max(0.0, self.ping_interval - self.last_ping_rtt)
        timer = deadlines(self.loop).call_at(self.loop.time() + delay, self.send_keepalive_ping)
        self.ping_timer = timer  # type: ignore[assignment]  # only cancel() is called

    def send_keepalive_ping(self) -> None:
        self.ping_timer = None
        if self.close_sent or self.transport.is_closing():
            return
        # A random payload identifies this ping (uvicorn's `handle_pong` checks it).
        self.pending_ping_payload = struct.pack("!I", random.getrandbits(32))
        self.ping_sent_at = self.loop.time()
        self.conn.send_ping(self.pending_ping_payload)
        self.transport.write(b"".join(self.conn.data_to_send()))
        if self.ping_timeout is not None:
            timer = deadlines(self.loop).call_at(
                self.loop.time() + self.ping_timeout, self.keepalive_timeout
            )
            self.pong_timer = timer  # type: ignore[assignment]
        else:
            self.schedule_ping()

    async def send(self, message: Any) -> None:
        await super().send(message)
        if self.handshake_complete and hasattr(self, "response"):
            # Sent (or refused): uvicorn reads neither again. The request's headers are
            # emptied too: websockets' parser keeps the request in a local for as long as
            # the connection lives (the app has its own copy in the ASGI scope).
            self.request.headers.clear()
            del self.response
            del self.request
