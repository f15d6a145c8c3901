"""Shared fixtures: every database test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis as sync_redis
from hypothesis import settings as hypothesis_settings

from api.app import build_services, create_app
from domain.core.settings import Settings
from schema.context import AppServices
from tests import services as test_services
from tests.graphql import Client

hypothesis_settings.register_profile("ci", deadline=None, print_blob=True)
hypothesis_settings.load_profile("ci")

BACKENDS = ["sqlite", "postgresql"]


def _migrated(backend: str, data_dir: Path) -> Iterator[Settings]:
    """A migrated database of one backend; a PostgreSQL one is dropped afterwards."""
    if backend == "sqlite":
        settings = test_services.settings_for(data_dir, None)
        test_services.migrate(settings)
        yield settings
        return
    try:
        url = test_services.create_postgres_database()
    except OSError as error:
        test_services.unavailable("PostgreSQL", error)
    settings = test_services.settings_for(data_dir, url)
    try:
        test_services.migrate(settings)
        yield settings
    finally:
        test_services.drop_postgres_database(url)


@pytest.fixture(scope="session", params=BACKENDS)
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """A migrated database per backend, shared by the session (tests use fresh workspaces)."""
    yield from _migrated(request.param, tmp_path_factory.mktemp(f"data-{request.param}"))


@pytest.fixture
def redis_url() -> str:
    """The shared test Redis (db 15), or a skip (a failure in CI) when it is not there."""
    client = sync_redis.Redis.from_url(test_services.REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except (sync_redis.ConnectionError, OSError) as error:
        test_services.unavailable("Redis", error)
    finally:
        client.close()
    return test_services.REDIS_URL


@pytest.fixture(scope="session")
def postgres_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A migrated PostgreSQL database, for tests of what only PostgreSQL has (roles, RLS)."""
    yield from _migrated("postgresql", tmp_path_factory.mktemp("data-postgresql-only"))


@pytest.fixture
async def services(database: Settings) -> AsyncIterator[AppServices]:
    built = build_services(database)
    yield built
    await built.engine.dispose()


@pytest.fixture
async def make_client(services: AppServices) -> AsyncIterator[object]:
    """A factory of API clients, each with its own cookie jar (one per person)."""
    app = create_app(services.settings, services)
    opened: list[httpx.AsyncClient] = []

    def make() -> Client:
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://wealthwise.test"
        )
        opened.append(http)
        return Client(http)

    yield make
    for http in opened:
        await http.aclose()


@pytest.fixture(params=BACKENDS)
def fresh_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """A database of the test's own (for tests that need fixed emails or raw inspection)."""
    yield from _migrated(request.param, tmp_path)
