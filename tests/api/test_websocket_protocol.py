"""api/websocket_protocol.py: uvicorn's websockets-sansio protocol with lean containers.
Its containers behave as the asyncio ones it replaces, and a real server started with
serve's options uses it, drops the handshake objects and still serves the app."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect

from api.cli import uvicorn_options
from api.websocket_protocol import WebSocketProtocol, _Flag, _Inbox
from domain.core.settings import Settings
from tests.server import free_port


async def test_the_inbox_is_a_fifo_whose_get_waits_and_survives_a_cancelled_get() -> None:
    inbox = _Inbox(asyncio.get_running_loop())
    assert inbox.empty()
    waiting = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    inbox.put_nowait({"n": 1})
    assert await asyncio.wait_for(waiting, 1) == {"n": 1}
    cancelled = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    for n in (2, 3, 4):
        inbox.put_nowait({"n": n})
    assert inbox.qsize() == 3
    assert [await inbox.get() for _ in range(3)] == [{"n": 2}, {"n": 3}, {"n": 4}]
    assert inbox.empty()


async def test_the_flag_waits_while_cleared_and_wakes_every_waiter_when_set() -> None:
    flag = _Flag(asyncio.get_running_loop())
    assert not flag.is_set()
    waiters = [asyncio.create_task(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert not any(w.done() for w in waiters)
    flag.set()
    assert await asyncio.wait_for(asyncio.gather(*waiters), 1) == [True, True, True]
    assert await asyncio.wait_for(flag.wait(), 1) is True  # set: at once
    flag.clear()
    late = asyncio.create_task(flag.wait())
    await asyncio.sleep(0.01)
    assert not late.done()
    late.cancel()
    with pytest.raises(asyncio.CancelledError):
        await late
    flag.set()
    assert flag.is_set()


async def test_serve_uses_it_and_an_open_connection_keeps_no_handshake_objects() -> None:
    seen: dict[str, Any] = {}

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        seen["header"] = websocket.headers.get("x-probe")
        async for text in websocket.iter_text():
            await websocket.send_text(json.dumps({"echo": text}))

    app = Starlette(routes=[WebSocketRoute("/ws", echo)])
    options = uvicorn_options(Settings(environment="test"))
    assert options["ws"] == "api.websocket_protocol:WebSocketProtocol"
    assert options["ws_per_message_deflate"] is False
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, **{**options, "lifespan": "off"})
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if serving.done():
                serving.result()
            await asyncio.sleep(0.02)
        async with connect(
            f"ws://127.0.0.1:{port}/ws",
            additional_headers={"x-probe": "kept-in-scope"},
            compression="deflate",  # offered as browsers do; the server declines
        ) as socket:
            assert socket.response.headers.get("Sec-WebSocket-Extensions") is None
            for n in range(3):
                await socket.send(f"m{n}")
                assert json.loads(await socket.recv()) == {"echo": f"m{n}"}
            connections = server.server_state.connections
            protocols = [c for c in connections if isinstance(c, WebSocketProtocol)]
            assert len(protocols) == 1
            protocol = protocols[0]
            assert isinstance(protocol.queue, _Inbox)
            assert isinstance(protocol.writable, _Flag)
            assert not hasattr(protocol, "request")
            assert not hasattr(protocol, "response")
            assert seen["header"] == "kept-in-scope"
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
