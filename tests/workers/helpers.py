"""A real `wealthwise worker` subprocess, and the settings that point it (and the test) at
one Redis stream of the test's own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis

from domain.core.settings import Settings
from tests.server import ROOT


def stream_settings(base: Settings, redis_url: str, **overrides: Any) -> Settings:
    """`base` with a stream, consumer group and short timings of this test's own."""
    queue = f"wealthwise-test:{uuid.uuid4().hex[:12]}"
    return base.model_copy(
        update={
            "redis_url": redis_url,
            "worker_mode": "external",
            "worker_queue": queue,
            "worker_consumer_group": f"{queue}:group",
            "worker_poll_seconds": 0.2,
            "worker_retry_delay_seconds": 0.3,
            "worker_retry_max_delay_seconds": 5,
            "audit_checkpoint_minutes": 0,
            **overrides,
        }
    )


def environment(settings: Settings) -> dict[str, str]:
    """The WEALTHWISE_* variables that give a subprocess these settings."""
    names = [
        "environment",
        "data_dir",
        "database_url",
        "redis_url",
        "worker_mode",
        "worker_queue",
        "worker_consumer_group",
        "worker_poll_seconds",
        "worker_reclaim_idle_seconds",
        "worker_max_attempts",
        "worker_retry_delay_seconds",
        "worker_retry_max_delay_seconds",
        "worker_shutdown_seconds",
        "audit_checkpoint_minutes",
        "realtime_channel_prefix",
        "outbox_poll_seconds",
    ]
    env = {f"WEALTHWISE_{name.upper()}": str(getattr(settings, name)) for name in names}
    if settings.database_url is None:
        del env["WEALTHWISE_DATABASE_URL"]
    assert settings.kek is not None and settings.jwt_secret is not None
    env["WEALTHWISE_KEK"] = settings.kek.get_secret_value()
    env["WEALTHWISE_JWT_SECRET"] = settings.jwt_secret.get_secret_value()
    env["WEALTHWISE_LOG_LEVEL"] = "INFO"
    env["WEALTHWISE_LOG_FORMAT"] = "json"
    return env


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def running_worker(settings: Settings, log_dir: Path, *args: str) -> Iterator[WorkerProcess]:
    """`python -m api worker --import tests.workers.jobs ARGS` until the block ends (then
    SIGTERM, unless the test killed it). Output goes to a file: a pipe nobody reads would
    block a chatty worker."""
    log = log_dir / f"worker-{uuid.uuid4().hex[:8]}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "api", "worker", "--import", "tests.workers.jobs", *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **environment(settings)},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    worker = WorkerProcess(process, log)
    try:
        yield worker
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for(
    condition: Callable[[], Any],
    what: str,
    worker: WorkerProcess | None = None,
    timeout: float = 30,
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if worker is not None and worker.process.poll() is not None:
            pytest.fail(f"the worker exited while waiting for {what}:\n{worker.output()}")
        time.sleep(0.05)
    output = worker.output() if worker is not None else ""
    pytest.fail(f"timed out waiting for {what}\n{output}")


def redis_client(settings: Settings) -> sync_redis.Redis:
    assert settings.redis_url
    return sync_redis.Redis.from_url(settings.redis_url)


def forget(settings: Settings) -> None:
    """Delete the test's stream and every key under its name."""
    client = redis_client(settings)
    try:
        keys = list(client.scan_iter(match=f"{settings.worker_queue}*", count=500))
        keys += list(client.scan_iter(match=f"autoclaim:{settings.worker_consumer_group}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
