"""bench/realtime_ws.py in its quick form, so that the benchmark cannot rot: real API
process(es), real WebSocket subscribers, events committed through the outbox, numbers out."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from tests import services as test_services
from tests.server import ROOT

SUBSCRIBERS = 40
PER_WORKSPACE = 5
RATE = 100
SECONDS = 2


def _postgres_reachable() -> None:
    import asyncio

    async def probe() -> None:
        connection = await asyncpg.connect(test_services.POSTGRES_ADMIN, timeout=5)
        await connection.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError) as error:
        test_services.unavailable("PostgreSQL", error)


@pytest.mark.parametrize("processes", [1, 2])
def test_the_quick_benchmark_delivers_every_event_and_reports_sane_numbers(
    processes: int, tmp_path: Path
) -> None:
    _postgres_reachable()
    if processes == 2 and shutil.which("redis-server") is None:
        test_services.unavailable("redis-server", FileNotFoundError("redis-server"))
    result = tmp_path / "result.json"
    admin = test_services.POSTGRES_ADMIN.replace("postgresql://", "postgresql+asyncpg://", 1)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.realtime_ws",
            f"--subscribers={SUBSCRIBERS}",
            f"--per-workspace={PER_WORKSPACE}",
            f"--rate={RATE}",
            f"--seconds={SECONDS}",
            f"--processes={processes}",
            "--settle=1",
            "--drain=5",
            f"--pg-url={admin}",
            f"--json={result}",
        ],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(result.read_text())
    assert "commit-to-client ms: p50" in run.stdout

    assert report["connected"] == SUBSCRIBERS
    assert report["connect_failures"] == [] and report["client_errors"] == []
    assert report["events"] == RATE * SECONDS
    # Every event reached each of its workspace's subscribers, once.
    assert report["expected_deliveries"] == RATE * SECONDS * PER_WORKSPACE
    assert report["delivered"] == report["expected_deliveries"]
    assert report["duplicates"] == 0
    latency = report["latency_ms"]
    assert latency["n"] > 0
    assert 0 < latency["p50"] <= latency["p99"] <= latency["max"] < 30_000
    # Each subscriber's connection costs the server some memory: between 1 KB and 1 MB.
    assert 1_000 < report["bytes_per_idle_subscriber"] < 1_000_000
    cpu = report["cpu"]
    assert 0 < cpu["api"] <= 100 * processes + 5
    assert cpu["clients"] > 0 and cpu["producer"] > 0
    if processes == 2:
        assert cpu["worker"] > 0  # the relay runs there
