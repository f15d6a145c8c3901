"""A graphql-transport-ws client over real WebSockets, and the app served by a real uvicorn
in the test's own event loop (so the test shares the app's database fixtures)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from api.app import create_app
from api.cli import uvicorn_options
from schema.context import AppServices
from tests.server import free_port

PROTOCOL = "graphql-transport-ws"


@dataclass
class Served:
    url: str
    server: uvicorn.Server

    @property
    def state(self) -> dict[str, Any]:
        """What the app's lifespan holds (the hub, the fan-out, ...)."""
        lifespan = self.server.lifespan
        state: dict[str, Any] = lifespan.state
        return state


@asynccontextmanager
async def served(services: AppServices, **config: Any) -> AsyncIterator[Served]:
    """The API on a free port until the block ends, with a handle on its server."""
    port = free_port()
    app = create_app(services.settings, services)
    # What `wealthwise serve` runs with (its WebSocket protocol, limits, compression).
    options = uvicorn_options(services.settings)
    config = {**options, "log_level": "warning", "lifespan": "on", **config}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **config))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield Served(f"http://127.0.0.1:{port}", server)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


@asynccontextmanager
async def serving(services: AppServices, **config: Any) -> AsyncIterator[str]:
    """The API on a free port until the block ends; yields its base URL (http://…)."""
    async with served(services, **config) as server:
        yield server.url


class Closed(Exception):
    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed {code}: {reason}")
        self.code = code
        self.reason = reason


class GraphQLWS:
    """One connection: `init`, then `subscribe` operations and read their messages."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.ack: dict[str, Any] | None = None
        self._queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.closed: Closed | None = None
        self._ended = asyncio.Event()

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        base: str,
        *,
        headers: dict[str, str] | None = None,
        origin: str | None = None,
        **config: Any,
    ) -> AsyncIterator[GraphQLWS]:
        url = base.replace("http", "ws", 1) + "/graphql"
        async with connect(
            url,
            subprotocols=[PROTOCOL],  # type: ignore[list-item]
            additional_headers=headers or {},
            origin=origin,  # type: ignore[arg-type]
            open_timeout=10,
            **config,
        ) as socket:
            client = cls(socket)
            try:
                yield client
            finally:
                if client._reader is not None:
                    client._reader.cancel()

    async def init(self, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """connection_init; the ack's payload, or `Closed` with the server's close code."""
        await self.socket.send(json.dumps({"type": "connection_init", "payload": payload or {}}))
        try:
            message = json.loads(await asyncio.wait_for(self.socket.recv(), 10))
        except ConnectionClosed as error:
            raise Closed(error.rcvd.code if error.rcvd else None, _reason(error)) from None
        assert message["type"] == "connection_ack", message
        self.ack = message.get("payload") or {}
        self._reader = asyncio.create_task(self._read())
        return self.ack

    async def _read(self) -> None:
        try:
            async for raw in self.socket:
                message = json.loads(raw)
                if message.get("type") == "ping":
                    await self.socket.send(json.dumps({"type": "pong"}))
                    continue
                if "id" in message:
                    self._queue(message["id"]).put_nowait(message)
        except ConnectionClosed as error:
            self.closed = Closed(error.rcvd.code if error.rcvd else None, _reason(error))
        else:
            rcvd = self.socket.close_code
            self.closed = Closed(rcvd, self.socket.close_reason or "")
        self._ended.set()
        for queue in self._queues.values():
            queue.put_nowait({"type": "closed"})

    def _queue(self, operation_id: str) -> asyncio.Queue[dict[str, Any]]:
        return self._queues.setdefault(operation_id, asyncio.Queue())

    async def subscribe(
        self, operation_id: str, query: str, variables: dict[str, Any] | None = None
    ) -> None:
        self._queue(operation_id)
        payload = {"query": query, "variables": variables or {}}
        await self.socket.send(
            json.dumps({"id": operation_id, "type": "subscribe", "payload": payload})
        )

    async def complete(self, operation_id: str) -> None:
        await self.socket.send(json.dumps({"id": operation_id, "type": "complete"}))

    async def message(self, operation_id: str, within: float = 10) -> dict[str, Any]:
        """The operation's next message (`next`, `error`, `complete`), or raises `Closed`."""
        message = await asyncio.wait_for(self._queue(operation_id).get(), within)
        if message["type"] == "closed":
            assert self.closed is not None
            raise self.closed
        return message

    async def data(self, operation_id: str, within: float = 10) -> dict[str, Any]:
        """The next `next` payload's data; fails on errors."""
        message = await self.message(operation_id, within)
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message["payload"]
        data: dict[str, Any] = message["payload"]["data"]
        return data

    async def silent(self, operation_id: str, seconds: float) -> bool:
        """True when nothing arrives for the operation within `seconds`."""
        try:
            message = await asyncio.wait_for(self._queue(operation_id).get(), seconds)
        except TimeoutError:
            return True
        self._queue(operation_id).put_nowait(message)
        return False

    async def wait_closed(self, within: float = 10) -> Closed:
        await asyncio.wait_for(self._ended.wait(), within)
        assert self.closed is not None
        return self.closed


def _reason(error: ConnectionClosed) -> str:
    return error.rcvd.reason if error.rcvd else ""
