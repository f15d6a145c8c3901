"""Tasks and a background loop for the worker tests; a worker subprocess imports this
module with `--import tests.workers.jobs`. Each test names its own Redis keys through the
task's arguments or its unique `worker_queue`, so parallel runs never share a key."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from typing import Annotated, Any

from redis.asyncio import Redis
from taskiq import TaskiqDepends

from domain.audit.service import seal
from domain.core.db import bind_scope, unit_of_work
from domain.core.settings import Settings
from workers.runtime import background_loop
from workers.tasks import JobServices, job, job_services

Services = Annotated[JobServices, TaskiqDepends(job_services)]


def redis_of(services: JobServices) -> Redis:
    assert services.settings.redis_url, "these tasks report through Redis"
    return Redis.from_url(services.settings.redis_url)


@job("tests.record")
async def record(key: str, value: str, services: Services) -> None:
    """Append `value` and the id of the process that ran it to a Redis list."""
    async with redis_of(services) as redis:
        await redis.rpush(key, f"{value}@{os.getpid()}")


@job("tests.flaky")
async def flaky(key: str, failures: int, services: Services) -> str:
    """Fail the first `failures` runs, then succeed; every run's time is kept."""
    async with redis_of(services) as redis:
        attempt = await redis.incr(f"{key}:attempts")
        await redis.rpush(f"{key}:times", repr(time.time()))
        if attempt <= failures:
            raise RuntimeError(f"flaky failure {attempt}")
        await redis.set(f"{key}:done", "1")
    return "ok"


@job("tests.seal_then_wait")
async def seal_then_wait(workspace_id: uuid.UUID, key: str, services: Services) -> int:
    """The crash test's task: the task pattern's effect (seal the workspace's audit chain,
    committed) and then a wait for a Redis key, so the test can kill the worker between
    the effect and the acknowledgement."""
    async with unit_of_work(services.engine) as session:
        await bind_scope(session, workspace_id=workspace_id)
        checkpoint = await seal(session, services.keyring, workspace_id)
    async with redis_of(services) as redis:
        await redis.rpush(f"{key}:runs", services.settings.worker_queue)
        # Blocks until the test pushes to the list; the element stays for the next run.
        await redis.blmove(f"{key}:release", f"{key}:release", 0)
        await redis.rpush(f"{key}:finished", str(checkpoint.seq))
    return checkpoint.seq


@job("tests.hold")
async def hold(key: str, services: Services) -> None:
    """Note the run, then wait for the test's go."""
    async with redis_of(services) as redis:
        await redis.rpush(f"{key}:runs", str(os.getpid()))
        await redis.blmove(f"{key}:release", f"{key}:release", 0)
        await redis.rpush(f"{key}:finished", str(os.getpid()))


def _tick_schedule(settings: Settings) -> list[dict[str, Any]]:
    return [{"interval": 1, "kwargs": {"key": f"{settings.worker_queue}:ticks"}}]


@job("tests.tick", schedule=_tick_schedule)
async def tick(key: str, services: Services) -> None:
    async with redis_of(services) as redis:
        await redis.rpush(key, repr(time.time()))


class Heartbeat:
    """A background loop: a beat every 0.1 s in `<queue>:beats`, "stopped" when told to."""

    name = "heartbeat"

    def __init__(self, settings: Settings, services: JobServices) -> None:
        self.key = f"{settings.worker_queue}:beats"
        self.services = services

    async def run(self, stop: asyncio.Event) -> None:
        async with redis_of(self.services) as redis:
            while not stop.is_set():
                await redis.rpush(self.key, "beat")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.1)
            await redis.rpush(self.key, "stopped")


@background_loop
def heartbeat(settings: Settings, services: JobServices) -> Heartbeat | None:
    return Heartbeat(settings, services) if settings.redis_url else None
