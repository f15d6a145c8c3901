"""Alembic environment: async engines, SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

import domain.advisor.models
import domain.audit.models
import domain.core.models
import domain.identity.models
import domain.ledger.models
import domain.realtime.models  # noqa: F401  (register the tables)
from domain.core.db import create_engine
from domain.core.settings import Settings

target_metadata = SQLModel.metadata


def _render_item(kind: str, item: Any, _autogen_context: Any) -> str | Literal[False]:
    """Render SQLModel's AutoString as plain sa.String, so migrations need no sqlmodel."""
    if kind == "type" and isinstance(item, AutoString):
        return f"sa.String(length={item.length})" if item.length else "sa.String()"
    return False


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    settings = Settings(database_url=url) if url else Settings()
    engine = create_engine(settings, owner=True)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        asyncio.run(_run_async())


if context.is_offline_mode():
    raise SystemExit("Offline (SQL script) migrations are not supported")
run_migrations_online()
