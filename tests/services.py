"""Test databases: a migrated SQLite file and a migrated scratch PostgreSQL database.

With WEALTHWISE_REQUIRE_SERVICES=1 (CI), a missing PostgreSQL or Redis fails the run
instead of skipping the tests that need it.
"""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from pathlib import Path

import asyncpg
import pytest

from domain.core.db import create_engine, unit_of_work
from domain.core.keys import Keyring
from domain.core.migrate import upgrade
from domain.core.settings import Settings

POSTGRES_ADMIN = os.environ.get(
    "WEALTHWISE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("WEALTHWISE_TEST_REDIS", "redis://127.0.0.1:6379/15")
TEST_KEK = base64.b64encode(b"k" * 32).decode()
TEST_JWT_SECRET = "test-jwt-secret-0123456789abcdef"


def services_required() -> bool:
    return os.environ.get("WEALTHWISE_REQUIRE_SERVICES", "") not in ("", "0", "false")


def unavailable(what: str, error: BaseException) -> None:
    message = f"{what} is not reachable: {type(error).__name__}: {error}"
    if services_required():
        pytest.fail(f"{message} (WEALTHWISE_REQUIRE_SERVICES is set)", pytrace=False)
    pytest.skip(message)


# The suite signs up hundreds of people from 127.0.0.1: budgets no test reaches by accident
# (the limiter still runs on every request). Tests of the limits set their own.
ROOMY_RATE_LIMITS = {
    f"rate_limit_{name}": 1_000_000
    for name in (
        "cost_per_minute",
        "cost_burst",
        "ip_cost_per_minute",
        "ip_cost_burst",
        "auth_per_minute",
        "auth_burst",
        "ip_auth_per_minute",
        "ip_auth_burst",
        "websocket_per_minute",
        "websocket_burst",
        "subscription_per_minute",
        "subscription_burst",
    )
}


def settings_for(data_dir: Path, database_url: str | None) -> Settings:
    return Settings(
        environment="test",
        data_dir=data_dir,
        database_url=database_url,
        kek=TEST_KEK,  # type: ignore[arg-type]
        jwt_secret=TEST_JWT_SECRET,  # type: ignore[arg-type]
        log_level="WARNING",
        # Real argon2id, cheaper: ~2 ms a run instead of ~0.2 s (a sign-up and a sign-in
        # in most tests; the suite took 20 minutes with the production parameters).
        password_hash_memory_kib=1024,
        password_hash_time_cost=1,
        password_hash_parallelism=1,
    ).model_copy(update=ROOMY_RATE_LIMITS)


async def _ensure_keys(settings: Settings) -> None:
    engine = create_engine(settings)
    async with unit_of_work(engine) as session:
        await Keyring.from_settings(settings).ensure_system_keys(session)
    await engine.dispose()


def migrate(settings: Settings) -> None:
    upgrade(settings)
    asyncio.run(_ensure_keys(settings))


def _admin(statement: str) -> None:
    """One statement on the server's admin database (CREATE/DROP DATABASE)."""

    async def run() -> None:
        connection = await asyncpg.connect(POSTGRES_ADMIN, timeout=5)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run())


def create_postgres_database() -> str:
    """A scratch database; returns its SQLAlchemy URL."""
    name = f"wealthwise_test_{uuid.uuid4().hex[:12]}"
    _admin(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}"


def drop_postgres_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
