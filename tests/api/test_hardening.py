"""The HTTP/GraphQL edge: CSRF, Origin allowlist, transport and operation limits, timeouts,
masked errors and security headers, through the real app on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import strawberry
from sqlalchemy import text
from strawberry.tools import merge_types
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin, Subprotocol

from api.app import build_services, create_app
from domain.core.db import create_engine
from domain.core.settings import Settings
from domain.identity import service as identity
from schema import WealthWiseSchema
from schema import schema as real_schema
from schema.context import Info
from schema.identity.api import IdentityMutation, IdentityQuery
from tests.graphql import (
    PASSWORD,
    POST,
    REGISTER,
    Client,
    category_ids,
    create_account,
    register,
)
from tests.realtime.ws import serving

BASE = "https://wealthwise.test"
LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { user { id } } }"


def _services_with(services: Any, **settings: Any) -> Any:
    return dataclasses.replace(services, settings=services.settings.model_copy(update=settings))


@asynccontextmanager
async def _http(
    services: Any, base_url: str = BASE, schema: Any = real_schema, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The real app with some settings changed, behind an httpx client."""
    changed = _services_with(services, **settings)
    app = create_app(changed.settings, changed, schema=schema)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as c:
        yield c


def _register_body(email: str) -> dict[str, Any]:
    variables = {"email": email, "password": PASSWORD, "name": "Mallory", "currency": "INR"}
    return {"query": REGISTER, "variables": variables}


def _email() -> str:
    return f"csrf-{uuid.uuid4().hex[:10]}@example.com"


async def _user_exists(http: httpx.AsyncClient, email: str) -> bool:
    response = await http.post(
        "/graphql", json={"query": LOGIN, "variables": {"e": email, "p": PASSWORD}}
    )
    body = response.json()
    if body.get("errors"):
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", body
        return False
    return True


def _code(response: httpx.Response) -> str:
    body = response.json()
    assert body["data"] is None and len(body["errors"]) == 1, body
    return str(body["errors"][0]["extensions"]["code"])


# ---------------------------------------------------------------- CSRF

SIMPLE_CONTENT_TYPES = [
    "text/plain",
    "text/plain;charset=UTF-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=----form",
    " Text/Plain ; charset=utf-8",
    None,  # no Content-Type at all
]


@pytest.mark.parametrize("content_type", SIMPLE_CONTENT_TYPES)
async def test_a_simple_cross_site_post_is_refused_and_executes_nothing(
    make_client: Any, content_type: str | None
) -> None:
    http = make_client().http
    email = _email()
    headers = {"content-type": content_type} if content_type else {}
    response = await http.post(
        "/graphql", content=json.dumps(_register_body(email)), headers=headers
    )
    assert response.status_code == 400
    assert _code(response) == "CSRF_REJECTED"
    assert not await _user_exists(http, email)


@pytest.mark.parametrize("content_type", SIMPLE_CONTENT_TYPES)
@pytest.mark.parametrize("header", ["apollo-require-preflight", "x-apollo-operation-name"])
async def test_a_preflight_header_lets_a_simple_content_type_past_the_csrf_rule(
    make_client: Any, content_type: str | None, header: str
) -> None:
    http = make_client().http
    email = _email()
    headers = {header: "Register"}
    if content_type:
        headers["content-type"] = content_type
    response = await http.post(
        "/graphql", content=json.dumps(_register_body(email)), headers=headers
    )
    # Past the CSRF wall, the body parser only reads JSON: a clear error, still nothing done.
    assert response.status_code == 400
    assert _code(response) == "UNSUPPORTED_CONTENT_TYPE"
    assert not await _user_exists(http, email)


async def test_an_empty_preflight_header_does_not_count(make_client: Any) -> None:
    http = make_client().http
    response = await http.post(
        "/graphql",
        content=json.dumps(_register_body(_email())),
        headers={"content-type": "text/plain", "apollo-require-preflight": ""},
    )
    assert _code(response) == "CSRF_REJECTED"


@pytest.mark.parametrize("header", [None, "apollo-require-preflight"])
async def test_json_posts_pass_with_or_without_the_preflight_header(
    make_client: Any, header: str | None
) -> None:
    http = make_client().http
    email = _email()
    headers = {header: "1"} if header else {}
    response = await http.post("/graphql", json=_register_body(email), headers=headers)
    assert response.status_code == 200 and response.json()["data"]["register"]["user"]["id"]
    assert await _user_exists(http, email)


async def test_a_mutation_over_get_is_refused(make_client: Any) -> None:
    http = make_client().http
    email = _email()
    params = {"query": REGISTER, "variables": json.dumps(_register_body(email)["variables"])}
    accept = {"accept": "application/json"}
    plain = await http.get("/graphql", params=params, headers=accept)
    assert plain.status_code == 400 and _code(plain) == "CSRF_REJECTED"
    preflighted = await http.get(
        "/graphql", params=params, headers={**accept, "apollo-require-preflight": "1"}
    )
    assert preflighted.status_code == 400 and _code(preflighted) == "OPERATION_NOT_ALLOWED"
    assert not await _user_exists(http, email)


# ---------------------------------------------------------------- Origin (HTTP)


async def test_a_post_from_a_foreign_origin_is_refused(make_client: Any) -> None:
    http = make_client().http
    email = _email()
    response = await http.post(
        "/graphql", json=_register_body(email), headers={"origin": "https://evil.example"}
    )
    assert response.status_code == 403 and _code(response) == "ORIGIN_NOT_ALLOWED"
    null = await http.post("/graphql", json=_register_body(email), headers={"origin": "null"})
    assert null.status_code == 403
    assert not await _user_exists(http, email)


@pytest.mark.parametrize("origin", ["https://wealthwise.test", "https://wealthwise.test:443"])
async def test_a_post_from_the_apis_own_origin_passes(make_client: Any, origin: str) -> None:
    http = make_client().http
    email = _email()
    response = await http.post("/graphql", json=_register_body(email), headers={"origin": origin})
    assert response.status_code == 200 and not response.json().get("errors")


async def test_a_post_from_a_listed_origin_passes(services: Any) -> None:
    email = _email()
    async with _http(services, allowed_origins=["https://app.example"]) as http:
        listed = await http.post(
            "/graphql", json=_register_body(email), headers={"origin": "https://APP.example:443"}
        )
        other = await http.post(
            "/graphql", json=_register_body(_email()), headers={"origin": "http://app.example"}
        )
    assert listed.status_code == 200 and not listed.json().get("errors")
    assert other.status_code == 403


# ---------------------------------------------------------------- batching, limits


async def test_a_batch_is_refused_and_executes_nothing(make_client: Any) -> None:
    http = make_client().http
    first, second = _email(), _email()
    response = await http.post("/graphql", json=[_register_body(first), _register_body(second)])
    assert response.status_code == 400 and _code(response) == "BATCHING_DISABLED"
    assert not await _user_exists(http, first) and not await _user_exists(http, second)


INTROSPECTION = "{ __schema { queryType { name } } }"


@pytest.mark.parametrize("introspection", [True, False])
async def test_introspection_follows_its_setting(services: Any, introspection: bool) -> None:
    async with _http(services, introspection=introspection) as http:
        body = (await http.post("/graphql", json={"query": INTROSPECTION})).json()
        typename = (await http.post("/graphql", json={"query": "{ __typename }"})).json()
    if introspection:
        assert body["data"] == {"__schema": {"queryType": {"name": "Query"}}}
    else:
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert "introspection" in body["errors"][0]["message"].lower()
    assert typename["data"] == {"__typename": "Query"}


def test_production_turns_introspection_and_graphiql_off_unless_set() -> None:
    production = Settings(environment="production")
    assert not production.introspection_enabled and not production.graphiql_enabled
    assert Settings(environment="development").introspection_enabled
    assert Settings(environment="development").graphiql_enabled
    chosen = Settings(environment="production", introspection=True, graphiql=True)
    assert chosen.introspection_enabled and chosen.graphiql_enabled


async def test_production_serves_no_graphiql_and_refuses_introspection(services: Any) -> None:
    async with _http(services, environment="production") as http:
        page = await http.get("/graphql", headers={"accept": "text/html"})
        body = (await http.post("/graphql", json={"query": INTROSPECTION})).json()
    assert page.status_code == 404 and "graphiql" not in page.text.lower()
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    async with _http(services, environment="production", graphiql=True) as http:
        page = await http.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()


DEEP = "{ me { workspaces { id } } }"
ALIASES = "{ a: __typename b: __typename c: __typename }"


async def _first_error(services: Any, query: str, **settings: Any) -> dict[str, Any]:
    async with _http(services, **settings) as http:
        body = (await http.post("/graphql", json={"query": query})).json()
    assert body["data"] is None, body
    error: dict[str, Any] = body["errors"][0]
    return error


async def test_depth_alias_and_token_limits_come_from_the_settings(services: Any) -> None:
    deep = await _first_error(services, DEEP, graphql_max_depth=1)
    assert "exceeds maximum operation depth" in deep["message"]
    aliases = await _first_error(services, ALIASES, graphql_max_aliases=2)
    assert "aliases" in aliases["message"]
    tokens = await _first_error(services, ALIASES, graphql_max_tokens=8)
    assert tokens["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    assert "more than 8 tokens" in tokens["message"]
    async with _http(services) as http:
        body = (await http.post("/graphql", json={"query": ALIASES})).json()
    assert body["data"] == {"a": "Query", "b": "Query", "c": "Query"}


# ---------------------------------------------------------------- body size


async def test_a_body_over_the_limit_by_content_length_gets_413(services: Any) -> None:
    email = _email()
    body = _register_body(email)
    body["variables"]["name"] = "M" * 2_000
    async with _http(services, max_request_bytes=1_000) as http:
        response = await http.post("/graphql", json=body)
        assert response.status_code == 413 and _code(response) == "PAYLOAD_TOO_LARGE"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert not await _user_exists(http, email)


async def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(services: Any) -> None:
    email = _email()
    payload = json.dumps(_register_body(email)).encode()
    payload = payload[:-1] + b"," + b'"pad":"' + b"x" * 10_000 + b'"}'
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 500):
            sent.append(start)
            yield payload[start : start + 500]

    async with _http(services, max_request_bytes=2_000) as http:
        response = await http.post(
            "/graphql", content=chunks(), headers={"content-type": "application/json"}
        )
        assert "content-length" not in response.request.headers
        assert response.status_code == 413 and _code(response) == "PAYLOAD_TOO_LARGE"
        # The app stopped reading at the chunk that crossed 2,000 bytes, of 21 chunks.
        assert len(sent) == 5
        assert not await _user_exists(http, email)


async def test_a_chunked_body_under_the_limit_is_served(services: Any) -> None:
    email = _email()
    payload = json.dumps(_register_body(email)).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 100):
            yield payload[start : start + 100]

    async with _http(services, max_request_bytes=len(payload)) as http:
        response = await http.post(
            "/graphql", content=chunks(), headers={"content-type": "application/json"}
        )
        assert response.status_code == 200 and not response.json().get("errors")
        assert await _user_exists(http, email)


# ---------------------------------------------------------------- timeout


def _schema_with_a_slow_mutation() -> WealthWiseSchema:
    """The real schema plus a test-only mutation that registers a user, then runs a slow
    statement: PostgreSQL's pg_sleep, or on SQLite a recursive count to `steps`."""

    @strawberry.type
    class SlowMutation:
        @strawberry.mutation
        async def register_slowly(self, info: Info, email: str, seconds: float) -> bool:
            context = info.context
            async with context.db() as session:
                await identity.register(
                    session,
                    context.services.keyring,
                    email=email,
                    password=PASSWORD,
                    name="Slow",
                    workspace_name=None,
                    base_currency="INR",
                )
                if session.get_bind().dialect.name == "postgresql":
                    await session.execute(text("SELECT pg_sleep(:s)"), {"s": seconds})
                else:
                    # About 0.3 s per 10^6 steps here: far past any timeout in these tests.
                    await session.execute(text(SQLITE_COUNT), {"n": int(seconds * 10**7)})
            return True

    # Identity's types only: relay's node field binds itself to the first schema built.
    return WealthWiseSchema(
        query=IdentityQuery,
        mutation=merge_types("Mutation", (IdentityMutation, SlowMutation)),
        extensions=real_schema.extensions,
    )


SQLITE_COUNT = """
WITH RECURSIVE steps(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM steps WHERE x < :n)
SELECT count(*) FROM steps"""
SLOW = "mutation($e: String!, $s: Float!) { registerSlowly(email: $e, seconds: $s) }"


@asynccontextmanager
async def _timed_services(database: Settings, statement_timeout: float) -> AsyncIterator[Any]:
    """Services whose engine stops statements after `statement_timeout` seconds."""
    update = {"query_timeout_seconds": statement_timeout}
    services = build_services(database.model_copy(update=update))
    try:
        yield services
    finally:
        await services.engine.dispose()


async def test_a_slow_operation_times_out_and_is_rolled_back(database: Settings) -> None:
    email = _email()
    async with (
        _timed_services(database, 2) as services,
        _http(services, schema=_schema_with_a_slow_mutation()) as http,
    ):
        started = time.monotonic()
        response = await http.post(
            "/graphql", json={"query": SLOW, "variables": {"e": email, "s": 30}}
        )
        elapsed = time.monotonic() - started
        assert response.status_code == 200 and _code(response) == "TIMEOUT"
        assert "SELECT" not in response.text
        assert elapsed < 8, elapsed
        assert not await _user_exists(http, email)
        # The connection went back to the pool usable: the next operation works.
        quick = _email()
        response = await http.post(
            "/graphql", json={"query": SLOW, "variables": {"e": quick, "s": 0}}
        )
        assert response.json()["data"] == {"registerSlowly": True}
        assert await _user_exists(http, quick)


async def test_the_engines_statement_timeout_also_answers_timeout(database: Settings) -> None:
    # The engine stops the statement (0.3 s) long before the operation timeout (30 s).
    async with _timed_services(database, 0.3) as services:
        if not database.is_sqlite:
            async with services.engine.connect() as connection:
                shown = (await connection.execute(text("SHOW statement_timeout"))).scalar()
            assert shown == "300ms"
        email = _email()
        async with _http(
            services, schema=_schema_with_a_slow_mutation(), query_timeout_seconds=30
        ) as http:
            started = time.monotonic()
            response = await http.post(
                "/graphql", json={"query": SLOW, "variables": {"e": email, "s": 30}}
            )
            assert time.monotonic() - started < 8
            assert _code(response) == "TIMEOUT"
            assert "cancelled" in response.text and not LEAKS.search(response.text)
            assert not await _user_exists(http, email)


# ---------------------------------------------------------------- masked errors

LEAKS = re.compile(
    r"SELECT|FROM |relation|no such table|does not exist|Traceback|sqlalchemy|asyncpg|"
    r"sqlite|\.py|line \d",
    re.IGNORECASE,
)


async def test_a_database_error_reaches_the_client_masked(fresh_database: Settings) -> None:
    services = build_services(fresh_database)
    try:
        app = create_app(fresh_database, services)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as h:
            client = Client(h)
            await register(client)
            account = await create_account(client, opening="100")
            category = next(iter((await category_ids(client)).values()))
            owner = create_engine(fresh_database, owner=True)  # the API role owns nothing
            async with owner.begin() as connection:
                await connection.execute(text("DROP TABLE month_totals"))
                await connection.execute(text("DROP TABLE postings"))
            await owner.dispose()
            query = await h.post(
                "/graphql", json={"query": "{ accounts { id balance { amount } } }"}
            )
            spend = {"accountId": account, "categoryId": category, "amount": "-5"}
            mutation = await h.post(
                "/graphql",
                json={"query": POST, "variables": {"i": {**spend, "date": "2025-01-02"}, "k": "x"}},
            )
    finally:
        await services.engine.dispose()
    for response in (query, mutation):
        assert response.status_code == 200 and "errors" in response.json(), response.text
        errors = response.json()["errors"]
        assert [error["extensions"] for error in errors] == [{"code": "INTERNAL_SERVER_ERROR"}]
        assert errors[0]["message"] == "Internal server error"
        assert not LEAKS.search(response.text), response.text


# ---------------------------------------------------------------- headers


def _csp(response: httpx.Response) -> dict[str, list[str]]:
    policy = response.headers["content-security-policy"]
    directives = [part.split() for part in policy.split(";") if part.strip()]
    return {directive[0]: directive[1:] for directive in directives}


def _assert_base_headers(response: httpx.Response) -> None:
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cross-origin-opener-policy"] == "same-origin"
    assert "camera=()" in headers["permissions-policy"]
    assert _csp(response)["frame-ancestors"] == ["'none'"]


async def test_every_kind_of_response_carries_the_security_headers(make_client: Any) -> None:
    http = make_client().http
    responses = {
        "html": await http.get("/"),
        "static": await http.get("/app.js"),
        "health": await http.get("/health/live"),
        "graphql": await http.post("/graphql", json={"query": "{ __typename }"}),
        "refused": await http.post(
            "/graphql", content=b"{}", headers={"content-type": "text/plain"}
        ),
        "not found": await http.get("/nothing-here"),
    }
    for kind, response in responses.items():
        _assert_base_headers(response)
        assert response.headers["strict-transport-security"].startswith("max-age="), kind
    page = _csp(responses["html"])
    assert page["script-src"] == ["'self'"] and page["style-src"] == ["'self'"]
    assert page["base-uri"] == ["'none'"] and page["form-action"] == ["'self'"]
    assert page["connect-src"] == ["'self'", "ws://wealthwise.test", "wss://wealthwise.test"]
    assert _csp(responses["graphql"])["default-src"] == ["'none'"]


async def test_hsts_is_sent_only_over_tls(services: Any) -> None:
    async with _http(services, base_url="http://wealthwise.test") as http:
        plain = await http.get("/")
    _assert_base_headers(plain)
    assert "strict-transport-security" not in plain.headers


WEB = Path(__file__).resolve().parents[2] / "web"


def test_the_web_client_needs_nothing_its_policy_forbids() -> None:
    page = (WEB / "index.html").read_text()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", page, flags=re.DOTALL)
    assert scripts and all('src="' in attrs and not body.strip() for attrs, body in scripts)
    assert not re.search(r"<style|\sstyle=|\son[a-z]+=|javascript:", page, re.IGNORECASE)
    assert not re.search(r"https?://", re.sub(r'xmlns="[^"]*"|SVG_NS = "[^"]*"', "", page))
    code = (WEB / "app.js").read_text()
    assert not re.search(r"\beval\(|new Function|innerHTML|setAttribute\(\"style|cssText", code)
    assert 'Content-Type": "application/json"' in code  # not a simple request: no CSRF block


async def test_graphiql_gets_a_policy_that_names_exactly_its_scripts(make_client: Any) -> None:
    http = make_client().http
    page = await http.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200
    _assert_base_headers(page)
    policy = _csp(page)
    external = re.findall(r"<script\b[^>]*\bsrc=\"([^\"]+)\"", page.text)
    inline = re.findall(r"<script>(.*?)</script>", page.text, flags=re.DOTALL)
    assert external and inline
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in inline
    ]
    assert sorted(policy["script-src"]) == sorted([*external, *hashes])
    assert policy["default-src"] == ["'none'"]
    assert "ws://wealthwise.test" in policy["connect-src"]


# ---------------------------------------------------------------- WebSocket origin


@asynccontextmanager
async def _live(services: Any, **settings: Any) -> AsyncIterator[str]:
    """The real app served by uvicorn on a free port of 127.0.0.1, in this event loop."""
    changed = _services_with(services, **settings)
    async with serving(changed, lifespan="off") as base:
        yield base.removeprefix("http://")


async def _handshake(
    address: str, origin: str | None = None, cookie: str | None = None, token: str | None = None
) -> str:
    """Open a graphql-transport-ws connection; the first server message's type."""
    headers = {"cookie": cookie} if cookie else {}
    async with connect(
        f"ws://{address}/graphql",
        subprotocols=[Subprotocol("graphql-transport-ws")],
        origin=Origin(origin) if origin else None,
        additional_headers=headers,
        open_timeout=5,
    ) as socket_:
        payload = {"token": token} if token else {}
        await socket_.send(json.dumps({"type": "connection_init", "payload": payload}))
        return str(json.loads(await socket_.recv())["type"])


BAD_HANDSHAKES = [
    {"origin": "https://evil.example"},
    {"origin": "null"},
    {"origin": "http://127.0.0.1.evil.example"},
    {"cookie": "ww_access=stolen"},  # no Origin but a session cookie: not a plain script
    {"cookie": "__Host-ww_refresh=stolen"},
]


async def test_websocket_upgrades_from_bad_origins_get_403(services: Any) -> None:
    async with _live(services) as address:
        for handshake in BAD_HANDSHAKES:
            with pytest.raises(InvalidStatus) as refused:
                await _handshake(address, **handshake)
            assert refused.value.response.status_code == 403, handshake


async def _token(make_client: Any) -> str:
    client = make_client()
    await register(client)
    cookies = client.http.cookies
    return str(cookies.get("__Host-ww_access") or cookies.get("ww_access"))


async def test_websocket_upgrades_from_good_origins_are_accepted(
    services: Any, make_client: Any
) -> None:
    token = await _token(make_client)
    async with _live(services, port=8000) as address:
        ack = await _handshake(address, origin=f"http://{address}", token=token)
        assert ack == "connection_ack"
        # Listed by default outside production; and a script without cookies.
        ack = await _handshake(address, origin="http://localhost:8000", token=token)
        assert ack == "connection_ack"
        assert await _handshake(address, token=token) == "connection_ack"


async def test_the_websocket_allowlist_follows_its_setting(services: Any, make_client: Any) -> None:
    token = await _token(make_client)
    async with _live(services, allowed_origins=["https://app.example"]) as address:
        ack = await _handshake(address, origin="https://app.example", token=token)
        assert ack == "connection_ack"
        with pytest.raises(InvalidStatus) as refused:
            await _handshake(address, origin="http://localhost:8000")
        assert refused.value.response.status_code == 403
