"""The raw database holds none of the demo's payees, narrations, numbers or amounts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import asyncpg
from sqlmodel import select

from domain.core.crypto import SYSTEM_OWNER
from domain.core.db import create_engine, unit_of_work
from domain.core.keys import Keyring
from domain.core.settings import Settings
from domain.demo import seed_household
from domain.identity import service as identity
from domain.identity.models import User
from domain.ledger import accounts as accounts_service
from domain.ledger import budgets
from domain.ledger import transactions as tx_service
from domain.ledger.models import Posting, Transaction
from domain.ledger.repository import LedgerRepository

MIN_TEXT = 4  # shorter strings could occur by chance in ciphertext
MIN_NUMBER = 6  # amounts are searched as decimal text ("1499.00")


async def _seed_and_collect(settings: Settings) -> set[bytes]:
    """Seed the demo, then decrypt everything sensitive through the domain: the needles."""
    engine = create_engine(settings)
    keyring = Keyring.from_settings(settings)
    needles: set[str] = set()
    async with unit_of_work(engine) as session:
        household = await seed_household(session, keyring, anchor=dt.date(2026, 3, 14))
        assert household is not None
    async with unit_of_work(engine, write=False) as session:
        tenant = await identity.open_tenant(
            session, keyring, household.owner_id, household.workspace_id
        )
        repository = LedgerRepository(session, tenant.workspace_id)
        for account in await repository.accounts():
            view = accounts_service.view(tenant, account)
            needles.update(filter(None, (view.name, view.number, view.institution)))
            needles.add(str(view.opening_balance.amount))
        rows = (
            (
                await session.execute(
                    select(Transaction).where(Transaction.workspace_id == tenant.workspace_id)  # type: ignore[arg-type]
                )
            )
            .scalars()
            .all()
        )
        for row in rows:
            view = tx_service.view(tenant, row)
            needles.update(filter(None, (view.payee, view.narration, view.notes)))
        postings = (
            (
                await session.execute(
                    select(Posting).where(Posting.workspace_id == tenant.workspace_id)  # type: ignore[arg-type]
                )
            )
            .scalars()
            .all()
        )
        for posting in postings:
            money = tx_service.posting_view(tenant, posting).amount
            needles.add(str(abs(money.amount)))  # as decimal text, e.g. "1499.00"
        views = await budgets.list_budgets(session, tenant)
        assert views
        needles.update(str(view.amount.amount) for view in views)
        cipher = await keyring.cipher(session, SYSTEM_OWNER)
        for user in (await session.execute(select(User))).scalars():
            needles.add(cipher.open_text(user.email_enc, "users", "email", user.id))
            needles.add(cipher.open_text(user.name_enc, "users", "name", user.id))
    await engine.dispose()
    assert len(rows) > 2000
    return {
        n.encode()
        for n in needles
        if len(n) >= (MIN_NUMBER if n.replace(".", "").isdigit() else MIN_TEXT)
    }


# Integer columns that hold no money: anything else numeric could be a plaintext amount.
NUMERIC_ALLOWED = {
    ("data_keys", "key_id"),
    ("postings", "position"),
    ("month_totals", "month"),
    ("month_totals", "postings"),
    ("accounts", "archived"),
    # audit chain positions and the hash encoding's version
    ("audit_events", "seq"),
    ("audit_events", "version"),
    ("audit_heads", "seq"),
    ("audit_checkpoints", "seq"),
    # outbox event positions (event data is ids and dates only)
    ("outbox_events", "seq"),
    ("outbox_heads", "seq"),
    # an advisor answer's save counter and the model's token counts
    ("advisor_messages", "version"),
    ("advisor_messages", "input_tokens"),
    ("advisor_messages", "output_tokens"),
    ("advisor_messages", "cache_read_tokens"),
    ("advisor_messages", "cache_creation_tokens"),
}


def test_no_table_has_a_numeric_column_that_could_hold_an_amount() -> None:
    from sqlalchemy import Boolean, Integer, Numeric
    from sqlmodel import SQLModel

    import domain.advisor.models
    import domain.identity.models
    import domain.ledger.models  # noqa: F401

    numeric = {
        (table.name, column.name)
        for table in SQLModel.metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, (Integer, Numeric, Boolean))
    }
    assert numeric == NUMERIC_ALLOWED


def _raw_sqlite(data_dir: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(data_dir.glob("wealthwise.db*")))


async def _raw_postgres(url: str) -> bytes:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )
        chunks: list[bytes] = []
        for table in tables:
            for row in await connection.fetch(f'SELECT * FROM "{table["tablename"]}"'):
                for value in row.values():
                    chunks.append(value if isinstance(value, bytes) else str(value).encode())
        return b"\x00".join(chunks)
    finally:
        await connection.close()


async def test_no_sensitive_demo_value_is_stored_in_plaintext(fresh_database: Settings) -> None:
    needles = await _seed_and_collect(fresh_database)
    assert {b"BigBasket", b"Swiggy", b"asha@demo.wealthwise.dev"} <= needles
    if fresh_database.is_sqlite:
        raw = _raw_sqlite(fresh_database.data_dir)
    else:
        raw = await _raw_postgres(fresh_database.resolved_database_url)
    assert len(raw) > 100_000
    found = sorted(needle.decode() for needle in needles if needle in raw)
    assert found == []
    # The same check can fail: a category name is stored in the clear by design.
    assert b"Groceries" in raw
