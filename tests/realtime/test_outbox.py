"""The outbox: events commit (or roll back) with the change, seq is contiguous per
workspace, and event data names ids, never secrets."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from domain.core.db import bind_scope, create_engine, unit_of_work
from domain.core.keys import Keyring
from domain.core.settings import Settings
from domain.ledger import accounts
from domain.ledger import transactions as tx
from domain.realtime import outbox
from domain.realtime.events import EVENT_FIELDS, EventType
from domain.realtime.models import OutboxEvent
from tests.realtime.helpers import (
    SECRET_ACCOUNT,
    SECRET_NOTE,
    SECRET_PAYEE,
    household,
    post,
    replay,
    spend,
)
from tests.security.test_row_level_security import _dsn


@pytest.fixture
async def engine(database: Settings) -> AsyncIterator[AsyncEngine]:
    built = create_engine(database)
    yield built
    await built.dispose()


@pytest.fixture
def keyring(database: Settings) -> Keyring:
    return Keyring.from_settings(database)


async def test_a_post_writes_its_events_in_its_own_transaction(
    engine: AsyncEngine, keyring: Keyring
) -> None:
    home = await household(engine, keyring)
    workspace = home.tenant.workspace_id
    assert [(e.seq, e.type) for e in await replay(engine, workspace)] == [
        (1, "balance.changed"),
        (2, "balance.changed"),
    ]
    async with unit_of_work(engine) as session:
        await bind_scope(session, workspace_id=workspace)
        await tx.post(session, home.tenant, spend(home), idempotency_key="rolled-back")
        assert len(await outbox.events_since(session, workspace, 2)) == 2  # inside: there
        await session.rollback()
    assert len(await replay(engine, workspace)) == 2  # rolled back with the post
    transaction_id = await post(engine, home)
    events = await replay(engine, workspace, since=2)
    assert [(e.seq, e.type) for e in events] == [(3, "transaction.posted"), (4, "balance.changed")]
    assert events[0].data == {
        "transaction": str(transaction_id),
        "accounts": [str(home.account_id)],
        "categories": [str(home.category_ids["Groceries"])],
        "date": "2026-11-20",
    }
    assert events[1].data == {"accounts": [str(home.account_id)]}


async def test_an_idempotent_replay_emits_nothing(engine: AsyncEngine, keyring: Keyring) -> None:
    home = await household(engine, keyring)
    for _ in range(2):
        async with unit_of_work(engine) as session:
            await bind_scope(session, workspace_id=home.tenant.workspace_id)
            await tx.post(session, home.tenant, spend(home), idempotency_key="same")
    assert len(await replay(engine, home.tenant.workspace_id)) == 4


async def test_seq_is_contiguous_under_twelve_concurrent_posts(
    engine: AsyncEngine, keyring: Keyring
) -> None:
    home = await household(engine, keyring)
    ids = await asyncio.gather(*(post(engine, home, f"-{n + 1}") for n in range(12)))
    events = await replay(engine, home.tenant.workspace_id)
    assert [e.seq for e in events] == list(range(1, 2 + 2 * 12 + 1))
    posted = [e.data["transaction"] for e in events if e.type == "transaction.posted"]
    assert sorted(posted) == sorted(str(i) for i in ids)
    # each post's balance.changed follows its own transaction.posted (one head lock each)
    for before, after in zip(events[2::2], events[3::2], strict=True):
        assert (before.type, after.type) == ("transaction.posted", "balance.changed")


async def test_edit_and_delete_announce_old_and_new_ids_and_only_moved_balances(
    engine: AsyncEngine, keyring: Keyring
) -> None:
    home = await household(engine, keyring)
    workspace = home.tenant.workspace_id
    transaction_id = await post(engine, home)
    moved = tx.TransactionDraft(
        account_id=home.other_account_id,
        date=dt.date(2026, 11, 21),
        amount=spend(home).amount,
        category_id=home.category_ids["Dining out"],
    )
    async with unit_of_work(engine) as session:
        await bind_scope(session, workspace_id=workspace)
        await tx.edit(session, home.tenant, transaction_id, moved, idempotency_key="e1")
        renamed = tx.TransactionDraft(**{**moved.__dict__, "payee": "Renamed"})
        await tx.edit(session, home.tenant, transaction_id, renamed, idempotency_key="e2")
        await tx.remove(session, home.tenant, transaction_id, idempotency_key="d1")
    events = await replay(engine, workspace, since=4)
    assert [e.type for e in events] == [
        "transaction.edited",
        "balance.changed",
        "transaction.edited",  # the payee only: no balance moved
        "transaction.deleted",
        "balance.changed",
    ]
    both = sorted([str(home.account_id), str(home.other_account_id)])
    assert events[0].data["accounts"] == both
    assert set(events[0].data["categories"]) == {
        str(home.category_ids["Groceries"]),
        str(home.category_ids["Dining out"]),
    }
    assert events[0].data["previous_date"] == "2026-11-20"
    assert events[0].data["date"] == "2026-11-21"
    assert events[1].data == {"accounts": both}
    assert events[4].data == {"accounts": [str(home.other_account_id)]}


async def test_post_many_emits_one_event_per_transaction_and_one_balance_change(
    engine: AsyncEngine, keyring: Keyring
) -> None:
    home = await household(engine, keyring)
    drafts = [spend(home, f"-{n + 1}") for n in range(30)]
    drafts.append(
        tx.TransferDraft(
            from_account_id=home.account_id,
            to_account_id=home.other_account_id,
            date=dt.date(2026, 11, 22),
            amount=spend(home, "10").amount or 0,
        )
    )
    async with unit_of_work(engine) as session:
        await bind_scope(session, workspace_id=home.tenant.workspace_id)
        assert await tx.post_many(session, home.tenant, drafts) == 31
    events = await replay(engine, home.tenant.workspace_id, since=2)
    assert [e.seq for e in events] == list(range(3, 3 + 32))
    assert [e.type for e in events] == ["transaction.posted"] * 31 + ["balance.changed"]
    assert events[-1].data == {
        "accounts": sorted([str(home.account_id), str(home.other_account_id)])
    }


async def test_archiving_an_account_is_a_balance_change_and_renaming_is_not(
    engine: AsyncEngine, keyring: Keyring
) -> None:
    home = await household(engine, keyring)
    async with unit_of_work(engine) as session:
        await bind_scope(session, workspace_id=home.tenant.workspace_id)
        await accounts.update_account(session, home.tenant, home.other_account_id, name="Purse")
        await accounts.update_account(session, home.tenant, home.other_account_id, archived=True)
        await accounts.update_account(session, home.tenant, home.other_account_id, archived=True)
    events = await replay(engine, home.tenant.workspace_id, since=2)
    assert [(e.type, e.data) for e in events] == [
        ("balance.changed", {"accounts": [str(home.other_account_id)]})
    ]


async def test_event_data_carries_ids_and_dates_never_secrets(
    engine: AsyncEngine, keyring: Keyring
) -> None:
    home = await household(engine, keyring)
    transaction_id = await post(engine, home, "-98765.43")
    async with unit_of_work(engine) as session:
        await bind_scope(session, workspace_id=home.tenant.workspace_id)
        await tx.remove(session, home.tenant, transaction_id, idempotency_key="gone")
        raw = (
            await session.execute(
                select(col(OutboxEvent.type), col(OutboxEvent.data)).where(
                    col(OutboxEvent.workspace_id) == home.tenant.workspace_id
                )
            )
        ).all()
    assert len(raw) == 6
    for event_type, data in raw:
        for secret in (SECRET_PAYEE, SECRET_ACCOUNT, SECRET_NOTE, "98765", "9876543", "5000"):
            assert secret.lower() not in data.lower()
        assert set(json.loads(data)) <= EVENT_FIELDS[EventType(event_type)]
    with pytest.raises(outbox.EventDataError, match="carry no payee"):
        async with unit_of_work(engine) as session:
            await outbox.emit(
                session,
                home.tenant.workspace_id,
                EventType.TRANSACTION_POSTED,
                {"transaction": str(transaction_id), "payee": SECRET_PAYEE},
            )
    with pytest.raises(outbox.EventDataError, match="ids, dates or flags"):
        async with unit_of_work(engine) as session:
            data = {"accounts": [{"name": SECRET_ACCOUNT}]}
            await outbox.emit(session, home.tenant.workspace_id, EventType.BALANCE_CHANGED, data)


async def test_the_api_role_cannot_read_another_workspaces_outbox(
    postgres_database: Settings,
) -> None:
    engine = create_engine(postgres_database)
    keyring = Keyring.from_settings(postgres_database)
    try:
        victim, attacker = await household(engine, keyring), await household(engine, keyring)
        await post(engine, victim)
        async with unit_of_work(engine) as session:  # scoped to the attacker
            await bind_scope(session, workspace_id=attacker.tenant.workspace_id)
            stolen = await outbox.events_since(session, victim.tenant.workspace_id, 0)
            assert stolen == []
    finally:
        await engine.dispose()
    app = await asyncpg.connect(_dsn(postgres_database.resolved_app_database_url))
    try:
        async with app.transaction():
            await app.execute(
                "SELECT set_config('app.workspace_id', $1, true)", str(attacker.tenant.workspace_id)
            )
            for table in ("outbox_events", "outbox_heads"):
                found = await app.fetchval(
                    f"SELECT count(*) FROM {table} WHERE workspace_id = $1",
                    victim.tenant.workspace_id,
                )
                assert found == 0, table
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await app.execute(
                    "INSERT INTO outbox_events (id, workspace_id, seq, type, data, occurred_at)"
                    " VALUES ($1, $2, 99, 'balance.changed', '{}', now())",
                    uuid.uuid4(),
                    victim.tenant.workspace_id,
                )
    finally:
        await app.close()
