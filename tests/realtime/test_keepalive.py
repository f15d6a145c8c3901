"""Keepalive pings (api/websocket_protocol.py over uvicorn's): a peer that stopped answering
is closed with 1011 and let go, one that answers stays open, whatever the ping interval.
The ping and pong timers are entries in the loop's shared heap (api/realtime/deadlines.py),
so this also checks that a pong cancels its timeout there."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from typing import Any
from urllib.parse import urlsplit

from api.realtime.deadlines import deadlines
from schema.context import AppServices
from tests.graphql import Client, register
from tests.realtime.test_subscriptions import EVENTS, token_of
from tests.realtime.ws import GraphQLWS, served

INTERVAL = 0.4


async def silent_peer(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket client that completes the upgrade and then never reads a frame or
    answers a ping (a phone that lost its network, a stuck proxy)."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /graphql HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
        ).encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


def frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of each unmasked server frame (short payloads only)."""
    found = []
    while data:
        opcode, length = data[0] & 0x0F, data[1] & 0x7F
        assert length < 126
        found.append((opcode, data[2 : 2 + length]))
        data = data[2 + length :]
    return found


async def test_a_peer_that_never_answers_pings_is_closed_and_one_that_does_stays_open(
    services: AppServices, make_client: Any
) -> None:
    client: Client = make_client()
    await register(client)
    timers = deadlines(asyncio.get_running_loop())
    async with served(services, ws_ping_interval=INTERVAL, ws_ping_timeout=2 * INTERVAL) as server:
        idle_timers = len(timers)
        async with GraphQLWS.open(server.url) as live:  # websockets answers pings itself
            await live.init({"token": token_of(client)})
            await live.subscribe("e", EVENTS)
            (protocol,) = server.server.server_state.connections
            first_ping = await pinged(protocol, after=0.0)
            reader, writer = await silent_peer(server.url)
            received = b""
            try:
                async with asyncio.timeout(15 * INTERVAL):
                    while chunk := await reader.read(4096):
                        received += chunk
            finally:
                writer.close()
            seen = frames(received)
            assert seen[0][0] == 0x9  # a ping it never answered
            closing = next(payload for opcode, payload in seen if opcode == 0x8)
            assert struct.unpack("!H", closing[:2])[0] == 1011  # keepalive ping timeout
            # The answering connection is pinged again and again (each pong schedules the
            # next ping and cancels its own timeout), and still works.
            await pinged(protocol, after=await pinged(protocol, after=first_ping))
            assert live.closed is None
            await live.subscribe("again", EVENTS)
            assert await live.silent("again", INTERVAL)
            assert live.closed is None
        for _ in range(100):
            if not server.server.server_state.connections:
                break
            await asyncio.sleep(0.05)
        assert not server.server.server_state.connections  # the dead one was let go too
        # Each connection's ping, pong and expiry timers left the shared heap with it.
        for _ in range(100):
            if len(timers) <= idle_timers:
                break
            await asyncio.sleep(0.05)
        assert len(timers) <= idle_timers


async def pinged(protocol: Any, *, after: float) -> float:
    """When the server next pinged this connection after loop time `after`."""
    for _ in range(200):
        if protocol.ping_sent_at > after:
            sent: float = protocol.ping_sent_at
            return sent
        await asyncio.sleep(0.02)
    raise AssertionError("no ping")
