"""Subscriptions over real WebSockets (graphql-transport-ws) on a real uvicorn, both
backends: sign-in, the three subscription fields, `since`, filters, limits, the ends."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

from domain.identity.tokens import TokenSigner
from schema.context import AppServices
from tests.graphql import Client, category_ids, create_account, post, register
from tests.realtime.ws import Closed, GraphQLWS, serving

EVENTS = """subscription($since: Int) { workspaceEvents(since: $since) {
  seq type date transactionId accountIds transaction { id payee amount { amount } } } }"""
BALANCES = """subscription($ids: [ID!]) { balanceUpdated(accountIds: $ids) {
  seq accounts { id balance { amount currency } } } }"""
CHANGES = """subscription($f: TransactionFilter) { transactionsChanged(filter: $f) {
  seq kind transactionId date transaction { payee } } }"""


def token_of(client: Client) -> str:
    token = client.http.cookies.get("__Host-ww_access") or client.http.cookies.get("ww_access")
    assert token
    return token


@dataclasses.dataclass
class Home:
    client: Client
    token: str
    account: str
    other_account: str
    groceries: str


async def home(make_client: Any, name: str = "Asha") -> Home:
    client: Client = make_client()
    await register(client, name=name)
    account = await create_account(client)
    other = await create_account(client, name="Savings", kind="SAVINGS")
    groceries = (await category_ids(client))["Groceries"]
    return Home(client, token_of(client), account, other, groceries)


@pytest.fixture
async def base(services: AppServices) -> AsyncIterator[str]:
    async with serving(services) as url:
        yield url


@pytest.fixture
async def asha(make_client: Any) -> Home:
    return await home(make_client)


async def test_a_token_in_connection_init_signs_in_and_events_arrive_in_order(
    base: str, asha: Home
) -> None:
    async with GraphQLWS.open(base) as ws:
        ack = await ws.init({"authorization": f"Bearer {asha.token}"})
        assert ack["role"] == "OWNER" or ack["role"].upper() == "OWNER"
        await ws.subscribe("1", EVENTS)
        await asyncio.sleep(0.3)  # the subscription is live before the post
        posted = await post(asha.client, asha.account, asha.groceries, "-250.00", payee="Bazaar")
        first = (await ws.data("1"))["workspaceEvents"]
        second = (await ws.data("1"))["workspaceEvents"]
    assert first["type"] == "TRANSACTION_POSTED"
    assert first["transactionId"] == posted
    assert first["transaction"] == {
        "id": posted,
        "payee": "Bazaar",
        "amount": {"amount": "-250.00"},
    }
    assert first["date"] == "2025-03-10"
    assert asha.account in first["accountIds"]
    assert second["type"] == "BALANCE_CHANGED"
    assert second["seq"] == first["seq"] + 1


async def test_since_replays_what_was_missed_then_goes_live_without_duplicates(
    base: str, asha: Home
) -> None:
    async with GraphQLWS.open(base) as ws:
        await ws.init({"token": asha.token})
        await ws.subscribe("1", EVENTS)
        await asyncio.sleep(0.3)
        await post(asha.client, asha.account, asha.groceries, "-0.50")
        start = (await ws.data("1"))["workspaceEvents"]["seq"] + 1  # posted, balance changed
    missed = [await post(asha.client, asha.account, asha.groceries, f"-{i}.00") for i in (1, 2, 3)]
    async with GraphQLWS.open(base) as ws:
        await ws.init({"token": asha.token})
        await ws.subscribe("1", EVENTS, {"since": start})
        replayed = [(await ws.data("1"))["workspaceEvents"] for _ in range(6)]
        live = await post(asha.client, asha.account, asha.groceries, "-4.00")
        after = [(await ws.data("1"))["workspaceEvents"] for _ in range(2)]
        assert await ws.silent("1", 0.5)  # no duplicate of anything above
    seqs = [event["seq"] for event in replayed + after]
    assert seqs == list(range(start + 1, start + 9))
    posted = [e["transactionId"] for e in replayed + after if e["type"] == "TRANSACTION_POSTED"]
    assert posted == [*missed, live]

    # Resuming from the middle skips what the client already has.
    async with GraphQLWS.open(base) as ws:
        await ws.init({"token": asha.token})
        await ws.subscribe("1", EVENTS, {"since": seqs[5]})
        tail = [(await ws.data("1"))["workspaceEvents"]["seq"] for _ in range(2)]
        assert await ws.silent("1", 0.3)
    assert tail == seqs[6:]


async def test_balance_updates_name_only_the_accounts_asked_for(base: str, asha: Home) -> None:
    async with GraphQLWS.open(base) as ws:
        await ws.init({"token": asha.token})
        await ws.subscribe("all", BALANCES)
        await ws.subscribe("one", BALANCES, {"ids": [asha.other_account]})
        await asyncio.sleep(0.3)
        await post(asha.client, asha.account, asha.groceries, "-100.00")
        everything = (await ws.data("all"))["balanceUpdated"]
        assert await ws.silent("one", 0.5)  # the other account did not move
        await post(asha.client, asha.other_account, asha.groceries, "-40.00")
        one = (await ws.data("one"))["balanceUpdated"]
    assert everything["accounts"] == [
        {"id": asha.account, "balance": {"amount": "-100.00", "currency": "INR"}}
    ]
    assert one["accounts"] == [
        {"id": asha.other_account, "balance": {"amount": "-40.00", "currency": "INR"}}
    ]


async def test_transaction_changes_follow_the_filter(base: str, asha: Home) -> None:
    async with GraphQLWS.open(base) as ws:
        await ws.init({"token": asha.token})
        await ws.subscribe("1", CHANGES, {"f": {"accountIds": [asha.other_account]}})
        await ws.subscribe("2", CHANGES, {"f": {"text": "bazaar"}})
        await asyncio.sleep(0.3)
        await post(asha.client, asha.account, asha.groceries, "-10.00", payee="Corner shop")
        bazaar = await post(asha.client, asha.account, asha.groceries, "-11.00", payee="Bazaar")
        saved = await post(asha.client, asha.other_account, asha.groceries, "-12.00")
        on_other = (await ws.data("1"))["transactionsChanged"]
        by_text = (await ws.data("2"))["transactionsChanged"]
        assert await ws.silent("1", 0.3) and await ws.silent("2", 0.1)
        await asha.client.ok(
            'mutation($id: ID!) { deleteTransaction(id: $id, idempotencyKey: "d1") { id } }',
            id=saved,
        )
        deleted = (await ws.data("1"))["transactionsChanged"]
    assert (on_other["kind"], on_other["transactionId"]) == ("POSTED", saved)
    assert (by_text["kind"], by_text["transactionId"]) == ("POSTED", bazaar)
    assert by_text["transaction"] == {"payee": "Bazaar"}
    assert (deleted["kind"], deleted["transactionId"], deleted["transaction"]) == (
        "DELETED",
        saved,
        None,
    )


async def test_a_connection_without_a_valid_sign_in_is_closed_4401(base: str, asha: Home) -> None:
    for payload in ({}, {"token": "not-a-token"}, {"token": asha.token[:-3] + "abc"}):
        async with GraphQLWS.open(base) as ws:
            with pytest.raises(Closed) as refused:
                await ws.init(payload)
            assert refused.value.code == 4401, payload


async def test_the_upgrade_cookie_signs_in_only_from_an_allowed_origin(
    base: str, asha: Home
) -> None:
    cookie = {"cookie": f"ww_access={asha.token}"}
    host = base.removeprefix("http://")
    async with GraphQLWS.open(base, headers=cookie, origin=f"http://{host}") as ws:
        await ws.init()
        await ws.subscribe("1", BALANCES)
        await asyncio.sleep(0.3)
        await post(asha.client, asha.account, asha.groceries, "-5.00")
        assert (await ws.data("1"))["balanceUpdated"]["accounts"][0]["id"] == asha.account
    with pytest.raises(Exception) as refused:
        async with GraphQLWS.open(base, headers=cookie, origin="https://evil.example"):
            pass
    assert "403" in str(refused.value)


async def test_queries_go_over_http_and_subscriptions_over_websocket(base: str, asha: Home) -> None:
    async with GraphQLWS.open(base) as ws:
        await ws.init({"token": asha.token})
        await ws.subscribe("q", "{ accounts { id } }")
        message = await ws.message("q")
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "HTTP_REQUIRED"
    answer = await asha.client.execute(EVENTS)
    assert answer["errors"][0]["extensions"]["code"] == "WEBSOCKET_REQUIRED"


async def test_an_expired_access_token_ends_the_connection_with_4401(
    services: AppServices, base: str, asha: Home
) -> None:
    claims = services.signer.verify(asha.token)
    short = TokenSigner.from_settings(services.settings)  # the same key, a 2 s lifetime
    short.ttl_seconds = 2
    async with GraphQLWS.open(base) as ws:
        await ws.init({"token": short.issue(claims.user_id, claims.session_id)})
        await ws.subscribe("1", BALANCES)
        closed = await ws.wait_closed(within=10)
    assert closed.code == 4401


async def test_logging_out_ends_the_connection(
    services: AppServices, asha: Home, make_client: Any
) -> None:
    fast = dataclasses.replace(
        services, settings=services.settings.model_copy(update={"ws_recheck_seconds": 0.3})
    )
    async with serving(fast) as url, GraphQLWS.open(url) as ws:
        await ws.init({"token": asha.token})
        await ws.subscribe("1", BALANCES)
        await asha.client.ok("mutation { logout { sessionsEnded } }")
        closed = await ws.wait_closed(within=10)
    assert closed.code == 4401


async def test_subscriptions_per_connection_and_connections_per_user_are_limited(
    services: AppServices, asha: Home
) -> None:
    tight = dataclasses.replace(
        services,
        settings=services.settings.model_copy(
            update={"ws_max_subscriptions_per_connection": 2, "ws_max_connections_per_user": 2}
        ),
    )
    async with serving(tight) as url:
        async with GraphQLWS.open(url) as one, GraphQLWS.open(url) as two:
            await one.init({"token": asha.token})
            await two.init({"token": asha.token})
            for operation in ("a", "b", "c"):
                await one.subscribe(operation, BALANCES)
            refused = await one.message("c")
            assert refused["type"] == "error"
            assert "limit" in refused["payload"][0]["message"].lower()
            async with GraphQLWS.open(url) as three:
                with pytest.raises(Closed) as too_many:
                    await three.init({"token": asha.token})
            assert too_many.value.code == 4429
        # Closed connections are counted out again.
        await asyncio.sleep(0.3)
        async with GraphQLWS.open(url) as again:
            await again.init({"token": asha.token})
