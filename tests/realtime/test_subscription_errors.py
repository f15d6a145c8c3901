"""A subscription whose stream fails after it started sends a classified error, as HTTP
does: a domain error's code, and "Internal server error" for anything else, never the
exception's text (SQL, pool or driver details stay in the server's log)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from sqlalchemy.ext.asyncio import create_async_engine

from schema.context import AppServices
from tests.realtime.test_subscriptions import BALANCES, EVENTS, home
from tests.realtime.ws import GraphQLWS, serving


async def test_a_domain_error_in_the_stream_keeps_its_code(
    services: AppServices, make_client: Any
) -> None:
    asha = await home(make_client)
    async with serving(services) as base, GraphQLWS.open(base) as ws:
        await ws.init({"token": asha.token})
        await ws.subscribe("1", EVENTS, {"since": -1})
        message = await ws.message("1")
    assert message["type"] == "next", message
    (error,) = message["payload"]["errors"]
    assert error["extensions"]["code"] == "SINCE_TOO_OLD"


async def test_an_unexpected_failure_in_the_stream_is_masked(
    services: AppServices, make_client: Any
) -> None:
    asha = await home(make_client)
    # The same database through a pool of one connection that gives up after 0.3 s: while
    # the test holds that connection, the subscription's first read cannot get one (what
    # 10,000 subscribers on a busy process did in bench/realtime_ws.py).
    tiny = create_async_engine(services.engine.url, pool_size=1, max_overflow=0, pool_timeout=0.3)
    try:
        starved = dataclasses.replace(services, engine=tiny)
        async with serving(starved) as base, GraphQLWS.open(base) as ws:
            await ws.init({"token": asha.token})
            async with tiny.connect():
                await ws.subscribe("1", EVENTS)
                message = await ws.message("1", within=15)
    finally:
        await tiny.dispose()
    assert message["type"] == "next", message
    (error,) = message["payload"]["errors"]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert error["message"] == "Internal server error"
    assert "QueuePool" not in str(message)


async def test_a_recheck_the_server_cannot_run_keeps_the_connection(
    services: AppServices, make_client: Any
) -> None:
    """A busy pool is no sign-out: the connection stays, and the next recheck that runs
    still ends it when the session really is over."""
    asha = await home(make_client)
    tiny = create_async_engine(services.engine.url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    settings = services.settings.model_copy(update={"ws_recheck_seconds": 0.3})
    try:
        starved = dataclasses.replace(services, engine=tiny, settings=settings)
        async with serving(starved) as base, GraphQLWS.open(base) as ws:
            await ws.init({"token": asha.token})
            await ws.subscribe("1", BALANCES)
            async with tiny.connect():
                await asyncio.sleep(2)  # several rechecks fail to get a connection
            assert ws.closed is None
            await asha.client.ok("mutation { logout { sessionsEnded } }")
            closed = await ws.wait_closed(within=10)
    finally:
        await tiny.dispose()
    assert closed.code == 4401
