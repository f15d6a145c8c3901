"""The relay publishes committed events in order and marks them only afterwards: killed
in between, it publishes them again, and a subscriber that drops duplicates by seq sees
each event exactly once."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from broadcaster import Broadcast
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.core.db import bind_scope, create_engine, unit_of_work
from domain.core.keys import Keyring
from domain.core.settings import Settings
from domain.ledger import transactions as tx
from domain.realtime import outbox
from domain.realtime.envelope import channel_for, decode
from domain.realtime.events import EVENT_FIELDS, EventType
from domain.realtime.relay import Relay, backoff, relay_once
from tests.realtime.helpers import (
    SECRET_ACCOUNT,
    SECRET_PAYEE,
    DedupingSubscriber,
    Household,
    household,
    post,
    replay,
    spend,
)
from tests.realtime.processes import eventually
from tests.security.test_row_level_security import _dsn
from tests.services import TEST_KEK

ROOT = Path(__file__).resolve().parents[2]


class RelayKilled(BaseException):
    """Stands for SIGKILL inside the process: nothing after it runs, nothing is marked."""


@pytest.fixture
async def engine(fresh_database: Settings) -> AsyncIterator[AsyncEngine]:
    built = create_engine(fresh_database)
    yield built
    await built.dispose()


@pytest.fixture
def keyring(fresh_database: Settings) -> Keyring:
    return Keyring.from_settings(fresh_database)


@asynccontextmanager
async def listening_on_redis(redis_url: str, home: Household) -> AsyncIterator[DedupingSubscriber]:
    """A subscriber on the real Redis channel (redis-py's own pub/sub client).

    Not broadcaster's subscriber: in 0.3.1 its Redis listener can start `listen()` before
    SUBSCRIBE is confirmed, return at once and never listen again (the hub fixes that).
    """
    subscriber = DedupingSubscriber()
    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    await pubsub.subscribe(channel_for(home.tenant.workspace_id))
    async with asyncio.timeout(5):  # wait for the confirmation: from here nothing is missed
        while (await pubsub.get_message(timeout=1.0) or {}).get("type") != "subscribe":
            pass

    async def feed() -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None:
                subscriber.take(message["data"].decode())

    task = asyncio.create_task(feed())
    try:
        yield subscriber
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pubsub.aclose()
        await client.aclose()


@asynccontextmanager
async def listening(
    broadcast: Broadcast, homes: list[Household]
) -> AsyncIterator[list[DedupingSubscriber]]:
    """One deduping subscriber per household's channel, fed until the block ends."""
    subscribers = [DedupingSubscriber() for _ in homes]

    async def feed(home: Household, subscriber: DedupingSubscriber, ready: asyncio.Event) -> None:
        async with broadcast.subscribe(channel_for(home.tenant.workspace_id)) as stream:
            ready.set()
            while True:
                subscriber.take((await stream.get()).message)

    readies = [asyncio.Event() for _ in homes]
    tasks = [
        asyncio.create_task(feed(home, sub, ready))
        for home, sub, ready in zip(homes, subscribers, readies, strict=True)
    ]
    for ready in readies:
        await ready.wait()
    try:
        yield subscribers
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_the_relay_publishes_committed_events_in_order(
    engine: AsyncEngine, keyring: Keyring
) -> None:
    homes = [await household(engine, keyring), await household(engine, keyring)]
    for _ in range(3):
        for home in homes:
            await post(engine, home)
    async with Broadcast("memory://") as broadcast, listening(broadcast, homes) as subscribers:
        assert await relay_once(engine, broadcast.publish, batch=5) == 5
        assert await relay_once(engine, broadcast.publish) == 11
        assert await relay_once(engine, broadcast.publish) == 0
        async with asyncio.timeout(5):
            for subscriber in subscribers:
                await subscriber.until(8)
    for home, subscriber in zip(homes, subscribers, strict=True):
        assert [e.seq for e in subscriber.received] == list(range(1, 9))
        assert {e.workspace_id for e in subscriber.received} == {home.tenant.workspace_id}
        assert subscriber.received == await replay(engine, home.tenant.workspace_id)


async def test_nothing_is_published_before_commit(engine: AsyncEngine, keyring: Keyring) -> None:
    home = await household(engine, keyring)
    sent: list[str] = []

    async def publish(_channel: str, message: str) -> None:
        sent.append(message)

    assert await relay_once(engine, publish) == 2
    async with unit_of_work(engine) as session:
        await bind_scope(session, workspace_id=home.tenant.workspace_id)
        await tx.post(session, home.tenant, spend(home), idempotency_key="pending")
        assert await relay_once(engine, publish) == 0
    assert await relay_once(engine, publish) == 2
    assert [decode(m).seq for m in sent] == [1, 2, 3, 4]


async def test_a_relay_failing_mid_round_marks_only_what_went_out(
    engine: AsyncEngine, keyring: Keyring
) -> None:
    home = await household(engine, keyring)
    await post(engine, home)
    sent: list[int] = []

    async def flaky(_channel: str, message: str) -> None:
        if len(sent) == 2:
            raise ConnectionError("redis went away")
        sent.append(decode(message).seq)

    with pytest.raises(ConnectionError):
        await relay_once(engine, flaky)

    async def working(_channel: str, message: str) -> None:
        sent.append(decode(message).seq)

    assert await relay_once(engine, working) == 2
    assert sent == [1, 2, 3, 4]


async def test_a_relay_killed_between_publish_and_mark_publishes_again_exactly_once_seen(
    engine: AsyncEngine, keyring: Keyring, redis_url: str
) -> None:
    home = await household(engine, keyring)
    for _ in range(3):
        await post(engine, home)
    async with Broadcast(redis_url) as broadcast, listening_on_redis(redis_url, home) as subscriber:
        published = 0

        async def dies_after_five(channel: str, message: str) -> None:
            nonlocal published
            await broadcast.publish(channel, message)
            published += 1
            if published == 5:
                raise RelayKilled

        with pytest.raises(RelayKilled):
            await relay_once(engine, dies_after_five)
        await post(engine, home)  # committed while the relay was down
        assert await relay_once(engine, broadcast.publish) == 10
        async with asyncio.timeout(5):
            await subscriber.until(10)
        await asyncio.sleep(0.2)  # anything late would show up now
    assert [e.seq for e in subscriber.received] == [1, 2, 3, 4, 5, *range(1, 11)]
    assert [e.seq for e in subscriber.seen] == list(range(1, 11))


async def test_a_relay_process_sigkilled_after_publishing_republishes_on_restart(
    fresh_database: Settings, engine: AsyncEngine, keyring: Keyring, redis_url: str
) -> None:
    home = await household(engine, keyring)
    for _ in range(2):
        await post(engine, home)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "WEALTHWISE_DATA_DIR": str(fresh_database.data_dir),
        "WEALTHWISE_KEK": TEST_KEK,
        "WEALTHWISE_LOG_LEVEL": "WARNING",
    }
    if fresh_database.database_url:
        env["WEALTHWISE_DATABASE_URL"] = fresh_database.database_url
    async with Broadcast(redis_url) as broadcast, listening_on_redis(redis_url, home) as subscriber:
        victim = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.realtime.relay_victim", redis_url, "4", cwd=ROOT, env=env
        )
        assert await asyncio.wait_for(victim.wait(), 30) == -9  # SIGKILL, mid-round
        async with asyncio.timeout(5):
            await subscriber.until(4)
        assert await pending(engine) == [1, 2, 3, 4, 5, 6]  # nothing was marked
        assert await relay_once(engine, broadcast.publish) == 6  # the restarted relay
        async with asyncio.timeout(5):
            await subscriber.until(6)
        await asyncio.sleep(0.2)
    assert [e.seq for e in subscriber.received] == [1, 2, 3, 4, *range(1, 7)]
    assert [e.seq for e in subscriber.seen] == list(range(1, 7))


async def pending(engine: AsyncEngine) -> list[int]:
    """Seqs not yet marked published, as the relay would read them."""
    async with unit_of_work(engine, write=False) as session:
        if engine.dialect.name == "postgresql":
            query = text("SELECT seq FROM ww_outbox_pending(10000)")
        else:
            query = text("SELECT seq FROM outbox_events WHERE published_at IS NULL ORDER BY seq")
        return list((await session.execute(query)).scalars())


async def test_the_runner_wakes_on_a_commit_without_waiting_for_its_poll(
    engine: AsyncEngine, keyring: Keyring
) -> None:
    home = await household(engine, keyring)
    arrived: asyncio.Queue[str] = asyncio.Queue()

    async def publish(_channel: str, message: str) -> None:
        await arrived.put(message)

    relay = Relay(engine, publish, poll_seconds=60)
    relay.start()
    try:
        async with asyncio.timeout(5):
            assert [decode(await arrived.get()).seq for _ in range(2)] == [1, 2]
        await asyncio.sleep(0.1)  # the runner is now waiting out its 60 s poll
        started = time.monotonic()
        await post(engine, home)
        async with asyncio.timeout(5):
            assert decode(await arrived.get()).seq == 3
        assert time.monotonic() - started < 2
    finally:
        await relay.stop()


async def test_stopping_the_runner_while_commits_wake_it_always_ends_it(
    engine: AsyncEngine,
) -> None:
    """A stop that lands as a wake-up fires must still end the runner (on Python 3.11,
    `asyncio.wait_for` swallowed a cancel arriving just after its event fired, and `stop()`
    then waited forever: the hang that once ate a CI run)."""

    async def publish(_channel: str, _message: str) -> None:
        return None

    for steps in range(8):  # the wake-up's callbacks take a few loop steps to reach the runner
        relay = Relay(engine, publish, poll_seconds=30)
        relay.start()
        await asyncio.sleep(0.05)  # it has published nothing and waits for a wake-up
        relay._wakeup.set()
        for _ in range(steps):
            await asyncio.sleep(0)
        runner = relay._task
        assert runner is not None
        stopping = asyncio.create_task(relay.stop())
        await asyncio.wait({stopping}, timeout=5)
        assert stopping.done() and runner.done(), f"the runner outlived stop() ({steps} steps)"


async def test_the_runner_backs_off_on_errors_and_then_delivers_everything(
    engine: AsyncEngine, keyring: Keyring
) -> None:
    home = await household(engine, keyring)
    await post(engine, home)
    failures = 3
    delivered: list[int] = []
    all_there = asyncio.Event()

    async def down_for_a_while(_channel: str, message: str) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionError("down")
        delivered.append(decode(message).seq)
        if len(delivered) == 4:
            all_there.set()

    relay = Relay(engine, down_for_a_while, poll_seconds=0.02, max_backoff_seconds=0.1)
    relay.start()
    try:
        async with asyncio.timeout(5):
            await all_there.wait()
        await asyncio.sleep(0.3)  # the round that delivered them finishes and is counted
    finally:
        await relay.stop()
    assert delivered == [1, 2, 3, 4]
    assert relay.failures == 0 and relay.published == 4


async def test_after_a_long_outage_the_runner_retries_within_the_hubs_reconnect_cap(
    fresh_database: Settings, engine: AsyncEngine, keyring: Keyring
) -> None:
    """Many failed rounds (a long Redis outage) must not leave the relay asleep once the
    publisher is back: its backoff is capped by realtime_reconnect_max_seconds (uncapped,
    ten failures at a 0.01 s poll would sleep 5-10 s)."""
    await household(engine, keyring)  # seq 1-2, pending
    settings = fresh_database.model_copy(
        update={"outbox_poll_seconds": 0.01, "realtime_reconnect_max_seconds": 0.3}
    )
    attempts = 0
    down_long_enough, up, arrived = asyncio.Event(), asyncio.Event(), asyncio.Event()
    delivered: list[int] = []

    async def publish(_channel: str, message: str) -> None:
        nonlocal attempts
        if not up.is_set():
            attempts += 1
            if attempts == 11:  # ten rounds failed and backed off
                down_long_enough.set()
            raise ConnectionError("redis is down")
        delivered.append(decode(message).seq)
        if len(delivered) == 2:
            arrived.set()

    relay = Relay.from_settings(engine, publish, settings)
    relay.start()
    try:
        async with asyncio.timeout(10):
            await down_long_enough.wait()
        up.set()
        back = time.monotonic()
        async with asyncio.timeout(10):
            await arrived.wait()
        assert time.monotonic() - back < 1.0
    finally:
        await relay.stop()
    assert delivered == [1, 2]


async def test_prune_deletes_old_published_events_and_seq_keeps_counting(
    fresh_database: Settings, engine: AsyncEngine, keyring: Keyring
) -> None:
    home = await household(engine, keyring)
    sent: list[str] = []

    async def publish(_channel: str, message: str) -> None:
        sent.append(message)

    await relay_once(engine, publish)
    await post(engine, home)  # 3-4: committed, not published
    assert await outbox.prune(engine, older_than=dt.timedelta(days=1)) == 0
    assert await outbox.prune(engine, older_than=dt.timedelta(0), batch=1) == 2
    assert [e.seq for e in await replay(engine, home.tenant.workspace_id)] == [3, 4]
    await relay_once(engine, publish)
    assert await outbox.prune_expired(engine, fresh_database) == 0  # kept 7 days by default
    expire_now = fresh_database.model_copy(update={"outbox_retention_days": 0})
    assert await outbox.prune_expired(engine, expire_now) == 2
    await post(engine, home)
    # seqs 1-4 are gone: a client resuming from 0 sees the gap (first seq is not 1)
    assert [e.seq for e in await replay(engine, home.tenant.workspace_id)] == [5, 6]


async def test_the_relay_functions_give_the_api_role_ids_and_nothing_sensitive(
    postgres_database: Settings,
) -> None:
    engine = create_engine(postgres_database)
    keyring = Keyring.from_settings(postgres_database)
    try:
        home = await household(engine, keyring)
        await post(engine, home, "-4321.09")
    finally:
        await engine.dispose()
    app = await asyncpg.connect(_dsn(postgres_database.resolved_app_database_url))
    owner = await asyncpg.connect(_dsn(postgres_database.resolved_database_url))
    try:
        # unscoped, the API role sees no outbox row; the function lists them all
        assert await app.fetchval("SELECT count(*) FROM outbox_events") == 0
        rows = await app.fetch("SELECT * FROM ww_outbox_pending(10000)")
        acls = await owner.fetch(
            "SELECT proname, proacl::text[] AS acl FROM pg_proc WHERE proname LIKE 'ww_outbox%'"
        )
    finally:
        await app.close()
        await owner.close()
    assert rows and list(rows[0].keys()) == [
        "id",
        "workspace_id",
        "seq",
        "type",
        "data",
        "occurred_at",
    ]
    mine = [r for r in rows if r["workspace_id"] == home.tenant.workspace_id]
    assert [r["seq"] for r in mine] == [1, 2, 3, 4]
    for row in rows:
        text = row["data"].lower()
        for secret in (SECRET_PAYEE, SECRET_ACCOUNT, "4321", "5000"):
            assert secret.lower() not in text
        assert set(decode_data(row["data"])) <= EVENT_FIELDS[EventType(row["type"])]
    assert {r["proname"] for r in acls} == {
        "ww_outbox_pending",
        "ww_outbox_mark_published",
        "ww_outbox_prune",
        "ww_outbox_notify",  # the trigger's (migration 0011): nobody may call it
    }
    for acl in acls:  # no grant to PUBLIC ("=X/owner"), one to the API role
        assert not any(entry.startswith("=") for entry in acl["acl"]), acl
        granted = any(e.startswith(f"{postgres_database.app_db_role}=X") for e in acl["acl"])
        assert granted == (acl["proname"] != "ww_outbox_notify"), acl


def decode_data(data: str) -> dict[str, object]:
    import json

    loaded: dict[str, object] = json.loads(data)
    return loaded


async def _commit_from_elsewhere(owner_url: str, home: Household) -> int:
    """Append one event the way another process's commit would: on a connection of its
    own, out of this process's sight (no session hook fires). Returns its seq."""
    connection = await asyncpg.connect(_dsn(owner_url))
    try:
        async with connection.transaction():
            # The owner's own policy (migration 0006), should the owner not be a superuser.
            await connection.execute("SET LOCAL app.maintenance = 'on'")
            seq = await connection.fetchval(
                "UPDATE outbox_heads SET seq = seq + 1 WHERE workspace_id = $1 RETURNING seq",
                home.tenant.workspace_id,
            )
            await connection.execute(
                "INSERT INTO outbox_events (id, workspace_id, seq, type, data, occurred_at)"
                " VALUES ($1, $2, $3, $4, $5, now())",
                uuid.uuid4(),
                home.tenant.workspace_id,
                seq,
                EventType.BALANCE_CHANGED.value,
                json.dumps({"accounts": [str(home.account_id)]}),
            )
    finally:
        await connection.close()
    return int(seq)


async def _listener_pids(owner_url: str) -> list[int]:
    connection = await asyncpg.connect(_dsn(owner_url))
    try:
        rows = await connection.fetch(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN %ww_outbox%'"
        )
        return [row["pid"] for row in rows]
    finally:
        await connection.close()


async def _arrival(arrived: asyncio.Queue[str], home: Household, seq: int) -> float:
    """Wait (5 s at most) for the household's event `seq`, passing over anything else the
    relay publishes (other tests' workspaces share the database); returns when it came."""
    async with asyncio.timeout(5):
        while True:
            envelope = decode(await arrived.get())
            if envelope.workspace_id == home.tenant.workspace_id and envelope.seq == seq:
                return time.monotonic()


@asynccontextmanager
async def listening_relay(
    settings: Settings,
) -> AsyncIterator[tuple[Relay, AsyncEngine, Household, asyncio.Queue[str]]]:
    """A relay that polls only every 60 s, LISTENing, past its first round (a new
    household's two events): from here a round starts on a NOTIFY, or in a minute."""
    engine = create_engine(settings)
    arrived: asyncio.Queue[str] = asyncio.Queue()

    async def publish(_channel: str, message: str) -> None:
        await arrived.put(message)

    try:
        home = await household(engine, Keyring.from_settings(settings))
        relay = Relay(engine, publish, poll_seconds=60)
        relay.start()
        try:
            await eventually(lambda: relay.listening, 10, "LISTEN in place")
            await _arrival(arrived, home, 2)
            yield relay, engine, home, arrived
        finally:
            await relay.stop()
    finally:
        await engine.dispose()


async def test_a_commit_in_another_process_wakes_the_relay_through_listen_notify(
    postgres_database: Settings,
) -> None:
    """The worker's relay never sees the API's commits through the session hook: on
    PostgreSQL the commit's NOTIFY (migration 0011) starts a round, not the next poll."""
    async with listening_relay(postgres_database) as (_relay, _engine, home, arrived):
        await asyncio.sleep(0.2)  # the runner now waits out its 60 s poll
        started = time.monotonic()
        seq = await _commit_from_elsewhere(postgres_database.resolved_database_url, home)
        assert await _arrival(arrived, home, seq) - started < 2


async def test_a_lost_listening_connection_is_replaced_and_commits_wake_the_relay_again(
    postgres_database: Settings,
) -> None:
    owner_url = postgres_database.resolved_database_url
    async with listening_relay(postgres_database) as (relay, engine, home, arrived):
        pids = await _listener_pids(owner_url)
        assert len(pids) == 1  # its own connection, out of the pool
        admin = await asyncpg.connect(_dsn(owner_url))
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pids[0])
        finally:
            await admin.close()
        await eventually(lambda: relay.listens == 2 and relay.listening, 10, "LISTEN again")
        assert await _listener_pids(owner_url) not in ([], pids)
        await asyncio.sleep(0.2)  # past the round the new LISTEN started
        started = time.monotonic()
        seq = await _commit_from_elsewhere(owner_url, home)
        assert await _arrival(arrived, home, seq) - started < 2

        await relay.stop()
        listeners: list[int] = [0]

        async def gone() -> bool:  # the server ends the backend on its own schedule
            listeners[:] = await _listener_pids(owner_url)
            return not listeners

        await eventually(gone, 10, "stopped, the relay let its listening connection go")
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_backoff_doubles_up_to_its_cap_however_long_the_outage() -> None:
    assert [backoff(0.5, n, 2.0) for n in range(4)] == [0.5, 1.0, 2.0, 2.0]
    assert backoff(0.02, 5_000, 2.0) == 2.0  # 2.0**5000 would overflow a float
