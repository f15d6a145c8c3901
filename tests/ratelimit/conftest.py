"""Rate-limit fixtures: the real Redis (db 15, a key prefix per test) and apps with tight limits."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as redis

from api.app import create_app
from api.ratelimit import RateLimiter
from domain.core.settings import Settings
from domain.identity.tokens import TokenSigner
from schema.context import AppServices
from tests import services as test_services
from tests.graphql import Client


@pytest.fixture
async def key_prefix() -> AsyncIterator[str]:
    """A Redis key prefix of the test's own; its keys are deleted afterwards."""
    prefix = f"test-ratelimit:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(test_services.REDIS_URL, socket_connect_timeout=2)
    try:
        async for key in client.scan_iter(match=f"{prefix}*"):
            await client.delete(key)
    except (redis.ConnectionError, OSError):
        pass
    finally:
        await client.aclose()


def build_limiter(settings: Settings, signer: TokenSigner, **changes: Any) -> RateLimiter:
    """A limiter like the app's, with these settings changed (e.g. tight budgets)."""
    return RateLimiter(
        settings.model_copy(update=changes), signer, hashlib.sha256(b"test-ratelimit").digest()
    )


@pytest.fixture
def plain_settings(tmp_path: Path) -> Settings:
    """Settings for tests of the limiter alone (no database)."""
    return test_services.settings_for(tmp_path, None)


LimitedClients = Callable[..., Client]


@pytest.fixture
async def limited_app(services: AppServices) -> AsyncIterator[Callable[..., LimitedClients]]:
    """`limited_app(**settings)` serves the app with these rate-limit settings and returns a
    factory of clients, `make(ip="10.0.0.1")`, each with its own cookie jar and client IP."""
    opened: list[httpx.AsyncClient] = []
    limiters: list[RateLimiter] = []

    def serve(**settings: Any) -> LimitedClients:
        limiter = build_limiter(services.settings, services.signer, **settings)
        limiters.append(limiter)
        limited = dataclasses.replace(
            services, settings=services.settings.model_copy(update=settings), limiter=limiter
        )
        app = create_app(limited.settings, limited)

        def make(ip: str = "127.0.0.1") -> Client:
            http = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, client=(ip, 40000)),
                base_url="https://wealthwise.test",
            )
            opened.append(http)
            return Client(http)

        return make

    yield serve
    for http in opened:
        await http.aclose()
    for limiter in limiters:
        await limiter.aclose()
