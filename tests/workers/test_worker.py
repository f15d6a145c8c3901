"""`wealthwise worker` as a real subprocess over the real Redis stream broker."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis_asyncio
from sqlalchemy import func, select
from sqlmodel import col

from domain.audit.models import AuditCheckpoint
from domain.audit.repository import AuditRepository
from domain.core.db import bind_scope, unit_of_work
from domain.core.settings import Settings
from domain.realtime.envelope import Envelope, decode
from schema.context import AppServices
from tests import services as test_services
from tests.audit.helpers import workspace_of
from tests.graphql import create_account, register
from tests.ratelimit.test_fallback import PrivateRedis
from tests.server import ROOT
from tests.workers import jobs
from tests.workers.helpers import (
    forget,
    redis_client,
    running_worker,
    stream_settings,
    wait_for,
)
from workers.broker import build_broker
from workers.tasks import enqueue


@pytest.fixture
def plain(tmp_path: Path, redis_url: str) -> Iterator[Settings]:
    """Settings of a stream of this test's own; no database is touched."""
    settings = stream_settings(test_services.settings_for(tmp_path, None), redis_url)
    yield settings
    forget(settings)


async def send(settings: Settings, function: Any, *args: Any) -> str:
    broker = build_broker(settings)
    try:
        return await enqueue(broker, function, *args)
    finally:
        await broker.shutdown()


def log_events(output: str) -> list[dict[str, Any]]:
    events = []
    for line in output.splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


async def test_a_task_sent_to_the_stream_runs_in_a_worker_process(
    plain: Settings, tmp_path: Path
) -> None:
    redis = redis_client(plain)
    key = f"{plain.worker_queue}:probe"
    # Sent before any worker ever ran: the consumer group made later still delivers it.
    await send(plain, jobs.record, key, "before")
    with running_worker(plain, tmp_path) as worker:
        wait_for(lambda: redis.llen(key) >= 1, "the task sent before start", worker)
        await send(plain, jobs.record, key, "after")
        wait_for(lambda: redis.llen(key) >= 2, "the task sent while running", worker)
        wait_for(lambda: redis.llen(f"{plain.worker_queue}:beats"), "a loop's beat", worker)
        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(timeout=30) == 0, worker.output()
    ran = [value.decode() for value in redis.lrange(key, 0, -1)]
    pid = worker.process.pid
    assert ran == [f"before@{pid}", f"after@{pid}"]
    # Graceful shutdown: the background loop was told to stop and did.
    assert redis.lrange(f"{plain.worker_queue}:beats", -1, -1) == [b"stopped"]
    # Every delivered message was acknowledged.
    assert redis.xpending(plain.worker_queue, plain.worker_consumer_group)["pending"] == 0
    events = [event["event"] for event in log_events(worker.output())]
    assert "worker_started" in events and "worker_stopped" in events


async def test_a_failing_task_is_retried_with_backoff_then_dead_lettered(
    plain: Settings, tmp_path: Path
) -> None:
    settings = plain.model_copy(update={"worker_max_attempts": 3})
    redis = redis_client(settings)
    flaky, hopeless = f"{settings.worker_queue}:flaky", f"{settings.worker_queue}:hopeless"
    with running_worker(settings, tmp_path) as worker:
        await send(settings, jobs.flaky, flaky, 2)
        await send(settings, jobs.flaky, hopeless, 100)
        wait_for(lambda: redis.get(f"{flaky}:done"), "the third attempt", worker)
        wait_for(lambda: "task_dead_lettered" in worker.output(), "the dead-letter line", worker)
    assert int(redis.get(f"{flaky}:attempts") or 0) == 3
    times = [float(value) for value in redis.lrange(f"{flaky}:times", 0, -1)]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    # retry_delay 0.3 s doubling (plus up to 1 s of jitter): at least 0.3 s, then 0.6 s.
    assert gaps[0] >= 0.3 and gaps[1] >= 0.6, gaps
    # The hopeless task ran worker_max_attempts times, then was given up, once.
    assert int(redis.get(f"{hopeless}:attempts") or 0) == 3
    dead = [e for e in log_events(worker.output()) if e["event"] == "task_dead_lettered"]
    assert len(dead) == 1
    assert dead[0]["task"] == "tests.flaky" and dead[0]["attempts"] == 3
    assert dead[0]["args"] == [hopeless, 100]
    assert redis.xpending(settings.worker_queue, settings.worker_consumer_group)["pending"] == 0


async def test_the_scheduler_sends_labelled_periodic_tasks(plain: Settings, tmp_path: Path) -> None:
    redis = redis_client(plain)
    ticks = f"{plain.worker_queue}:ticks"
    with running_worker(plain, tmp_path) as worker:
        wait_for(lambda: redis.llen(ticks) >= 3, "three ticks (interval: 1 s)", worker)
    times = [float(value) for value in redis.lrange(ticks, 0, -1)]
    assert all(later - earlier > 0.5 for earlier, later in itertools.pairwise(times))


async def test_a_worker_without_the_scheduler_sends_no_periodic_task(
    plain: Settings, tmp_path: Path
) -> None:
    redis = redis_client(plain)
    key = f"{plain.worker_queue}:probe"
    with running_worker(plain, tmp_path, "--no-scheduler") as worker:
        await send(plain, jobs.record, key, "one")
        wait_for(lambda: redis.llen(key), "a task", worker)
        wait_for(lambda: redis.llen(f"{plain.worker_queue}:beats") > 15, "1.5 s of beats", worker)
    assert redis.llen(f"{plain.worker_queue}:ticks") == 0


async def test_the_workers_scheduler_seals_moved_audit_chains(
    make_client: Any, services: AppServices, redis_url: str, tmp_path: Path
) -> None:
    client = make_client()
    workspace = workspace_of(await register(client))
    await create_account(client)
    settings = stream_settings(services.settings, redis_url, audit_checkpoint_minutes=0.02)
    try:
        with running_worker(settings, tmp_path) as worker:

            async def sealed() -> Any:
                async with unit_of_work(services.engine, write=False) as session:
                    await bind_scope(session, workspace_id=workspace)
                    return await AuditRepository(session).checkpoint_at(workspace, 1)

            for _ in range(300):
                if await sealed() is not None:
                    break
                assert worker.process.poll() is None, worker.output()
                await asyncio.sleep(0.1)
            assert await sealed() is not None, worker.output()
    finally:
        forget(settings)


async def test_a_task_running_on_a_killed_worker_runs_again_on_another_exactly_once(
    make_client: Any, services: AppServices, redis_url: str, tmp_path: Path
) -> None:
    """SIGKILL after the task's effect committed, before its acknowledgement: the second
    worker claims the pending message once it has been idle for reclaim_idle_seconds and
    runs it again; the task is idempotent, so there is still one checkpoint."""
    client = make_client()
    workspace = workspace_of(await register(client))
    await create_account(client)
    settings = stream_settings(services.settings, redis_url, worker_reclaim_idle_seconds=1.0)
    redis = redis_client(settings)
    key = f"{settings.worker_queue}:crash"
    try:
        with running_worker(settings, tmp_path, "--no-scheduler") as first:
            wait_for(lambda: "worker_started" in first.output(), "the first worker", first)
            await send(settings, jobs.seal_then_wait, str(workspace), key)
            wait_for(lambda: redis.llen(f"{key}:runs") == 1, "the first run", first)
            first.process.send_signal(signal.SIGKILL)
            first.process.wait(timeout=10)
        assert redis.xpending(settings.worker_queue, settings.worker_consumer_group)["pending"] == 1
        redis.rpush(f"{key}:release", "go")
        with running_worker(settings, tmp_path, "--no-scheduler") as second:
            wait_for(lambda: redis.llen(f"{key}:finished"), "the second run", second)
            wait_for(
                lambda: (
                    redis.xpending(settings.worker_queue, settings.worker_consumer_group)["pending"]
                    == 0
                ),
                "the acknowledgement",
                second,
            )
        assert redis.llen(f"{key}:runs") == 2
        assert "task_reclaimed" in second.output()
        assert redis.lrange(f"{key}:finished", 0, -1) == [b"1"]
        async with unit_of_work(services.engine, write=False) as session:
            await bind_scope(session, workspace_id=workspace)
            repository = AuditRepository(session)
            assert await repository.checkpoint_at(workspace, 1) is not None
            assert await _checkpoint_count(session, workspace) == 1
    finally:
        forget(settings)


async def test_a_long_task_on_a_live_worker_is_not_taken_by_another(
    plain: Settings, tmp_path: Path
) -> None:
    """The running worker keeps its message claimed: a task may run far longer than
    reclaim_idle_seconds without a second worker starting it again."""
    settings = plain.model_copy(update={"worker_reclaim_idle_seconds": 1.5})
    redis = redis_client(settings)
    key = f"{settings.worker_queue}:long"
    with (
        running_worker(settings, tmp_path, "--no-scheduler") as first,
        running_worker(settings, tmp_path, "--no-scheduler") as second,
    ):
        await send(settings, jobs.hold, key)
        wait_for(lambda: redis.llen(f"{key}:runs"), "the run", first)
        # Over twice the reclaim idle time; the running worker re-claims every 0.2 s.
        await asyncio.sleep(4)
        assert redis.llen(f"{key}:runs") == 1, first.output() + second.output()
        redis.rpush(f"{key}:release", "go")
        wait_for(lambda: redis.llen(f"{key}:finished"), "the end of the run", first)
        wait_for(
            lambda: (
                redis.xpending(settings.worker_queue, settings.worker_consumer_group)["pending"]
                == 0
            ),
            "the acknowledgement",
            first,
        )
    assert redis.llen(f"{key}:runs") == 1


async def _checkpoint_count(session: Any, workspace: uuid.UUID) -> int:
    found = await session.execute(
        select(func.count()).where(col(AuditCheckpoint.workspace_id) == workspace)
    )
    return int(found.scalar_one())


def test_the_worker_refuses_to_start_without_redis(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "api", "worker"],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("WEALTHWISE_")},
            "PYTHONPATH": str(ROOT),
            "WEALTHWISE_DATA_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "WEALTHWISE_REDIS_URL" in result.stdout + result.stderr


async def test_the_worker_outlives_a_redis_restart(tmp_path: Path) -> None:
    server = PrivateRedis()
    server.start()
    try:
        settings = stream_settings(test_services.settings_for(tmp_path, None), server.url)
        key = f"{settings.worker_queue}:probe"
        with running_worker(settings, tmp_path, "--no-scheduler") as worker:
            await send(settings, jobs.record, key, "before")
            wait_for(lambda: redis_client(settings).llen(key), "the first task", worker)
            server.stop()
            await asyncio.sleep(1)
            server.start()  # empty: the stream and its group are gone
            await send(settings, jobs.record, key, "after")
            wait_for(lambda: redis_client(settings).llen(key), "a task after the restart", worker)
        assert redis_client(settings).lrange(key, 0, -1) == [f"after@{worker.process.pid}".encode()]
        assert worker.process.returncode == 0, worker.output()
    finally:
        server.stop()


async def test_the_workers_relay_publishes_committed_events_to_redis(
    make_client: Any, services: AppServices, redis_url: str, tmp_path: Path
) -> None:
    """External mode: the API only commits; the worker's relay publishes to Redis, where
    every API process's hub would pick the event up."""
    prefix = f"test-relay:{uuid.uuid4().hex}:"
    settings = stream_settings(services.settings, redis_url, realtime_channel_prefix=prefix)
    listener = redis_asyncio.Redis.from_url(redis_url)
    pubsub = listener.pubsub()
    await pubsub.psubscribe(f"{prefix}*")
    try:
        with running_worker(settings, tmp_path) as worker:
            client = make_client()
            workspace = workspace_of(await register(client))
            await create_account(client, opening="10")
            seen: list[Envelope] = []
            # Up to 30 s by the clock: get_message may return None at once rather than
            # after its timeout, so a count of calls is no time limit (this flaked).
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while loop.time() < deadline:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
                if message is not None:
                    envelope = decode(message["data"])
                    if envelope.workspace_id == workspace:
                        seen.append(envelope)
                        if envelope.type == "balance.changed":
                            break
                else:
                    await asyncio.sleep(0.02)
                assert worker.process.poll() is None, worker.output()
            assert [e.type for e in seen][-1:] == ["balance.changed"], worker.output()
            assert message is not None and message["channel"].decode() == f"{prefix}{workspace}"
    finally:
        await pubsub.aclose()
        await listener.aclose()
        forget(settings)
