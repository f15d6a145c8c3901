"""PostgreSQL's second wall: the API's role sees only what its transaction is scoped to.

These tests talk raw SQL over the API's own database role (the one the app connects as),
after two households have written data through the public API.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from api.app import build_services, create_app
from domain.core.crypto import SYSTEM_OWNER
from domain.core.settings import Settings
from schema.ids import decode_id
from tests.graphql import Client, category_ids, create_account, post, register

# Tables whose rows belong to a workspace or a user: every one is RLS-forced.
OWNED_COLUMNS = ("workspace_id", "user_id", "owner_id")


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
async def households(postgres_database: Settings) -> AsyncIterator[dict[str, Any]]:
    """Two households with accounts and transactions, written through the API."""
    services = build_services(postgres_database)
    app = create_app(postgres_database, services)
    made: dict[str, Any] = {}
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://w.test") as a,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://w.test") as b,
    ):
        for name, http in (("victim", a), ("attacker", b)):
            client = Client(http)
            session = await register(client, name=name.title())
            account = await create_account(client, name=f"{name} bank", opening="100")
            categories = await category_ids(client)
            transaction = await post(client, account, categories["Groceries"], "-12.50")
            made[name] = {
                "workspace": decode_id(session["workspaces"][0]["id"], "Workspace"),
                "user": decode_id(session["user"]["id"], "User"),
                "account": decode_id(account, "Account"),
                "transaction": decode_id(transaction, "Transaction"),
            }
    await services.engine.dispose()
    made["settings"] = postgres_database
    yield made


async def _app_connection(settings: Settings) -> asyncpg.Connection:
    return await asyncpg.connect(_dsn(settings.resolved_app_database_url))


async def _owned_tables(settings: Settings) -> list[str]:
    owner = await asyncpg.connect(_dsn(settings.resolved_database_url))
    try:
        rows = await owner.fetch(
            """SELECT DISTINCT table_name FROM information_schema.columns
               WHERE table_schema = 'public' AND column_name = ANY($1::text[])
               ORDER BY table_name""",
            list(OWNED_COLUMNS),
        )
    finally:
        await owner.close()
    return [row["table_name"] for row in rows] + ["users", "workspaces"]


async def test_the_api_connects_as_a_role_that_owns_nothing_and_cannot_bypass_rls(
    postgres_database: Settings,
) -> None:
    services = build_services(postgres_database)
    try:
        async with services.engine.connect() as connection:
            role = (await connection.exec_driver_sql("SELECT current_user")).scalar_one()
    finally:
        await services.engine.dispose()
    assert role == postgres_database.app_db_role
    app = await _app_connection(postgres_database)
    try:
        flags = await app.fetchrow(
            "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles"
            " WHERE rolname = current_user"
        )
        owned = await app.fetchval(
            "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner"
            " WHERE r.rolname = current_user"
        )
    finally:
        await app.close()
    assert flags is not None and not any(flags.values())
    assert owned == 0


async def test_every_owned_table_forces_row_level_security(postgres_database: Settings) -> None:
    tables = await _owned_tables(postgres_database)
    assert {"transactions", "postings", "users", "memberships", "data_keys"} <= set(tables)
    owner = await asyncpg.connect(_dsn(postgres_database.resolved_database_url))
    try:
        rows = await owner.fetch(
            "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class"
            " WHERE relname = ANY($1::text[]) AND relkind = 'r'",
            tables,
        )
        policies = await owner.fetch(
            "SELECT tablename FROM pg_policies WHERE policyname = 'tenant_scope'"
        )
    finally:
        await owner.close()
    unprotected = [
        r["relname"] for r in rows if not (r["relrowsecurity"] and r["relforcerowsecurity"])
    ]
    assert unprotected == []
    assert {p["tablename"] for p in policies} >= set(tables)


async def test_without_a_scope_the_api_role_sees_no_row_of_any_owned_table(
    households: dict[str, Any],
) -> None:
    settings: Settings = households["settings"]
    tables = await _owned_tables(settings)
    app = await _app_connection(settings)
    try:
        counts = {table: await app.fetchval(f"SELECT count(*) FROM {table}") for table in tables}
        # The system owner's keys (the KEK-wrapped blind-index and user-field keys) are
        # readable before login by design: login needs the blind index first.
        counts["data_keys"] = await app.fetchval(
            "SELECT count(*) FROM data_keys WHERE owner_id <> $1", SYSTEM_OWNER
        )
    finally:
        await app.close()
    assert counts == {table: 0 for table in tables}


async def test_scoped_to_one_workspace_the_api_role_reaches_nothing_of_another(
    households: dict[str, Any],
) -> None:
    settings: Settings = households["settings"]
    victim, attacker = households["victim"], households["attacker"]
    app = await _app_connection(settings)
    attempts = 0
    try:
        async with app.transaction():
            await app.execute(
                "SELECT set_config('app.workspace_id', $1, true),"
                " set_config('app.user_id', $2, true)",
                str(attacker["workspace"]),
                str(attacker["user"]),
            )
            # Its own rows are there ...
            assert (
                await app.fetchval(
                    "SELECT count(*) FROM transactions WHERE id = $1", attacker["transaction"]
                )
                == 1
            )
            # ... the victim's are not, by id, by workspace, or in bulk.
            reads = [
                ("SELECT count(*) FROM transactions WHERE id = $1", victim["transaction"]),
                ("SELECT count(*) FROM postings WHERE transaction_id = $1", victim["transaction"]),
                ("SELECT count(*) FROM accounts WHERE workspace_id = $1", victim["workspace"]),
                ("SELECT count(*) FROM month_totals WHERE workspace_id = $1", victim["workspace"]),
                ("SELECT count(*) FROM workspaces WHERE id = $1", victim["workspace"]),
                ("SELECT count(*) FROM memberships WHERE workspace_id = $1", victim["workspace"]),
                ("SELECT count(*) FROM data_keys WHERE owner_id = $1", victim["workspace"]),
                ("SELECT count(*) FROM users WHERE id = $1", victim["user"]),
                ("SELECT count(*) FROM auth_sessions WHERE user_id = $1", victim["user"]),
                ("SELECT count(*) FROM refresh_tokens WHERE user_id = $1", victim["user"]),
            ]
            for statement, argument in reads:
                attempts += 1
                assert await app.fetchval(statement, argument) == 0, statement
            writes = [
                ("UPDATE transactions SET date = date WHERE id = $1", victim["transaction"]),
                ("DELETE FROM postings WHERE transaction_id = $1", victim["transaction"]),
                ("UPDATE accounts SET archived = true WHERE id = $1", victim["account"]),
                ("DELETE FROM memberships WHERE workspace_id = $1", victim["workspace"]),
                ("UPDATE users SET name_enc = name_enc WHERE id = $1", victim["user"]),
            ]
            for statement, argument in writes:
                attempts += 1
                assert await app.execute(statement, argument) in ("UPDATE 0", "DELETE 0"), statement
    finally:
        await app.close()
    # Writing a row into the victim's workspace is refused by WITH CHECK.
    inserts = [
        "INSERT INTO tags (id, workspace_id, name) VALUES ($1, $2, 'x')",
        "INSERT INTO memberships (id, workspace_id, user_id, role, created_at)"
        " VALUES ($1, $2, $3, 'owner', now())",
    ]
    for statement in inserts:
        attempts += 1
        app = await _app_connection(settings)
        try:
            async with app.transaction():
                await app.execute(
                    "SELECT set_config('app.workspace_id', $1, true),"
                    " set_config('app.user_id', $2, true)",
                    str(attacker["workspace"]),
                    str(attacker["user"]),
                )
                arguments: list[object] = [uuid.uuid4(), victim["workspace"]]
                if "$3" in statement:
                    arguments.append(attacker["user"])
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await app.execute(statement, *arguments)
        finally:
            await app.close()
    assert attempts == 17


async def test_the_api_role_cannot_change_the_schema_or_the_policies(
    postgres_database: Settings,
) -> None:
    app = await _app_connection(postgres_database)
    try:
        for statement in (
            "ALTER TABLE transactions DISABLE ROW LEVEL SECURITY",
            "DROP POLICY tenant_scope ON transactions",
            "ALTER TABLE transactions NO FORCE ROW LEVEL SECURITY",
            "TRUNCATE transactions CASCADE",
            "SET session_replication_role = replica",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await app.execute(statement)
    finally:
        await app.close()


async def test_every_policy_column_leads_an_index(postgres_database: Settings) -> None:
    """The policies filter on these columns: each must be the first column of an index."""
    owner = await asyncpg.connect(_dsn(postgres_database.resolved_database_url))
    try:
        columns = await owner.fetch(
            """SELECT table_name, column_name FROM information_schema.columns
               WHERE table_schema = 'public' AND column_name = ANY($1::text[])""",
            list(OWNED_COLUMNS),
        )
        leading = await owner.fetch(
            """SELECT t.relname AS table_name, a.attname AS column_name
               FROM pg_index i
               JOIN pg_class t ON t.oid = i.indrelid
               JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = i.indkey[0]"""
        )
    finally:
        await owner.close()
    indexed = {(r["table_name"], r["column_name"]) for r in leading}
    missing = sorted(
        (r["table_name"], r["column_name"])
        for r in columns
        if (r["table_name"], r["column_name"]) not in indexed
    )
    assert missing == []
