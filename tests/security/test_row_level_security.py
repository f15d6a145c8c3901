"""PostgreSQL's second wall: the API's role sees only what its transaction is scoped to.

These tests talk raw SQL over the API's own database role (the one the app connects as),
after two households have written data through the public API.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
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
from tests.workers.helpers import forget, stream_settings
from workers.runtime import LOOP_FACTORIES, Worker, background_loop
from workers.tasks import JobServices

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
            transaction = await post(
                client, account, categories["Groceries"], "-12.50", tags=["weekly"]
            )
            await _seed_the_rest(client, categories["Groceries"], name)
            made[name] = {
                "workspace": decode_id(session["workspaces"][0]["id"], "Workspace"),
                "user": decode_id(session["user"]["id"], "User"),
                "account": decode_id(account, "Account"),
                "transaction": decode_id(transaction, "Transaction"),
            }
    await services.engine.dispose()
    # No sign-in through an OIDC provider here: the victim's identity row is planted directly.
    owner = await asyncpg.connect(_dsn(postgres_database.resolved_database_url))
    try:
        for name in ("victim", "attacker"):
            await owner.execute(
                "INSERT INTO oidc_identities (id, provider, subject, user_id, created_at)"
                " VALUES ($1, 'google', $2, $3, now())",
                uuid.uuid4(),
                uuid.uuid4().hex,
                made[name]["user"],
            )
    finally:
        await owner.close()
    made["settings"] = postgres_database
    yield made


SEED = """mutation($c: ID!, $who: String!, $email: String!) {
  setBudget(categoryId: $c, amount: "5000") { updatedAt }
  setFxRate(base: "USD", quote: "INR", date: "2025-03-01", rate: "83.10") { rate }
  createApiToken(name: $who, scope: READ) { token }
  inviteMember(email: $email, role: MEMBER) { expiresAt }
  sealAuditLog { seq }
}"""


async def _seed_the_rest(client: Client, category: str, name: str) -> None:
    """Rows of the kinds the accounts and transactions above do not make: budgets, FX rates,
    API tokens, invitations, audit checkpoints, advisor threads and messages."""
    await client.ok(SEED, c=category, who=name, email=f"{name}-guest-{uuid.uuid4().hex}@w.test")
    await client.ok(
        "mutation($q: String!) { askAdvisor(question: $q) { thread { id } } }",
        q="How much did I spend on groceries?",
    )


async def _app_connection(settings: Settings) -> asyncpg.Connection:
    return await asyncpg.connect(_dsn(settings.resolved_app_database_url))


async def _owned_columns(settings: Settings) -> dict[str, list[str]]:
    """Each owned table with its owning columns ("id" for users and workspaces themselves)."""
    owner = await asyncpg.connect(_dsn(settings.resolved_database_url))
    try:
        rows = await owner.fetch(
            """SELECT table_name, column_name FROM information_schema.columns
               WHERE table_schema = 'public' AND column_name = ANY($1::text[])
               ORDER BY table_name, column_name""",
            list(OWNED_COLUMNS),
        )
    finally:
        await owner.close()
    columns: dict[str, list[str]] = {"users": ["id"], "workspaces": ["id"]}
    for row in rows:
        columns.setdefault(row["table_name"], []).append(row["column_name"])
    return dict(sorted(columns.items()))


async def _owned_tables(settings: Settings) -> list[str]:
    return list(await _owned_columns(settings))


def _rows_of(household: dict[str, Any], table: str, columns: list[str]) -> str:
    """A WHERE clause for the household's rows of the table, by whichever owning columns it
    has (the ids are the fixture's own UUIDs, not input)."""
    workspace, user = household["workspace"], household["user"]
    by_column = {
        "workspace_id": f"workspace_id = '{workspace}'",
        "user_id": f"user_id = '{user}'",
        "owner_id": f"owner_id IN ('{workspace}', '{user}')",
        "id": f"id = '{user if table == 'users' else workspace}'",
    }
    return " OR ".join(by_column[column] for column in columns)


async def _rows_present(
    settings: Settings, owned: dict[str, list[str]], households: list[dict[str, Any]]
) -> list[dict[str, int]]:
    """As the owner (past RLS): how many rows of each owned table each household has."""
    owner = await asyncpg.connect(_dsn(settings.resolved_database_url))
    try:
        return [
            {
                table: await owner.fetchval(
                    f"SELECT count(*) FROM {table} WHERE {_rows_of(household, table, columns)}"
                )
                for table, columns in owned.items()
            }
            for household in households
        ]
    finally:
        await owner.close()


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
        # Writing needs a scope too: an UPDATE of the victim's rows reaches none (or the
        # role may not update the table at all), and a copy of a victim's row is refused.
        victim = households["victim"]
        owned = await _owned_columns(settings)
        updates: dict[str, str] = {}
        for table, columns in owned.items():
            statement = (
                f"UPDATE {table} SET {columns[0]} = {columns[0]}"
                f" WHERE {_rows_of(victim, table, columns)}"
            )
            if await app.fetchval("SELECT has_table_privilege($1, 'UPDATE')", table):
                updates[table] = await app.execute(statement)
            else:
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                    await app.execute(statement)
                updates[table] = "refused"
        inserts = {
            table: await _insert_a_copy(settings, app, table, _rows_of(victim, table, columns))
            for table, columns in owned.items()
        }
    finally:
        await app.close()
    assert counts == {table: 0 for table in tables}
    assert set(updates) == set(tables)
    assert {t: u for t, u in updates.items() if u != "UPDATE 0"} == {
        "audit_checkpoints": "refused",  # append-only for the API's role
        "audit_events": "refused",
    }
    assert inserts == {table: "RLS" for table in tables}


async def _insert_a_copy(
    settings: Settings, app: asyncpg.Connection, table: str, where: str
) -> str:
    """Insert, over the API's role, a copy of one of the victim's rows (a fresh id where the
    table has one); "RLS" when the policy's WITH CHECK refuses it, else what happened."""
    owner = await asyncpg.connect(_dsn(settings.resolved_database_url))
    try:
        row = await owner.fetchval(
            f"SELECT row_to_json(t)::jsonb FROM {table} t WHERE {where} LIMIT 1"
        )
    finally:
        await owner.close()
    assert row is not None, table
    copy = json.loads(row)
    if "id" in copy and table not in ("users", "workspaces"):
        copy["id"] = str(uuid.uuid4())
    try:
        async with app.transaction():
            result = await app.execute(
                f"INSERT INTO {table} SELECT * FROM jsonb_populate_record(NULL::{table}, $1)",
                json.dumps(copy),
            )
    except asyncpg.InsufficientPrivilegeError as error:
        if f'new row violates row-level security policy for table "{table}"' in str(error):
            return "RLS"
        return f"{type(error).__name__}: {error}"
    except asyncpg.PostgresError as error:
        return f"{type(error).__name__}: {error}"
    return f"inserted: {result}"


async def test_scoped_to_one_workspace_the_api_role_reaches_nothing_of_another(
    households: dict[str, Any],
) -> None:
    settings: Settings = households["settings"]
    victim, attacker = households["victim"], households["attacker"]
    owned = await _owned_columns(settings)
    present = await _rows_present(settings, owned, [victim, attacker])
    # Every owned table holds some of the victim's rows, or its zero below would prove
    # nothing: a new table needs a row of the victim's in the fixture.
    assert [table for table in owned if not present[0][table]] == []
    app = await _app_connection(settings)
    attempts = 0
    seen: dict[str, int] = {}
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
            # ... the victim's are not, by id, by workspace, or in bulk: no row of any owned
            # table, while the attacker's own rows of the workspace's tables are all there.
            for table, columns in owned.items():
                attempts += 1
                victims = f"SELECT count(*) FROM {table} WHERE {_rows_of(victim, table, columns)}"
                assert await app.fetchval(victims) == 0, victims
                if columns == ["workspace_id"]:
                    own = _rows_of(attacker, table, columns)
                    seen[table] = await app.fetchval(f"SELECT count(*) FROM {table} WHERE {own}")
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
    assert attempts == len(owned) + 7
    # The attacker's scope does reach its own workspace's rows (so the zeros above are RLS).
    assert seen == {t: present[1][t] for t in seen}, seen
    assert all(seen.values()), seen


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


async def test_the_worker_connects_as_the_api_role_too(
    postgres_database: Settings, redis_url: str
) -> None:
    """`wealthwise worker` runs tasks and loops over the engine workers/runtime.py creates:
    that engine is the API's role (subject to RLS), not the tables' owner."""
    settings = stream_settings(postgres_database, redis_url)
    roles: list[str] = []
    stop = asyncio.Event()

    @dataclasses.dataclass
    class WhoAmI:
        services: JobServices
        name: str = "who-am-i"

        async def run(self, stop: asyncio.Event) -> None:
            async with self.services.engine.connect() as connection:
                roles.append((await connection.exec_driver_sql("SELECT current_user")).scalar_one())
            stop.set()

    def who_am_i(_settings: Settings, services: JobServices) -> WhoAmI:
        return WhoAmI(services)

    background_loop(who_am_i)
    try:
        await asyncio.wait_for(Worker(settings, scheduler=False).run(stop), 60)
    finally:
        LOOP_FACTORIES.remove(who_am_i)
        forget(settings)
    assert roles == [postgres_database.app_db_role]
    assert postgres_database.app_db_role != make_url(settings.resolved_database_url).username
