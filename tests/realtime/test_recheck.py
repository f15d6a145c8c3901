"""The batched recheck of WebSocket connections (api/realtime/registry.py), both backends:
every `ws_recheck_seconds` one read transaction per process finds the connections whose
session, API token or membership has ended, and those close with 4401; the others stay."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import delete, event, update
from sqlmodel import col

from api.realtime import registry
from api.realtime.registry import Holder, dead_holders
from domain.core.db import unit_of_work
from domain.identity.models import Membership
from schema.context import AppServices
from schema.ids import decode_id
from tests.graphql import PASSWORD, Client, register
from tests.realtime.test_subscriptions import BALANCES, home, token_of
from tests.realtime.ws import Closed, GraphQLWS, serving
from tests.schema.roles import CREATE_TOKEN, owner_session

LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { user { id } } }"
RECHECK = 1.0


def fast(services: AppServices, **settings: Any) -> AppServices:
    update = {"ws_recheck_seconds": RECHECK, **settings}
    return dataclasses.replace(services, settings=services.settings.model_copy(update=update))


@asynccontextmanager
async def connections(url: str, payloads: list[dict[str, Any]]) -> AsyncIterator[list[GraphQLWS]]:
    """One signed-in connection per payload, each with a live subscription."""
    async with AsyncExitStack() as stack:
        opened = []
        for payload in payloads:
            ws = await stack.enter_async_context(GraphQLWS.open(url))
            await ws.init(payload)
            await ws.subscribe("1", BALANCES)
            opened.append(ws)
        yield opened


async def closed_at(ws: GraphQLWS) -> tuple[Closed, float]:
    closed = await ws.wait_closed(within=15)
    return closed, time.monotonic()


async def test_logout_everywhere_closes_all_of_a_users_connections_in_one_interval(
    services: AppServices, make_client: Any
) -> None:
    laptop: Client = make_client()
    me = await register(laptop)
    phone: Client = make_client()
    await phone.ok(LOGIN, e=me["email"], p=PASSWORD)
    bystander = await home(make_client, "Rohan")
    tokens = [token_of(laptop), token_of(laptop), token_of(phone)]
    async with (
        serving(fast(services)) as url,
        connections(url, [{"token": t} for t in tokens]) as mine,
        connections(url, [{"token": bystander.token}]) as (other,),
    ):
        await phone.ok("mutation { logoutEverywhere { sessionsEnded } }")
        ends = await asyncio.gather(*(closed_at(ws) for ws in mine))
        await asyncio.sleep(RECHECK * 2)  # two more rechecks: the bystander stays
        assert other.closed is None
    assert [closed.code for closed, _ in ends] == [4401, 4401, 4401]
    assert {closed.reason for closed, _ in ends} == {"This session has ended"}
    times = [at for _, at in ends]
    assert max(times) - min(times) < RECHECK / 2  # one check ended all three


async def test_a_revoked_api_token_closes_its_connections(
    services: AppServices, make_client: Any
) -> None:
    asha = await home(make_client)
    created = (await asha.client.ok(CREATE_TOKEN, n="cron", s="READ", d=None))["createApiToken"]
    kept = (await asha.client.ok(CREATE_TOKEN, n="kept", s="READ", d=None))["createApiToken"]
    async with (
        serving(fast(services)) as url,
        connections(url, [{"token": created["token"]}] * 2) as revoked,
        connections(url, [{"token": kept["token"]}, {"token": asha.token}]) as others,
    ):
        await asha.client.ok(
            "mutation($id: ID!) { revokeApiToken(id: $id) { id } }", id=created["apiToken"]["id"]
        )
        ends = [await ws.wait_closed(within=15) for ws in revoked]
        await asyncio.sleep(RECHECK * 2)
        assert [ws.closed for ws in others] == [None, None]
    assert [(c.code, c.reason) for c in ends] == [
        (4401, "The API token is invalid, revoked or expired")
    ] * 2


async def test_a_changed_role_or_a_removed_membership_closes_the_connection(
    services: AppServices, make_client: Any
) -> None:
    """No mutation removes a member or changes a role yet: the tables' owner does it."""
    asha = await home(make_client)
    side = (await asha.client.ok('mutation { createWorkspace(name: "Side") { id } }'))[
        "createWorkspace"
    ]["id"]
    third = (await asha.client.ok('mutation { createWorkspace(name: "Third") { id } }'))[
        "createWorkspace"
    ]["id"]
    user_id = services.signer.verify(asha.token).user_id
    payloads = [
        {"token": asha.token},  # her first workspace: its role changes
        {"token": asha.token, "workspaceId": side},  # her membership is removed
        {"token": asha.token, "workspaceId": third},  # untouched
    ]
    async with (
        serving(fast(services)) as url,
        connections(url, payloads) as (first, removed, untouched),
    ):
        assert first.ack is not None
        first_id = decode_id(first.ack["workspaceId"], "Workspace")
        async with owner_session(services.settings) as session:
            await session.execute(
                update(Membership)
                .where(col(Membership.user_id) == user_id)
                .where(col(Membership.workspace_id) == first_id)
                .values(role="viewer")
            )
            await session.execute(
                delete(Membership)
                .where(col(Membership.user_id) == user_id)
                .where(col(Membership.workspace_id) == decode_id(side, "Workspace"))
            )
        changed = await first.wait_closed(within=15)
        gone = await removed.wait_closed(within=15)
        await asyncio.sleep(RECHECK * 2)
        assert untouched.closed is None
    assert (changed.code, changed.reason) == (
        4401,
        "Your role in this workspace changed: connect again",
    )
    assert (gone.code, gone.reason) == (4401, "Workspace not found")


async def test_the_recheck_is_one_batch_per_interval_not_one_per_connection(
    services: AppServices, make_client: Any
) -> None:
    """50 open connections (five people, ten each): over several intervals the statements
    that read sessions stay a handful per interval, where one check per connection would
    make at least 50."""
    people = [await home(make_client, name) for name in ("Ana", "Bo", "Cy", "Di", "Ed")]
    payloads = [{"token": person.token} for person in people for _ in range(10)]
    reads: list[float] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "auth_sessions" in statement or "ww_ws_dead" in statement:
            reads.append(time.monotonic())

    sync_engine = services.engine.sync_engine
    async with serving(fast(services)) as url, connections(url, payloads) as opened:
        event.listen(sync_engine, "before_cursor_execute", count)
        try:
            started = time.monotonic()
            await asyncio.sleep(RECHECK * 4.5)
            elapsed = time.monotonic() - started
        finally:
            event.remove(sync_engine, "before_cursor_execute", count)
        assert all(ws.closed is None for ws in opened)
    intervals = elapsed / RECHECK + 1
    assert len(reads) >= 3, reads  # the rechecks ran
    # SQLite reads sessions in one statement per check, PostgreSQL calls one function.
    assert len(reads) <= intervals, (len(reads), intervals)


async def test_the_check_answers_each_entry_across_chunks(
    services: AppServices, make_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check itself, as the API's role, with chunks of two entries: each dead entry
    with its reason, the live ones absent, whatever chunk they fall in."""
    monkeypatch.setattr(registry, "CHUNK", 2)
    client: Client = make_client()
    me = await register(client)
    workspace = decode_id(me["workspaces"][0]["id"], "Workspace")
    claims = services.signer.verify(token_of(client))
    user, session_id = claims.user_id, claims.session_id
    created = (await client.ok(CREATE_TOKEN, n="cron", s="READ", d=None))["createApiToken"]
    token = decode_id(created["apiToken"]["id"], "ApiToken")
    person = Holder.person
    expected = {
        person(session_id, user, workspace, "owner"): None,
        person(session_id, user, workspace, "viewer"): "role",
        person(session_id, user, uuid.uuid4(), "owner"): "membership",
        person(uuid.uuid4(), user, workspace, "owner"): "session",
        person(session_id, uuid.uuid4(), workspace, "owner"): "session",
        Holder.api_token(token, workspace, "viewer"): None,
        Holder.api_token(token, workspace, "member"): "role",
        Holder.api_token(token, uuid.uuid4(), "viewer"): "token",
        Holder.api_token(uuid.uuid4(), workspace, "viewer"): "token",
    }
    async with unit_of_work(services.engine, write=False) as session:
        dead = await dead_holders(session, list(expected))
    assert dead == {holder: why for holder, why in expected.items() if why is not None}
