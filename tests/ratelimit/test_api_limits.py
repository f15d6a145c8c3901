"""Rate limits through the real app: 429 with headers for the noisy caller, nobody else."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
import uvicorn
import websockets
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response

from api.app import create_app
from schema.context import AppServices
from tests.graphql import PASSWORD, Client, register
from tests.graphql import post as post_transaction
from tests.ratelimit.conftest import LimitedClients, build_limiter
from tests.realtime.test_subscriptions import EVENTS, home
from tests.realtime.ws import GraphQLWS, serving

GRAPHQL_TRANSPORT_WS = websockets.Subprotocol("graphql-transport-ws")

ROOMY = 1_000_000
PAGE = "{ transactions(first: 10) { edges { node { id } } } }"  # costs 1 + 10 * 3 = 31
PAGE_COST = 31


@pytest.fixture(params=["redis", "memory"])
def backend(request: pytest.FixtureRequest, key_prefix: str) -> dict[str, Any]:
    """Settings that put the buckets in the shared test Redis, or in-process."""
    if request.param == "memory":
        return {"redis_url": None}
    url: str = request.getfixturevalue("redis_url")
    return {
        "redis_url": url,
        "rate_limit_key_prefix": key_prefix,
        "rate_limit_redis_timeout_ms": 2000,
    }


def tight_user_budget(backend: dict[str, Any]) -> dict[str, Any]:
    """100 cost units per user at most, refilled at one a second; the IP budget is roomy."""
    return {
        **backend,
        "rate_limit_cost_per_minute": 60,
        "rate_limit_cost_burst": 100,
        "rate_limit_ip_cost_per_minute": ROOMY,
        "rate_limit_ip_cost_burst": ROOMY,
    }


async def post(client: Client, query: str, **variables: Any) -> httpx.Response:
    return await client.http.post(
        "/graphql", json={"query": query, "variables": variables}, headers=client.headers
    )


def parse_ratelimit(value: str) -> dict[str, dict[str, int]]:
    """`"name";r=1;t=2, ...` -> {"name": {"r": 1, "t": 2}} (structured-field list items)."""
    parsed = {}
    for item in value.split(", "):
        name, *params = item.split(";")
        parsed[name.strip('"')] = {k: int(v) for k, v in (p.split("=") for p in params)}
    return parsed


async def test_a_burst_from_one_user_gets_429s_while_others_are_served(
    limited_app: Any, backend: dict[str, Any]
) -> None:
    make: LimitedClients = limited_app(**tight_user_budget(backend))
    asha, rohan = make(), make()
    await register(asha, name="Asha")
    await register(rohan, name="Rohan")

    statuses = [(await post(asha, PAGE)).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]  # 93 of 100 units spent
    refused = await post(asha, PAGE)
    assert refused.status_code == 429
    body = refused.json()
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    # 7 units left, 31 needed: 24 more at one a second.
    assert refused.headers["retry-after"] == "24"
    assert error["extensions"]["retryAfter"] == 24
    assert parse_ratelimit(refused.headers["ratelimit-policy"])["user-cost"] == {"q": 100, "w": 100}
    state = parse_ratelimit(refused.headers["ratelimit"])
    assert state["user-cost"]["r"] < PAGE_COST and 90 <= state["user-cost"]["t"] <= 93

    # Rohan, from the same IP, and a stranger from another IP are served as usual.
    served = await post(rohan, PAGE)
    assert served.status_code == 200, served.text
    assert parse_ratelimit(served.headers["ratelimit"])["user-cost"]["r"] == 100 - PAGE_COST
    stranger = make(ip="198.51.100.7")
    assert (await post(stranger, "{ __typename }")).status_code == 200

    # The limit follows Asha to another IP: it is hers, not her network's.
    elsewhere = make(ip="203.0.113.9")
    elsewhere.http.cookies = asha.http.cookies
    assert (await post(elsewhere, PAGE)).status_code == 429


async def test_a_limited_request_changes_nothing(
    limited_app: Any, backend: dict[str, Any], key_prefix: str
) -> None:
    make: LimitedClients = limited_app(**tight_user_budget(backend))
    asha = make()
    await register(asha)
    for _ in range(3):
        await post(asha, PAGE)
    create = 'mutation { createAccount(input: {name: "Late", kind: CASH, currency: "INR"}) { id } }'
    response = await post(asha, create)
    assert response.status_code == 429, response.text
    # Let Asha in again (a fresh limiter) and look: the account was never created.
    served: LimitedClients = limited_app(**{**backend, "rate_limit_key_prefix": key_prefix + "x:"})
    again = served()
    again.http.cookies = asha.http.cookies
    assert (await again.ok("{ accounts { name } }"))["accounts"] == []


async def test_an_ip_budget_limits_anonymous_callers_per_address(
    limited_app: Any, backend: dict[str, Any]
) -> None:
    make: LimitedClients = limited_app(
        **backend, rate_limit_ip_cost_per_minute=60, rate_limit_ip_cost_burst=5
    )
    noisy, quiet = make(ip="192.0.2.1"), make(ip="192.0.2.2")
    statuses = [(await post(noisy, "{ __typename }")).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    assert (await post(quiet, "{ __typename }")).status_code == 200


async def test_successful_responses_carry_the_ratelimit_headers(
    limited_app: Any, backend: dict[str, Any]
) -> None:
    make: LimitedClients = limited_app(**tight_user_budget(backend))
    asha = make()
    await register(asha)
    response = await post(asha, "{ me { user { id } } }")  # costs 3
    assert response.status_code == 200
    assert "retry-after" not in response.headers
    policies = parse_ratelimit(response.headers["ratelimit-policy"])
    assert policies["user-cost"] == {"q": 100, "w": 100}
    assert policies["ip-cost"]["q"] == ROOMY
    state = parse_ratelimit(response.headers["ratelimit"])
    assert state["user-cost"] == {"r": 97, "t": 3}


async def test_login_attempts_are_limited_long_before_queries(
    limited_app: Any, backend: dict[str, Any]
) -> None:
    # The default bursts (5 per email, 10 per IP), refilled slowly enough (one a minute)
    # that password hashing during the test gives nothing back.
    make: LimitedClients = limited_app(
        **backend,
        rate_limit_auth_per_minute=1,
        rate_limit_auth_burst=5,
        rate_limit_ip_auth_per_minute=1,
        rate_limit_ip_auth_burst=10,
    )
    asha = make(ip="192.0.2.10")
    email = (await register(asha))["email"]
    guesser = make(ip="192.0.2.20")
    login = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { user { id } } }"
    codes = []
    for _ in range(5):
        body = (await post(guesser, login, e=email.upper(), p="wrong-password")).json()
        codes.append(body["errors"][0]["extensions"]["code"])
    # Registering was the first attempt on this email: four guesses, then no more.
    assert codes == ["UNAUTHENTICATED"] * 4 + ["RATE_LIMITED"]
    # Even the right password is refused now, without being checked.
    refused = await post(guesser, login, e=email, p=PASSWORD)
    assert refused.status_code == 429
    assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert 55 <= int(refused.headers["retry-after"]) <= 60
    # The same address is still served for queries (its cost budget is far from spent) ...
    assert (await post(guesser, "{ __typename }")).status_code == 200
    # ... and may still try other emails, until its per-IP attempt budget (10) is spent:
    # four attempts so far (refused ones are not charged).
    codes = []
    for i in range(7):
        body = (await post(guesser, login, e=f"nobody{i}@example.com", p="x")).json()
        codes.append(body["errors"][0]["extensions"]["code"])
    assert codes == ["UNAUTHENTICATED"] * 6 + ["RATE_LIMITED"]
    # Asha herself, from her own address, is also held off her account for now:
    # the target bucket is per email, whoever knocks.
    assert (await post(asha, login, e=email, p=PASSWORD)).status_code == 429


async def test_redis_holds_hashes_never_emails(
    limited_app: Any, redis_url: str, key_prefix: str
) -> None:
    make: LimitedClients = limited_app(
        redis_url=redis_url,
        rate_limit_key_prefix=key_prefix,
        rate_limit_redis_timeout_ms=2000,
        # Slow refills, so that the keys outlive the request (a full bucket's key expires).
        rate_limit_ip_cost_per_minute=1,
        rate_limit_auth_per_minute=1,
        rate_limit_ip_auth_per_minute=1,
    )
    client = make()
    await post(
        client, 'mutation { login(email: "asha@example.com", password: "x") { user { id } } }'
    )
    store = redis.Redis.from_url(redis_url)
    try:
        keys = sorted([key.decode() async for key in store.scan_iter(match=f"{key_prefix}*")])
    finally:
        await store.aclose()
    names = [key.removeprefix(key_prefix) for key in keys]
    assert [name.split(":")[0] for name in names] == ["ip-auth", "ip-cost", "target-auth"]
    assert re.fullmatch(r"target-auth:[0-9a-f]{32}", names[2])
    assert not any("asha" in key for key in keys)


async def test_websocket_connection_attempts_are_limited_per_ip_and_user(
    services: AppServices,
) -> None:
    limiter = build_limiter(
        services.settings,
        services.signer,
        rate_limit_websocket_per_minute=1,
        rate_limit_websocket_burst=2,
    )
    app = create_app(services.settings, dataclasses.replace(services, limiter=limiter))
    async with serve(app) as port:
        url = f"ws://127.0.0.1:{port}/graphql"
        assert [(await upgrade(url)).status_code for _ in range(2)] == [101, 101]
        refused = await upgrade(url)
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] in ("59", "60")
        assert json.loads(refused.body)["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert parse_ratelimit(refused.headers["RateLimit-Policy"]) == {
            "ip-websocket": {"q": 2, "w": 120}
        }
        # A signed-in caller is charged per user as well (and refused here for the IP).
        token = services.signer.issue(uuid.uuid4(), uuid.uuid4())
        refused = await upgrade(url, {"Authorization": f"Bearer {token}"})
        assert refused.status_code == 429
        policies = parse_ratelimit(refused.headers["RateLimit-Policy"])
        assert set(policies) == {"ip-websocket", "user-websocket"}
    await limiter.aclose()


async def upgrade(url: str, headers: dict[str, str] | None = None) -> Response:
    """One WebSocket handshake: the server's answer (101 when it accepted)."""
    try:
        async with websockets.connect(
            url, subprotocols=[GRAPHQL_TRANSPORT_WS], additional_headers=headers
        ) as ws:
            assert ws.response is not None
            return ws.response
    except InvalidStatus as refused:
        return refused.response


@asynccontextmanager
async def serve(app: Any) -> AsyncIterator[int]:
    """The app on a real uvicorn server on a free loopback port, in this event loop."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, ws="websockets-sansio", lifespan="off", log_level="error"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started, "uvicorn did not start"
        yield port
    finally:
        server.should_exit = True
        await task


async def test_documents_that_fail_to_parse_or_validate_are_charged_too(
    limited_app: Any, backend: dict[str, Any]
) -> None:
    make: LimitedClients = limited_app(
        **backend, rate_limit_ip_cost_per_minute=1, rate_limit_ip_cost_burst=3
    )
    client = make(ip="192.0.2.30")
    codes = []
    for query in ("{ nonsense", "{ noSuchField }", "{ __typename", "{ __typename }"):
        response = await post(client, query)
        codes.append(
            (
                response.status_code,
                response.json()["errors"][0]["extensions"]["code"]
                if "errors" in response.json()
                else None,
            )
        )
    assert codes == [
        (200, "GRAPHQL_PARSE_FAILED"),
        (200, "GRAPHQL_VALIDATION_FAILED"),
        (200, "GRAPHQL_PARSE_FAILED"),
        (429, "RATE_LIMITED"),
    ]


async def test_operations_over_the_ceiling_are_charged_as_failures(
    limited_app: Any, backend: dict[str, Any]
) -> None:
    make: LimitedClients = limited_app(
        **backend,
        rate_limit_max_cost=10,
        rate_limit_ip_cost_per_minute=1,
        rate_limit_ip_cost_burst=2,
    )
    client = make(ip="192.0.2.31")
    statuses = [(await post(client, PAGE)).status_code for _ in range(3)]
    assert statuses == [400, 400, 429]


async def test_subscription_starts_are_limited_over_a_real_websocket(
    services: AppServices, make_client: Any, backend: dict[str, Any]
) -> None:
    """A burst of 2 starts: the 3rd and 4th subscriptions are refused with RATE_LIMITED and
    their retry time, the first two stay live; the budget is the user's, not only the IP's
    (the token arrives in connection_init, not in a header)."""
    changes = {"rate_limit_subscription_per_minute": 1, "rate_limit_subscription_burst": 2}
    # Only the limiter's buckets move to Redis: the app's own redis_url would also move its
    # event fan-out there, away from the app that posts the transaction.
    limiter = build_limiter(services.settings, services.signer, **backend, **changes)
    limited = dataclasses.replace(
        services, settings=services.settings.model_copy(update=changes), limiter=limiter
    )
    asha = await home(make_client)
    refused = []
    try:
        async with serving(limited) as base, GraphQLWS.open(base) as ws:
            await ws.init({"token": asha.token})
            # One at a time: starts on one connection are admitted concurrently.
            for operation_id in ("1", "2"):
                await ws.subscribe(operation_id, EVENTS)
                assert await ws.silent(operation_id, 0.5)
            for operation_id in ("3", "4"):
                await ws.subscribe(operation_id, EVENTS)
                refused.append(await ws.message(operation_id))
                assert (await ws.message(operation_id))["type"] == "complete"
            posted = await post_transaction(asha.client, asha.account, asha.groceries, "-9.00")
            for operation_id in ("1", "2"):
                event = (await ws.data(operation_id))["workspaceEvents"]
                assert event["transactionId"] == posted
            assert await ws.silent("3", 0.01) and await ws.silent("4", 0.01)

            # The same user from another address: the user's own bucket is spent too.
            async with GraphQLWS.open(base, local_addr=("127.0.0.2", 0)) as elsewhere:
                await elsewhere.init({"token": asha.token})
                await elsewhere.subscribe("5", EVENTS)
                refused.append(await elsewhere.message("5"))
    finally:
        await limiter.aclose()
    assert len(refused) == 3
    for message in refused:
        assert message["type"] == "next", message
        assert message["payload"]["data"] is None
        [error] = message["payload"]["errors"]
        assert error["extensions"]["code"] == "RATE_LIMITED", error
        # Two starts spent, one refilled a minute: the next start in about 60 s, less the
        # few seconds the test itself took since the first start (waits, a post, a second
        # connection; longer on a busy machine).
        seconds = error["extensions"]["retryAfter"]
        assert 50 <= seconds <= 60, error
        assert error["message"] == f"Too many requests: try again in {seconds} s"
