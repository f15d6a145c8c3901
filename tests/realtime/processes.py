"""Real processes for the multi-process realtime tests: API servers (`python -m api serve`,
uvicorn), the relay (`python -m api worker`, external mode) and people signed up over HTTP.

Each process logs to a file of its own (a pipe nobody reads would block a chatty one) and
takes its settings from `WEALTHWISE_*` variables, the way a deployment gives them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from domain.core.settings import Settings
from schema.ids import decode_id
from tests import services as test_services
from tests.graphql import PASSWORD, POST, REGISTER
from tests.realtime.ws import Closed, GraphQLWS
from tests.server import ROOT, free_port


def environment(settings: Settings, **extra: object) -> dict[str, str]:
    """The WEALTHWISE_* variables that give a subprocess `settings` (and `extra`)."""
    env = {
        "WEALTHWISE_ENVIRONMENT": settings.environment,
        "WEALTHWISE_DATA_DIR": str(settings.data_dir),
        "WEALTHWISE_LOG_LEVEL": "WARNING",
    }
    if settings.database_url:
        env["WEALTHWISE_DATABASE_URL"] = settings.database_url
    assert settings.kek is not None and settings.jwt_secret is not None
    env["WEALTHWISE_KEK"] = settings.kek.get_secret_value()
    env["WEALTHWISE_JWT_SECRET"] = settings.jwt_secret.get_secret_value()
    # The suite signs many people up from 127.0.0.1 (see tests/services.py).
    for name, value in test_services.ROOMY_RATE_LIMITS.items():
        env[f"WEALTHWISE_{name.upper()}"] = str(value)
    for name, value in extra.items():
        env[f"WEALTHWISE_{name.upper()}"] = str(value)
    return env


@dataclass
class Process:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def rss_kb(self) -> int:
        """Resident memory (VmRSS) of the process, in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError(f"no VmRSS for {self.name}")

    def stop(self, timeout: float = 30) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def spawn(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> Process:
    log = log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return Process(name, process, log)


@contextmanager
def api_server(
    env: dict[str, str], log_dir: Path, name: str = "api", timeout: float = 60
) -> Iterator[tuple[str, Process]]:
    """`python -m api serve --port N` (uvicorn, one process) until the block ends; yields
    (base url, process) once /health/ready answers 200."""
    port = free_port()
    server = spawn(name, ["-m", "api", "serve", "--port", str(port)], env, log_dir)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if not server.alive():
                pytest.fail(f"{name} exited:\n{server.output()}")
            try:
                if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{name} was not ready in {timeout:.0f} s:\n{server.output()}")
            time.sleep(0.1)
        yield base, server
    finally:
        server.stop()


@contextmanager
def worker(env: dict[str, str], log_dir: Path, name: str = "worker") -> Iterator[Process]:
    """`python -m api worker` (the relay to Redis, external mode) until the block ends."""
    process = spawn(name, ["-m", "api", "worker", "--no-scheduler"], env, log_dir)
    try:
        yield process
    finally:
        process.stop()


# ------------------------------------------------------------------ people, over HTTP


@dataclass
class Person:
    """Someone signed up on one API process: the access token (for connection_init and
    the Authorization header), an account and the Groceries category."""

    base: str
    token: str
    workspace: uuid.UUID
    account: str = ""
    groceries: str = ""

    async def execute(
        self,
        query: str,
        base: str | None = None,
        http: httpx.AsyncClient | None = None,
        **variables: Any,
    ) -> Any:
        if http is None:
            async with httpx.AsyncClient(base_url=base or self.base, timeout=30) as own:
                return await self.execute(query, http=own, **variables)
        response = await http.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {self.token}"},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert not body.get("errors"), body["errors"]
        return body["data"]

    async def post(
        self,
        amount: str = "-12.50",
        *,
        base: str | None = None,
        http: httpx.AsyncClient | None = None,
        payee: str = "Shop",
    ) -> str:
        """postTransaction on `base` (default: the person's own process) or over `http`;
        returns its id. When it returns, the transaction and its two events are committed."""
        data = await self.execute(
            POST,
            base,
            http,
            i={
                "accountId": self.account,
                "categoryId": self.groceries,
                "amount": amount,
                "date": "2025-03-10",
                "payee": payee,
            },
            k=uuid.uuid4().hex,
        )
        return str(data["postTransaction"]["id"])

    async def post_many(self, count: int, concurrency: int = 3) -> None:
        """`count` posts on the person's process, `concurrency` at a time (keep-alive)."""
        left = count

        async def poster(http: httpx.AsyncClient) -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await self.post(http=http)

        async with httpx.AsyncClient(base_url=self.base, timeout=30) as http:
            await asyncio.gather(*(poster(http) for _ in range(concurrency)))


def access_token(response: httpx.Response) -> str:
    """The access cookie's value from Set-Cookie (it is Secure: httpx would not replay it
    over plain http, so it goes in the Authorization header and in connection_init)."""
    for header in response.headers.get_list("set-cookie"):
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(header)
        for name in ("__Host-ww_access", "ww_access"):
            if name in cookie:
                return cookie[name].value
    raise AssertionError(f"no access cookie in {response.headers.get_list('set-cookie')}")


async def sign_up(base: str, name: str = "Asha") -> Person:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        email = f"{name.lower()}-{uuid.uuid4().hex[:10]}@example.com"
        response = await http.post(
            "/graphql",
            json={
                "query": REGISTER,
                "variables": {
                    "email": email,
                    "password": PASSWORD,
                    "name": name,
                    "currency": "INR",
                },
            },
        )
        body = response.json()
        assert response.status_code == 200 and not body.get("errors"), response.text
    workspace = decode_id(body["data"]["register"]["workspaces"][0]["id"], "Workspace")
    person = Person(base, access_token(response), workspace)
    created = await person.execute(
        """mutation($i: CreateAccountInput!) { createAccount(input: $i) { id } }""",
        i={
            "name": "HDFC",
            "kind": "CHECKING",
            "currency": "INR",
            "openingBalance": "0",
            "openingDate": "2024-01-01",
        },
    )
    person.account = created["createAccount"]["id"]
    categories = await person.execute("{ categories { id name } }")
    person.groceries = next(c["id"] for c in categories["categories"] if c["name"] == "Groceries")
    return person


async def eventually(condition: Any, seconds: float, what: str) -> None:
    """Poll a sync or async condition until it holds; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"not within {seconds} s: {what}")
        await asyncio.sleep(0.05)


# ------------------------------------------------------------------ a resuming subscriber

RETRYABLE = {1012, 1013}  # Service Restart, Try Again Later (api/realtime/hub.py)

FOLLOW = """subscription($since: Int) { workspaceEvents(since: $since) { seq occurredAt } }"""


@dataclass
class Seen:
    seq: int
    received: float  # time.time() when the client had it
    occurred: float  # the event's occurredAt (emitted in the committing transaction)
    connection: int  # which of the follower's connections delivered it


class Follower:
    """A client that follows one workspace's events the way the issue asks clients to:
    subscribe, and when the server closes the socket with a retryable code, connect again
    (to the same process) with `since` = the last seq it saw. Everything it receives is
    kept, duplicates included, so a test can check the whole list."""

    def __init__(self, base: str, token: str, since: int) -> None:
        self.base = base
        self.token = token
        self.since = since
        self.seen: list[Seen] = []
        self.closes: list[int | None] = []
        self.connections = 0
        self.failure: BaseException | None = None
        self._arrived = asyncio.Event()
        self._pause = False
        self._may_connect = asyncio.Event()  # cleared while dropped
        self._may_connect.set()
        self._socket: GraphQLWS | None = None
        self.task = asyncio.create_task(self._run())

    @property
    def last(self) -> int:
        return self.seen[-1].seq if self.seen else self.since

    def seqs(self) -> list[int]:
        return [item.seq for item in self.seen]

    async def _run(self) -> None:
        try:
            while True:
                await self._may_connect.wait()
                async with GraphQLWS.open(self.base) as ws:
                    self._socket = ws
                    self.connections += 1
                    await ws.init({"token": self.token})
                    await ws.subscribe("1", FOLLOW, {"since": self.last})
                    try:
                        while True:
                            event = (await ws.data("1", within=3600))["workspaceEvents"]
                            self.seen.append(
                                Seen(
                                    event["seq"],
                                    time.time(),
                                    dt.datetime.fromisoformat(event["occurredAt"]).timestamp(),
                                    self.connections,
                                )
                            )
                            self._arrived.set()
                    except Closed as closed:
                        self.closes.append(closed.code)
                        if closed.code not in RETRYABLE and not self._pause:
                            raise
                    finally:
                        self._socket = None
        except BaseException as error:  # kept for the test to report; the task just ends
            self.failure = error
            self._arrived.set()
            if isinstance(error, asyncio.CancelledError):
                raise

    async def until(self, seq: int, within: float = 10) -> None:
        async with asyncio.timeout(within):
            while self.last < seq:
                if self.failure is not None:
                    raise AssertionError(f"the follower failed: {self.failure!r}")
                self._arrived.clear()
                await self._arrived.wait()

    async def drop(self) -> None:
        """Close the socket from the client's side and stay away until `resume()`."""
        self._pause = True
        self._may_connect.clear()
        if self._socket is not None:
            await self._socket.socket.close()

    def resume(self) -> None:
        self._pause = False
        self._may_connect.set()

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


# ------------------------------------------------------------------ a client that stops reading


class StalledClient:
    """A graphql-transport-ws client on a raw TCP socket with a 4 KiB receive buffer: it
    signs in, subscribes, reads until its first event and then stops reading, so whatever
    the server sends piles up on the server's side (websockets' sans-I/O protocol frames
    the messages; nothing reads in the background)."""

    def __init__(self, base: str) -> None:
        self.url = base.replace("http", "ws", 1) + "/graphql"
        self.protocol = ClientProtocol(
            parse_uri(self.url), subprotocols=[Subprotocol("graphql-transport-ws")], max_size=None
        )
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.setblocking(False)
        self.messages: list[dict[str, Any]] = []
        self.read_bytes = 0
        self.eof = False

    async def _flush(self) -> None:
        await asyncio.get_running_loop().sock_sendall(
            self.sock, b"".join(self.protocol.data_to_send())
        )

    async def _read_until(self, done: Any, within: float) -> None:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(within):
            while not done():
                data = await loop.sock_recv(self.sock, 65536)
                self.read_bytes += len(data)
                if not data:
                    self.eof = True
                    self.protocol.receive_eof()
                    return
                self.protocol.receive_data(data)
                for event in self.protocol.events_received():
                    if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                        self.messages.append(json.loads(event.data))
                if self.protocol.close_rcvd is not None:
                    return

    async def open(
        self, token: str, subscriptions: dict[str, str], variables: dict[str, Any]
    ) -> None:
        """Sign in and start every subscription (each with `variables`)."""
        loop = asyncio.get_running_loop()
        address = self.url.removeprefix("ws://").split("/")[0].split(":")
        await loop.sock_connect(self.sock, (address[0], int(address[1])))
        self.protocol.send_request(self.protocol.connect())
        await self._flush()
        await self._read_until(lambda: self.protocol.state is State.OPEN, 10)
        if self.protocol.handshake_exc is not None:
            raise self.protocol.handshake_exc
        self.protocol.send_text(
            json.dumps({"type": "connection_init", "payload": {"token": token}}).encode()
        )
        await self._flush()
        await self._read_until(
            lambda: any(m["type"] == "connection_ack" for m in self.messages), 10
        )
        for operation, query in subscriptions.items():
            payload = {"query": query, "variables": variables}
            message = {"id": operation, "type": "subscribe", "payload": payload}
            self.protocol.send_text(json.dumps(message).encode())
        await self._flush()

    async def read_first_events(self, operations: set[str], within: float = 10) -> None:
        def all_there() -> bool:
            have = {m.get("id") for m in self.messages if m["type"] == "next"}
            return operations <= have

        await self._read_until(all_there, within)

    async def drain(self, within: float) -> int | None:
        """Read again (everything the server held back) until the server closes; the close
        code, or None when the socket was still open after `within` seconds."""
        try:
            await self._read_until(lambda: False, within)
        except TimeoutError:
            return None
        if self.protocol.close_rcvd is not None:
            return self.protocol.close_rcvd.code
        return 1006 if self.eof else None

    def close(self) -> None:
        self.sock.close()
