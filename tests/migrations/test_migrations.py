"""The Alembic migrations build exactly the tables the models describe, on both databases."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import domain.advisor.models
import domain.audit.models
import domain.core.models
import domain.identity.models
import domain.ledger.models
import domain.realtime.models  # noqa: F401
from domain.core.db import create_engine
from domain.core.settings import Settings


def _diff(connection: Any) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, SQLModel.metadata))


async def test_migrated_database_matches_the_models(database: Settings) -> None:
    engine = create_engine(database)
    async with engine.connect() as connection:
        differences = await connection.run_sync(_diff)
    await engine.dispose()
    assert differences == []
