"""Shared subscription feeds (api/realtime/fanout.py) over real WebSockets, both backends:
one execution per event for subscribers asking the same thing, never shared across
workspaces, roles or arguments, audited per member, stopped with its last member."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from starlette.websockets import WebSocket

from api.realtime.connection import ConnectionContext
from api.realtime.fanout import Fanout, FanoutMetrics, Member
from api.realtime.hub import CloseReason
from domain.core.db import bind_scope, unit_of_work
from domain.realtime import outbox
from domain.realtime.events import EventType
from schema.context import AppServices
from schema.ids import decode_id
from schema.ledger.loaders import LedgerLoaders
from tests.audit.helpers import chain, join, user_of, workspace_of
from tests.graphql import Client, category_ids, create_account, post, register
from tests.realtime.test_subscriptions import BALANCES, EVENTS, token_of
from tests.realtime.ws import GraphQLWS, Served, served

READS = """subscription { workspaceEvents { seq type transaction { id payee } } }"""


@pytest.fixture
async def server(services: AppServices) -> AsyncIterator[Served]:
    async with served(services) as running:
        yield running


def fanout_of(server: Served) -> Fanout:
    fanout = server.state["fanout"]
    assert isinstance(fanout, Fanout)
    return fanout


async def settled(server: Served, **expected: int) -> FanoutMetrics:
    """The fan-out's metrics once they show `expected` (they change as tasks run)."""
    metrics = fanout_of(server).metrics()
    for _ in range(100):
        metrics = fanout_of(server).metrics()
        if all(getattr(metrics, name) == value for name, value in expected.items()):
            return metrics
        await asyncio.sleep(0.05)
    raise AssertionError(f"fan-out metrics {metrics} never showed {expected}")


async def audited_reads(
    services: AppServices, workspace: Any, before: int, *, at_least: int
) -> list[Any]:
    """The `read.transactions` audit events after the first `before` of the workspace's
    chain, once there are `at_least` of them (they are written just after the send)."""
    reads: list[Any] = []
    for _ in range(100):
        events = (await chain(services, workspace))[before:]
        reads = [e for e in events if e.action == "read.transactions"]
        if len(reads) >= at_least:
            return reads
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(reads)} read.transactions audit events, not {at_least}")


async def household(make_client: Any) -> tuple[Client, dict[str, Any], str, str]:
    client: Client = make_client()
    session = await register(client)
    account = await create_account(client)
    groceries = (await category_ids(client))["Groceries"]
    return client, session, account, groceries


async def test_subscribers_asking_the_same_thing_share_one_execution_per_event(
    server: Served, make_client: Any
) -> None:
    owner, _, account, groceries = await household(make_client)
    token = token_of(owner)
    async with AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(GraphQLWS.open(server.url)) for _ in range(4)]
        for ws in sockets:
            await ws.init({"token": token})
            await ws.subscribe("events", EVENTS)
        await settled(server, feeds=1, members=4)
        posted = await post(owner, account, groceries, "-42.00", payee="Corner Shop")
        seen = [[(await ws.data("events"))["workspaceEvents"] for _ in range(2)] for ws in sockets]
        metrics = await settled(server, executions=2, deliveries=8)
    assert all(events == seen[0] for events in seen)
    posted_event, balance_event = seen[0]
    assert posted_event["type"] == "TRANSACTION_POSTED"
    assert balance_event["type"] == "BALANCE_CHANGED"
    assert balance_event["seq"] == posted_event["seq"] + 1
    assert posted_event["transaction"]["id"] == posted
    assert posted_event["transaction"]["payee"] == "Corner Shop"
    assert metrics.slow_members_closed == 0


async def test_a_member_holds_no_task_once_it_joined_and_goes_with_its_connection(
    server: Served, make_client: Any
) -> None:
    owner, _, account, groceries = await household(make_client)
    async with AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(GraphQLWS.open(server.url)) for _ in range(3)]
        for ws in sockets:
            await ws.init({"token": token_of(owner)})
        await asyncio.sleep(0.2)
        before = len(asyncio.all_tasks())  # the served app runs in this loop
        for ws in sockets:
            await ws.subscribe("events", EVENTS)
            await ws.subscribe("again", EVENTS)  # a second operation on the same connection
        await settled(server, feeds=1, members=6, detached=6)
        # Each subscriber is a queue now: of the 6 operations' tasks none is left. The two
        # new tasks are the feed's and the hub's pump for the workspace's channel.
        added = len(asyncio.all_tasks()) - before
        for _ in range(100):
            if added <= 2:
                break
            await asyncio.sleep(0.05)
            added = len(asyncio.all_tasks()) - before
        assert added == 2, [t.get_coro() for t in asyncio.all_tasks()]
        await post(owner, account, groceries, "-4.00")
        for ws in sockets:
            for operation in ("events", "again"):
                types = [(await ws.data(operation))["workspaceEvents"]["type"] for _ in range(2)]
                assert types == ["TRANSACTION_POSTED", "BALANCE_CHANGED"]
        await sockets[0].complete("again")
        await settled(server, feeds=1, members=5)
        await sockets[1].socket.close()  # gone without completing: its members go with it
        await settled(server, feeds=1, members=3)
        await post(owner, account, groceries, "-5.00")
        types = [(await sockets[0].data("events"))["workspaceEvents"]["type"] for _ in range(2)]
        assert types == ["TRANSACTION_POSTED", "BALANCE_CHANGED"]
        assert await sockets[0].silent("again", 0.5)
        # A completed id may be used again, and the limit counts only live operations.
        await sockets[0].subscribe("again", EVENTS)
        await settled(server, feeds=1, members=4)
    metrics = await settled(server, feeds=0, members=0)
    assert metrics.slow_members_closed == 0


async def test_feeds_are_never_shared_across_workspaces_roles_or_arguments(
    server: Served, make_client: Any
) -> None:
    owner, session, account, groceries = await household(make_client)
    viewer: Client = make_client()
    home_id = session["workspaces"][0]["id"]
    await join(owner, viewer, home_id, "VIEWER")
    stranger, _, _, _ = await household(make_client)
    async with AsyncExitStack() as stack:
        opened = [await stack.enter_async_context(GraphQLWS.open(server.url)) for _ in range(5)]
        mine, mine_balances, other_balances, viewers, strangers = opened
        await mine.init({"token": token_of(owner)})
        await mine_balances.init({"token": token_of(owner)})
        await other_balances.init({"token": token_of(owner)})
        await viewers.init({"token": token_of(viewer), "workspaceId": home_id})
        await strangers.init({"token": token_of(stranger)})
        await mine.subscribe("s", EVENTS)
        await mine_balances.subscribe("s", BALANCES, {"ids": [account]})
        await other_balances.subscribe("s", BALANCES, {"ids": None})
        await viewers.subscribe("s", EVENTS)
        await strangers.subscribe("s", EVENTS)
        # Owner's events, owner's balances of one account, of all accounts, the viewer's
        # events, the stranger's events: five different answers, five feeds.
        await settled(server, feeds=5, members=5)
        await post(owner, account, groceries, "-9.00")
        assert (await mine.data("s"))["workspaceEvents"]["type"] == "TRANSACTION_POSTED"
        assert (await viewers.data("s"))["workspaceEvents"]["type"] == "TRANSACTION_POSTED"
        one = (await mine_balances.data("s"))["balanceUpdated"]["accounts"]
        every = (await other_balances.data("s"))["balanceUpdated"]["accounts"]
        assert [a["id"] for a in one] == [account]
        assert account in [a["id"] for a in every]
        assert await strangers.silent("s", 1.0)


async def test_every_member_s_read_of_a_transaction_is_audited_as_its_own(
    server: Served, make_client: Any, services: AppServices
) -> None:
    owner, session, account, groceries = await household(make_client)
    member: Client = make_client()
    home_id = session["workspaces"][0]["id"]
    joined = await join(owner, member, home_id, "OWNER")
    workspace = workspace_of(session)
    async with (
        GraphQLWS.open(server.url, headers={"x-request-id": "ws-owner-1"}) as first,
        GraphQLWS.open(server.url, headers={"x-request-id": "ws-member-1"}) as second,
    ):
        await first.init({"token": token_of(owner)})
        await second.init({"token": token_of(member), "workspaceId": home_id})
        await first.subscribe("r", READS)
        await second.subscribe("r", READS)
        await settled(server, feeds=1, members=2)  # two people, one role: one feed
        before = len(await chain(services, workspace))
        posted = await post(owner, account, groceries, "-3.00", payee="Kiosk")
        for ws in (first, second):
            assert (await ws.data("r"))["workspaceEvents"]["transaction"]["payee"] == "Kiosk"
        await settled(server, executions=2)
        reads = await audited_reads(services, workspace, before, at_least=2)
    assert sorted((e.request_id, e.actor_id) for e in reads) == sorted(
        [("ws-owner-1", user_of(session)), ("ws-member-1", user_of(joined))]
    )
    assert all(e.target_ids == [posted] for e in reads)


async def test_the_last_member_to_leave_stops_the_feed_and_its_channel(
    server: Served, make_client: Any
) -> None:
    owner, _, account, groceries = await household(make_client)
    async with GraphQLWS.open(server.url) as one, GraphQLWS.open(server.url) as two:
        await one.init({"token": token_of(owner)})
        await two.init({"token": token_of(owner)})
        await one.subscribe("e", EVENTS)
        await two.subscribe("e", EVENTS)
        await settled(server, feeds=1, members=2)
        await one.complete("e")
        await settled(server, feeds=1, members=1)
        await post(owner, account, groceries, "-1.00")
        assert (await two.data("e"))["workspaceEvents"]["type"] == "TRANSACTION_POSTED"
        assert await one.silent("e", 0.5)
        await two.complete("e")
        await settled(server, feeds=0, members=0)
        hub = server.state["hub"]
        for _ in range(100):
            if hub.metrics().channels == 0:
                break
            await asyncio.sleep(0.05)
        assert hub.metrics().channels == 0
        # A new subscriber starts a new feed, which delivers from then on.
        await one.subscribe("again", EVENTS)
        await settled(server, feeds=1, members=1)
        await post(owner, account, groceries, "-2.00")
        assert (await one.data("again"))["workspaceEvents"]["type"] == "TRANSACTION_POSTED"


async def test_a_subscription_with_since_replays_its_backlog_then_joins_the_feed(
    server: Served, make_client: Any
) -> None:
    owner, _, account, groceries = await household(make_client)
    await post(owner, account, groceries, "-5.00")
    async with GraphQLWS.open(server.url) as live, GraphQLWS.open(server.url) as resuming:
        await live.init({"token": token_of(owner)})
        await resuming.init({"token": token_of(owner)})
        await live.subscribe("e", EVENTS)
        await settled(server, feeds=1, members=1)
        await resuming.subscribe("e", EVENTS, {"since": 0})
        first = (await resuming.data("e"))["workspaceEvents"]["seq"]
        # The backlog replayed, it joins the feed of the same document without since.
        await settled(server, feeds=1, members=2)
        await post(owner, account, groceries, "-6.00")
        live_seqs = [(await live.data("e"))["workspaceEvents"]["seq"] for _ in range(2)]
        resumed = [first]
        while resumed[-1] < live_seqs[-1]:
            resumed.append((await resuming.data("e"))["workspaceEvents"]["seq"])
        assert resumed == list(range(1, live_seqs[-1] + 1))  # all of it, once, in order
        assert live_seqs == [live_seqs[0], live_seqs[0] + 1] and live_seqs[0] > 2
        assert await resuming.silent("e", 0.5)  # and nothing twice
        # A literal since is no variable to leave out: that subscription streams alone.
        literal = EVENTS.replace("($since: Int)", "").replace("$since", "0")
        await resuming.subscribe("literal", literal)
        assert (await resuming.data("literal"))["workspaceEvents"]["seq"] == 1
        metrics = fanout_of(server).metrics()
    assert (metrics.feeds, metrics.members) == (1, 2)


async def test_with_shared_feeds_off_every_subscriber_streams_on_its_own(
    services: AppServices, make_client: Any
) -> None:
    apart = dataclasses.replace(
        services,
        settings=services.settings.model_copy(update={"realtime_shared_feeds": False}),
    )
    owner, _, account, groceries = await household(make_client)
    async with served(apart) as server:
        assert server.state["fanout"] is None
        async with GraphQLWS.open(server.url) as one, GraphQLWS.open(server.url) as two:
            for ws in (one, two):
                await ws.init({"token": token_of(owner)})
                await ws.subscribe("e", EVENTS)
            await asyncio.sleep(0.3)
            await post(owner, account, groceries, "-7.00")
            first = (await one.data("e"))["workspaceEvents"]
            assert first == (await two.data("e"))["workspaceEvents"]


async def test_events_committed_while_a_member_replays_arrive_once_and_in_order(
    server: Served, make_client: Any, services: AppServices
) -> None:
    owner, session, account, groceries = await household(make_client)
    workspace = workspace_of(session)
    backlog = [(EventType.BALANCE_CHANGED, {"accounts": [str(decode_id(account, "Account"))]})]
    async with unit_of_work(services.engine) as db:  # a long backlog: the replay takes a while
        await bind_scope(db, workspace_id=workspace)
        await outbox.emit_many(db, workspace, backlog * 3_000)
    async with GraphQLWS.open(server.url) as live, GraphQLWS.open(server.url) as resuming:
        await live.init({"token": token_of(owner)})
        await resuming.init({"token": token_of(owner)})
        await live.subscribe("e", EVENTS)
        await settled(server, feeds=1, members=1)

        async def post_more() -> None:  # committed while it replays: the feed's are held
            for n in range(10):
                await post(owner, account, groceries, f"-{n + 100}.00")

        await resuming.subscribe("e", EVENTS, {"since": 0})
        await post_more()
        live_seqs = [(await live.data("e"))["workspaceEvents"]["seq"] for _ in range(20)]
        resumed: list[int] = []
        while not resumed or resumed[-1] < live_seqs[-1]:
            resumed.append((await resuming.data("e"))["workspaceEvents"]["seq"])
        assert await resuming.silent("e", 0.5)
    assert resumed == list(range(1, live_seqs[-1] + 1))  # no gap, no repeat
    assert live_seqs == list(range(live_seqs[0], live_seqs[0] + 20)) and live_seqs[0] > 3_000


async def test_a_member_the_client_completed_sends_nothing_more_even_mid_write(
    services: AppServices,
) -> None:
    """A socket that takes one message at a time (a paused transport): the connection's
    writer is inside a send when the client completes the operation. What was queued
    behind it is dropped, and no `complete` follows (the id may be in use again)."""
    sent: list[dict[str, Any]] = []
    gate = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "websocket.send":
            await gate.wait()
            gate.clear()
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    scope = {"type": "websocket", "path": "/graphql", "headers": [], "extensions": {}}
    socket = WebSocket(scope, receive, send)  # type: ignore[arg-type]
    await socket.accept()
    completed: list[str] = []

    async def complete(operation_id: str) -> None:
        completed.append(operation_id)

    context = ConnectionContext(request=socket, response=None, services=services)
    context.complete = complete
    member = Member(context, "1", 10)
    context.hold(member)
    for seq in (1, 2, 3):
        member.push(seq, f'{{"data":{seq}}}')
    context.wake(member)  # the connection's writer task sends
    await asyncio.sleep(0.05)
    assert context.let_go("1")  # the client's `complete` while the first send waits
    member.finish()  # and the feed ends meanwhile, too
    gate.set()
    for _ in range(5):
        await asyncio.sleep(0.02)
        gate.set()
    texts = [m["text"] for m in sent if m["type"] == "websocket.send"]
    assert texts == ['{"id":"1","type":"next","payload":{"data":1}}']
    assert completed == [] and context.held("1") is None


def test_a_resuming_member_sends_nothing_its_replay_had_held_or_late() -> None:
    member = Member(None, "op", 10, holding=True)  # type: ignore[arg-type]  # no socket needed
    for seq in (5, 6, 7):
        assert member.push(seq, f"result {seq}")
    member.release(6)  # the replay went up to 6
    member.push(6, "late")  # the relay lagged the replay: 6 comes again
    member.push(8, "result 8")
    assert member.frames is not None
    assert list(member.frames) == [(7, "result 7"), (8, "result 8")]
    assert member.dropped == 3 and not member.holding


def test_a_member_past_its_bound_is_refused_and_its_queue_dropped() -> None:
    member = Member(None, "op", 2)  # type: ignore[arg-type]
    assert member.push(1, "a") and member.push(2, "b")
    assert not member.push(3, "c")
    assert member.ended and not member.frames
    assert not member.push(4, "d")  # and stays ended


async def test_a_feed_the_hub_closed_is_never_joined_again(
    server: Served, make_client: Any
) -> None:
    owner, _, account, groceries = await household(make_client)
    fanout = fanout_of(server)
    async with GraphQLWS.open(server.url) as old, GraphQLWS.open(server.url) as new:
        await old.init({"token": token_of(owner)})
        await new.init({"token": token_of(owner)})
        await old.subscribe("e", EVENTS)
        await settled(server, feeds=1, members=1)
        dead = next(iter(fanout.feeds.values()))
        member = next(iter(dead.members)).context
        # Hold the old member's close open (as a close frame waiting behind unsent data
        # would) so that the newcomer subscribes while the dead feed still has a member.
        gate = asyncio.Event()
        close = member.end

        async def held_close(code: int, reason: str) -> None:
            await gate.wait()
            await close(code, reason)

        member.end = held_close  # type: ignore[method-assign]
        hub = server.state["hub"]
        for channel in list(hub._channels.values()):
            for subscriber in list(channel.subscribers):
                subscriber._close(CloseReason.SLOW_CONSUMER)  # the feed lags: the hub drops it
        for _ in range(100):
            if dead.closing:
                break
            await asyncio.sleep(0.02)
        assert dead.closing and dead.key not in fanout.feeds
        await new.subscribe("e", EVENTS)
        await settled(server, feeds=1, members=1)  # a feed of its own, not the dead one
        assert next(iter(fanout.feeds.values())) is not dead
        gate.set()
        assert (await old.wait_closed()).code == 1013
        await post(owner, account, groceries, "-1.00")
        assert (await new.data("e"))["workspaceEvents"]["type"] == "TRANSACTION_POSTED"
    for _ in range(100):
        if dead.task.done():
            break
        await asyncio.sleep(0.02)
    assert dead.task.done()  # and the dead feed's task went with its last member


TRANSACTION_READS = """subscription { workspaceEvents {
  seq type transaction { id account { name } } } }"""


async def test_who_joins_while_an_event_executes_starts_with_the_next_one(
    server: Served, make_client: Any, services: AppServices, monkeypatch: Any
) -> None:
    owner, session, account, groceries = await household(make_client)
    other: Client = make_client()
    home_id = session["workspaces"][0]["id"]
    await join(owner, other, home_id, "OWNER")
    workspace = workspace_of(session)
    # Hold the feed's execution after it read (and audited) the transaction, before the
    # account loader answers: the window in which a newcomer could slip in.
    gate, entered = asyncio.Event(), asyncio.Event()
    accounts = LedgerLoaders._accounts

    async def held_accounts(self: LedgerLoaders, ids: Any) -> Any:
        if getattr(self.context, "feed", None) is not None and not gate.is_set():
            entered.set()
            await gate.wait()
        return await accounts(self, ids)

    monkeypatch.setattr(LedgerLoaders, "_accounts", held_accounts)
    async with (
        GraphQLWS.open(server.url, headers={"x-request-id": "early-1"}) as early,
        GraphQLWS.open(server.url, headers={"x-request-id": "late-1"}) as late,
    ):
        await early.init({"token": token_of(owner)})
        await late.init({"token": token_of(other), "workspaceId": home_id})
        await early.subscribe("r", TRANSACTION_READS)
        await settled(server, feeds=1, members=1)
        before = len(await chain(services, workspace))
        posted = await post(owner, account, groceries, "-3.00")
        await asyncio.wait_for(entered.wait(), 10)
        await late.subscribe("r", TRANSACTION_READS)
        await settled(server, feeds=1, members=2)
        gate.set()
        first_early = (await early.data("r"))["workspaceEvents"]
        first_late = (await late.data("r"))["workspaceEvents"]
        await audited_reads(services, workspace, before, at_least=1)
        await asyncio.sleep(0.3)  # any late record would have landed by now
        reads = await audited_reads(services, workspace, before, at_least=1)
    assert first_early["transaction"]["id"] == posted
    # The newcomer's first result is the next event's (the balance change), not the one
    # executing when it joined: it was not audited for that read, and did not get it.
    assert first_late["seq"] == first_early["seq"] + 1
    assert first_late["transaction"] is None
    assert [(e.request_id, e.target_ids) for e in reads] == [("early-1", [posted])]


def test_a_member_overflowing_while_it_replays_drops_what_it_held_and_stays() -> None:
    member = Member(None, "op", 2, holding=True)  # type: ignore[arg-type]
    assert member.push(1, "a") and member.push(2, "b")
    assert member.push(3, "c")  # over the bound while replaying: all of it is in the outbox
    assert member.overflows == 1 and not member.ended
    assert list(member.frames or ()) == [(3, "c")]
    member.release(3)  # the replay went on past 3
    assert not member.frames and not member.holding
    assert member.push(4, "d") and member.push(5, "e")
    assert not member.push(6, "f") and member.slow  # now live: too slow means closed
