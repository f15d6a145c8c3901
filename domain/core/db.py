"""The database engine and sessions: aiosqlite embedded, asyncpg in production.

SQLite allows one writer: we use WAL, a busy timeout, and `BEGIN IMMEDIATE` for
sessions that write, so two writers queue on the lock instead of failing on commit.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.pool import NullPool

from domain.core.settings import Settings

WRITE_OPTION = "wealthwise_write"
SQLITE_BUSY_TIMEOUT_MS = 30_000
STATEMENT_STARTED = "wealthwise_statement_started"


def create_engine(
    settings: Settings, *, owner: bool = False, statement_timeout: float | None = None
) -> AsyncEngine:
    """The API's engine; `owner=True` connects as the tables' owner (migrations, admin CLI).

    On PostgreSQL the API's role is subject to row-level security: see `bind_scope`.
    `statement_timeout` (seconds) bounds each statement.
    """
    url = settings.resolved_database_url if owner else settings.resolved_app_database_url
    if url.startswith("sqlite"):
        settings.ensure_data_dir()
        return _create_sqlite_engine(
            url, echo=settings.sql_echo, statement_timeout=statement_timeout
        )
    connect_args: dict[str, Any] = {}
    if statement_timeout is not None:
        milliseconds = str(max(1, round(statement_timeout * 1000)))
        connect_args["server_settings"] = {"statement_timeout": milliseconds}
    return create_async_engine(
        url, echo=settings.sql_echo, pool_size=10, max_overflow=10, connect_args=connect_args
    )


def _create_sqlite_engine(
    url: str, *, echo: bool, statement_timeout: float | None = None
) -> AsyncEngine:
    engine = create_async_engine(
        url,
        echo=echo,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        poolclass=NullPool if ":memory:" in url else None,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so that we emit BEGIN ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()
        if statement_timeout is not None:
            _interrupt_slow_statements(dbapi_connection, _record.info, statement_timeout)

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _on_statement(connection: Any, *_args: Any) -> None:
        connection.info[STATEMENT_STARTED] = time.monotonic()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _interrupt_slow_statements(
    dbapi_connection: Any, info: dict[str, Any], statement_timeout: float
) -> None:
    """SQLite has no statement_timeout: a progress handler, called by SQLite's worker thread
    every few thousand steps of a statement, interrupts one that has run for too long."""

    def progress() -> int:
        started = info.get(STATEMENT_STARTED)
        return int(started is not None and time.monotonic() - started > statement_timeout)

    dbapi_connection.run_async(lambda driver: driver.set_progress_handler(progress, 10_000))


def session_for(engine: AsyncEngine, *, write: bool) -> AsyncSession:
    """A session; `write=True` takes SQLite's write lock at BEGIN (no effect on PostgreSQL)."""
    bind = engine.execution_options(**{WRITE_OPTION: True}) if write else engine
    return AsyncSession(bind=bind, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def unit_of_work(engine: AsyncEngine, *, write: bool = True) -> AsyncIterator[AsyncSession]:
    """One database transaction for a job or a CLI command: commit on success, else roll back."""
    session = session_for(engine, write=write)
    try:
        yield session
        await session.commit()
    except BaseException:
        await session.rollback()
        raise
    finally:
        await session.close()


SCOPE_INFO = "wealthwise_scope"


async def bind_scope(
    session: AsyncSession,
    *,
    workspace_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    lookup: str | None = None,
    maintenance: bool = False,
) -> None:
    """Tell PostgreSQL's row-level security whom this session acts for.

    Sets `app.workspace_id`, `app.user_id`, `app.lookup` (a token hash or blind index the
    caller may look a row up by before it knows the owner) and `app.maintenance` (honoured
    only for the owner role, by the admin CLI) with `set_config(..., true)`: local to the
    current transaction, and set again at the start of every later transaction of the same
    session. A no-op on SQLite, where the repository layer's scoping is the only wall.
    """
    scope: dict[str, str] = session.info.setdefault(SCOPE_INFO, {})
    updates: dict[str, str] = {}
    if workspace_id is not None:
        updates["app.workspace_id"] = str(workspace_id)
    if user_id is not None:
        updates["app.user_id"] = str(user_id)
    if lookup is not None:
        updates["app.lookup"] = lookup
    if maintenance:
        updates["app.maintenance"] = "on"
    scope.update(updates)
    if updates and session.get_bind().dialect.name == "postgresql":
        await session.execute(*_set_config(updates))


@asynccontextmanager
async def restoring_scope(session: AsyncSession) -> AsyncIterator[None]:
    """Bind another scope for a block, then put the previous one back (unset stays unset)."""
    before = dict(session.info.get(SCOPE_INFO, {}))
    try:
        yield
    finally:
        after = session.info.get(SCOPE_INFO, {})
        restore = {key: before.get(key, "") for key in after if after[key] != before.get(key)}
        session.info[SCOPE_INFO] = before
        if restore and session.get_bind().dialect.name == "postgresql":
            await session.execute(*_set_config(restore))


def _set_config(settings: dict[str, str]) -> tuple[Any, dict[str, str]]:
    # asyncpg rejects bound parameters in SET; set_config() takes them.
    calls = ", ".join(f"set_config(:k{i}, :v{i}, true)" for i in range(len(settings)))
    params: dict[str, str] = {}
    for i, (key, value) in enumerate(settings.items()):
        params[f"k{i}"], params[f"v{i}"] = key, value
    return text(f"SELECT {calls}"), params


@event.listens_for(Session, "after_begin")
def _restore_scope(session: Session, _transaction: SessionTransaction, connection: Any) -> None:
    scope = session.info.get(SCOPE_INFO)
    if scope and connection.dialect.name == "postgresql":
        statement, params = _set_config(scope)
        connection.execute(statement, params)


def dialect_insert(session: AsyncSession) -> Any:
    """The dialect's INSERT (both have `on_conflict_do_nothing`)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert
