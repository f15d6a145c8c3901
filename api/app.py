"""The Starlette app factory; shared objects live in the lifespan state."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import strawberry
import structlog
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from api.gcwatch import freeze_gc, tune_gc, watch_gc
from api.graphql import WealthWiseGraphQL
from api.logging import configure_logging
from api.middleware import RequestIdMiddleware, UnexpectedErrors
from api.oidc import OidcLogin
from api.ratelimit import RateLimiter, RateLimitMiddleware
from api.realtime.fanout import Fanout
from api.realtime.hub import Hub
from api.realtime.registry import ConnectionRegistry
from api.security import OriginAllowlist, RequestBodyLimit, SecurityHeaders
from domain.advisor.retrieval.holder import preload as preload_search
from domain.audit.service import seal_all
from domain.core.db import create_engine, unit_of_work
from domain.core.keys import Keyring
from domain.core.settings import Settings, get_settings
from domain.identity.service import configure_password_hashing
from domain.identity.tokens import TokenSigner
from domain.realtime.relay import Relay
from schema import schema as wealthwise_schema
from schema.context import ACCESS_COOKIE, REFRESH_COOKIE, AppServices
from workers.indexing import IndexFeed
from workers.runtime import start_jobs
from workers.tasks import JobServices

log = structlog.get_logger(__name__)
WEB_DIR = Path(__file__).resolve().parent.parent / "web"


def build_services(settings: Settings) -> AppServices:
    configure_password_hashing(settings)
    keyring = Keyring.from_settings(settings)
    signer = TokenSigner.from_settings(settings)
    return AppServices(
        settings=settings,
        engine=create_engine(settings, statement_timeout=settings.query_timeout_seconds),
        keyring=keyring,
        signer=signer,
        limiter=RateLimiter(
            settings,
            signer,
            hmac.new(keyring.kek.secret, b"wealthwise-ratelimit", hashlib.sha256).digest(),
        ),
    )


def create_app(
    settings: Settings | None = None,
    services: AppServices | None = None,
    schema: strawberry.Schema = wealthwise_schema,
) -> Starlette:
    settings = settings or get_settings()
    configure_logging(settings)
    services = services or build_services(settings)
    graphql = WealthWiseGraphQL(schema, services, graphiql=settings.graphiql_enabled)
    oidc_login = OidcLogin(services, settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, object]]:
        async with unit_of_work(services.engine) as session:
            await services.keyring.ensure_system_keys(session)
        log.info("started", database=services.engine.url.render_as_string(hide_password=True))
        preload_search()  # not later, on the event loop
        # Move start-up objects out of the collector's way: full collections over them
        # otherwise cost 150-200 ms pauses every few requests on a small machine.
        gc.collect()
        gc.freeze()
        untune_gc = tune_gc(settings.gc_young_threshold)
        stop_watching_gc = watch_gc(settings.gc_pause_warn_ms)
        stop_freezing_gc = freeze_gc(settings.gc_freeze_seconds, settings.gc_full_collect_seconds)
        job_services = JobServices(services.settings, services.engine, services.keyring)
        jobs = await start_jobs(job_services)
        # Embedded, the API seals audit chains itself; a worker's scheduler does it otherwise.
        sealing = _start_audit_sealing(services) if jobs.embedded else None
        # One hub per process fans events out to its subscribers. Embedded, this process
        # also relays the outbox into it; otherwise the worker's relay publishes to Redis.
        hub = Hub(settings)
        await hub.start()
        # Embedded, the advisor's search index follows what the relay publishes.
        feed = IndexFeed(job_services)
        relay = Relay.from_settings(services.engine, feed.wrap(hub.publish), settings)
        feeding = asyncio.Event()
        indexing = asyncio.create_task(feed.run(feeding)) if jobs.embedded else None
        if jobs.embedded:
            relay.start()
        # One batched session recheck per interval for all of this process's WebSockets.
        connections = ConnectionRegistry(services.engine, settings.ws_recheck_seconds)
        connections.start()
        # Subscribers asking the same thing share one execution per event.
        fanout = Fanout(settings) if settings.realtime_shared_feeds else None
        yield {
            "services": services,
            "jobs": jobs.broker,
            "hub": hub,
            "connections": connections,
            "fanout": fanout,
        }
        await connections.stop()
        await relay.stop()
        feeding.set()
        if indexing is not None:
            await indexing
        await hub.stop()  # ends every feed's stream: members close with 1012
        if fanout is not None:
            await fanout.stop()
        stop_freezing_gc()
        stop_watching_gc()
        untune_gc()
        if sealing is not None:
            sealing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sealing
        await jobs.stop()
        await job_services.retrieval.close()
        await services.engine.dispose()
        if isinstance(services.limiter, RateLimiter):
            await services.limiter.aclose()

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
        # graphql-transport-ws and graphql-ws (a Route matches HTTP requests only).
        WebSocketRoute("/graphql", graphql),
        Route("/health/live", live),
        Route("/health/ready", ready),
        *oidc_login.routes(),
        Mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web"),
    ]
    session_cookies = [
        f"{prefix}{name}" for name in (ACCESS_COOKIE, REFRESH_COOKIE) for prefix in ("", "__Host-")
    ]
    middleware = [
        Middleware(RequestIdMiddleware),
        Middleware(SecurityHeaders),
        Middleware(UnexpectedErrors),
        Middleware(
            OriginAllowlist,
            allowed_origins=settings.resolved_allowed_origins,
            session_cookies=session_cookies,
        ),
        Middleware(RequestBodyLimit, max_bytes=settings.max_request_bytes),
    ]
    if isinstance(services.limiter, RateLimiter):
        middleware.append(Middleware(RateLimitMiddleware, limiter=services.limiter))
    return Starlette(routes=routes, lifespan=lifespan, middleware=middleware)


def _start_audit_sealing(services: AppServices) -> asyncio.Task[None] | None:
    minutes = services.settings.audit_checkpoint_minutes
    if minutes <= 0:
        return None
    return asyncio.create_task(_seal_audit_chains(services, minutes * 60))


async def _seal_audit_chains(services: AppServices, every_seconds: float) -> None:
    """Sign every moved audit chain head now and then: the embedded default's stand-in for
    the worker's scheduled `audit.seal_chains` (workers/tasks.py)."""
    while True:
        await asyncio.sleep(every_seconds)
        try:
            sealed = await seal_all(services.engine, services.keyring)
            if sealed:
                log.info("audit_sealed", chains=len(sealed))
        except Exception:  # log and retry next round: sealing must not stop the API
            log.exception("audit_seal_failed")


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
