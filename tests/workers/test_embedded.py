"""Jobs inside the API process: the embedded default (in-memory broker, loops in the
lifespan), and what the API leaves to `wealthwise worker` when one is configured."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from taskiq import AsyncBroker, InMemoryBroker

from api.app import create_app
from domain.audit.repository import AuditRepository
from domain.core.db import bind_scope, unit_of_work
from domain.core.settings import Settings
from schema.context import AppServices
from tests.audit.helpers import workspace_of
from tests.graphql import create_account, register
from tests.workers import jobs
from tests.workers.helpers import forget, redis_client, stream_settings
from workers.broker import ReclaimingStreamBroker, build_broker
from workers.tasks import enqueue, seal_audit_chain


@asynccontextmanager
async def api_jobs(services: AppServices, settings: Settings) -> AsyncIterator[AsyncBroker]:
    """The API's lifespan under `settings`; yields the broker it keeps in its state."""
    app = create_app(settings, dataclasses.replace(services, settings=settings))
    async with app.router.lifespan_context(app) as state:
        broker = state["jobs"]
        assert isinstance(broker, AsyncBroker)
        yield broker


@pytest.fixture
def streams(redis_url: str) -> Iterator[Callable[..., Settings]]:
    """Settings with a stream of the test's own (forgotten afterwards)."""
    made: list[Settings] = []

    def make(base: Settings, **overrides: Any) -> Settings:
        made.append(stream_settings(base, redis_url, **overrides))
        return made[-1]

    yield make
    for settings in made:
        forget(settings)


async def eventually(condition: Callable[[], Any]) -> Any:
    for _ in range(200):
        value = condition()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_jobs_are_embedded_unless_redis_is_configured() -> None:
    assert Settings(redis_url=None).resolved_worker_mode == "embedded"
    assert Settings(redis_url="redis://r:6379/0").resolved_worker_mode == "external"
    embedded = Settings(redis_url="redis://r:6379/0", worker_mode="embedded")
    assert isinstance(build_broker(embedded), InMemoryBroker)
    assert isinstance(build_broker(Settings(redis_url="redis://r:6379/0")), ReclaimingStreamBroker)


async def test_embedded_tasks_and_loops_run_in_the_api_process(
    make_client: Any, services: AppServices, streams: Any
) -> None:
    client = make_client()
    workspace = workspace_of(await register(client))
    await create_account(client)
    # Redis here only lets the test tasks report; the jobs themselves stay in process.
    settings = streams(services.settings, worker_mode="embedded")
    redis = redis_client(settings)
    key, beats = f"{settings.worker_queue}:probe", f"{settings.worker_queue}:beats"
    async with api_jobs(services, settings) as broker:
        assert isinstance(broker, InMemoryBroker)
        await enqueue(broker, jobs.record, key, "hello")
        await eventually(lambda: redis.llen(key))
        assert redis.lrange(key, 0, -1) == [f"hello@{os.getpid()}".encode()]
        await enqueue(broker, seal_audit_chain, workspace)
        await broker.wait_all()
        await eventually(lambda: redis.llen(beats))
    assert redis.lrange(beats, -1, -1) == [b"stopped"]
    async with unit_of_work(services.engine, write=False) as session:
        await bind_scope(session, workspace_id=workspace)
        assert await AuditRepository(session).checkpoint_at(workspace, 1) is not None


async def test_embedded_tasks_are_retried_with_backoff(services: AppServices, streams: Any) -> None:
    settings = streams(services.settings, worker_mode="embedded", worker_retry_delay_seconds=0.05)
    redis = redis_client(settings)
    key = f"{settings.worker_queue}:flaky"
    async with api_jobs(services, settings) as broker:
        await enqueue(broker, jobs.flaky, key, 2)
        await eventually(lambda: redis.get(f"{key}:done"))
    assert int(redis.get(f"{key}:attempts") or 0) == 3


async def test_with_a_worker_the_api_only_sends_tasks(services: AppServices, streams: Any) -> None:
    settings = streams(services.settings, audit_checkpoint_minutes=0.001)
    redis = redis_client(settings)
    key = f"{settings.worker_queue}:probe"
    async with api_jobs(services, settings) as broker:
        assert isinstance(broker, ReclaimingStreamBroker)
        await enqueue(broker, jobs.record, key, "for the worker")
        await asyncio.sleep(0.5)
        assert redis.xlen(settings.worker_queue) == 1  # waiting in the stream
        assert redis.llen(key) == 0  # not run here
        assert redis.llen(f"{settings.worker_queue}:beats") == 0  # loops run in the worker
