"""The Starlette app factory; shared objects live in the lifespan state."""

from __future__ import annotations

import gc
import hashlib
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import structlog
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from api.graphql import WealthWiseGraphQL
from api.logging import configure_logging
from api.middleware import RequestIdMiddleware
from api.oidc import OidcLogin
from domain.core.db import create_engine, unit_of_work
from domain.core.keys import Keyring
from domain.core.settings import Settings, get_settings
from domain.identity.tokens import TokenSigner
from schema import schema
from schema.context import AppServices

log = structlog.get_logger(__name__)
WEB_DIR = Path(__file__).resolve().parent.parent / "web"


def build_services(settings: Settings) -> AppServices:
    keyring = Keyring.from_settings(settings)
    return AppServices(
        settings=settings,
        engine=create_engine(settings),
        keyring=keyring,
        signer=TokenSigner.from_settings(settings),
        cursor_key=hmac.new(keyring.kek.secret, b"wealthwise-cursor", hashlib.sha256).digest(),
    )


def create_app(settings: Settings | None = None, services: AppServices | None = None) -> Starlette:
    settings = settings or get_settings()
    configure_logging(settings)
    services = services or build_services(settings)
    graphql = WealthWiseGraphQL(schema, services, graphiql=settings.graphiql)
    oidc_login = OidcLogin(services, settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, AppServices]]:
        async with unit_of_work(services.engine) as session:
            await services.keyring.ensure_system_keys(session)
        log.info("started", database=services.engine.url.render_as_string(hide_password=True))
        # Move start-up objects out of the collector's way: full collections over them
        # otherwise cost 150-200 ms pauses every few requests on a small machine.
        gc.collect()
        gc.freeze()
        yield {"services": services}
        await services.engine.dispose()

    async def live(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(_request: Request) -> Response:
        checks: dict[str, str] = {}
        try:
            async with services.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # report, don't raise: this is the health answer
            checks["database"] = f"error: {type(exc).__name__}"
        if settings.redis_url:
            checks["redis"] = await _redis_check(settings.redis_url)
        healthy = all(value == "ok" for value in checks.values())
        return JSONResponse(
            {"status": "ok" if healthy else "unavailable", "checks": checks},
            status_code=200 if healthy else 503,
        )

    routes = [
        Route("/graphql", graphql, methods=["GET", "POST"]),
        Route("/health/live", live),
        Route("/health/ready", ready),
        *oidc_login.routes(),
        Mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web"),
    ]
    return Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(RequestIdMiddleware)])


async def _redis_check(url: str) -> str:
    from redis.asyncio import Redis

    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await client.ping()
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    finally:
        await client.aclose()
