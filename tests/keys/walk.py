"""Helpers of the key tests: open every sealed value the registry names, run the CLI."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from pydantic import SecretStr
from sqlalchemy import select

from api.app import build_services, create_app
from domain.core.crypto import ciphertext_key_id
from domain.core.db import bind_scope, create_engine, unit_of_work
from domain.core.keys import Keyring
from domain.core.settings import Settings
from domain.encryption.registry import ENCRYPTED
from schema.context import AppServices
from tests.graphql import Client
from tests.services import TEST_KEK

NEW_KEK = base64.b64encode(b"n" * 32).decode()
ROOT = Path(__file__).resolve().parents[2]


def with_new_kek(settings: Settings) -> Settings:
    """The operator's settings during a KEK rotation: the new KEK, the old one previous."""
    return settings.model_copy(
        update={"kek": SecretStr(NEW_KEK), "kek_previous": SecretStr(TEST_KEK)}
    )


def new_kek_only(settings: Settings) -> Settings:
    return settings.model_copy(update={"kek": SecretStr(NEW_KEK), "kek_previous": None})


async def open_every_value(settings: Settings) -> dict[uuid.UUID, Counter[int]]:
    """Decrypt every sealed value of every registered column with a fresh keyring of
    `settings`; returns, per owner, how many values name each key id."""
    found: dict[uuid.UUID, Counter[int]] = defaultdict(Counter)
    keyring = Keyring.from_settings(settings)
    engine = create_engine(settings, owner=True)
    try:
        async with unit_of_work(engine, write=False) as session:
            await bind_scope(session, maintenance=True)
            for table in ENCRYPTED:
                columns = [table.column(name) for name in table.fields]
                statement = select(table.table.c.id, table.owner_expression(), *columns)
                for row in (await session.execute(statement)).all():
                    row_id, owner = row[0], uuid.UUID(str(row[1]))
                    cipher = await keyring.cipher(session, owner)
                    for name, value in zip(table.fields, row[2:], strict=True):
                        if value is not None:
                            cipher.open(value, table.name, name, row_id)
                            found[owner][ciphertext_key_id(value)] += 1
    finally:
        await engine.dispose()
    return found


@asynccontextmanager
async def api_process(settings: Settings) -> AsyncIterator[tuple[Client, AppServices]]:
    """A client of another API process (its own keyring and engine) of `settings`."""
    services = build_services(settings)
    app = create_app(settings, services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://wealthwise.test") as http:
        yield Client(http), services
    await services.engine.dispose()


def cli_environment(settings: Settings) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("WEALTHWISE_")}
    env.update(
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        WEALTHWISE_ENVIRONMENT="test",
        WEALTHWISE_DATA_DIR=str(settings.data_dir),
        WEALTHWISE_KEY_REFRESH_SECONDS=str(settings.key_refresh_seconds),
        WEALTHWISE_LOG_LEVEL="WARNING",
    )
    if settings.database_url:
        env["WEALTHWISE_DATABASE_URL"] = settings.database_url
    if settings.kek is not None:
        env["WEALTHWISE_KEK"] = settings.kek.get_secret_value()
    if settings.kek_file is not None:
        env["WEALTHWISE_KEK_FILE"] = str(settings.kek_file)
    if settings.kek_previous is not None:
        env["WEALTHWISE_KEK_PREVIOUS"] = settings.kek_previous.get_secret_value()
    return env


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "api", "keys", *args]


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_command(*args),
        cwd=ROOT,
        env=cli_environment(settings),
        capture_output=True,
        text=True,
        timeout=300,
    )
