"""compose.yaml and the Dockerfile, run here without Docker: the API service's settings
and start command, pointed at this machine's PostgreSQL and Redis, serve a ready API."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml

from domain.core.settings import Settings
from tests import services as test_services

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {
    "POSTGRES_PASSWORD": "unused-here",
    "WEALTHWISE_APP_DB_PASSWORD": "app-password-unused-here",
    "WEALTHWISE_KEK": test_services.TEST_KEK,
    "WEALTHWISE_JWT_SECRET": test_services.TEST_JWT_SECRET,
}


def _interpolate(value: str) -> str:
    return re.sub(r"\$\{(\w+)(?::\?[^}]*)?\}", lambda m: SECRETS[m.group(1)], value)


def api_environment() -> dict[str, str]:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    environment = compose["services"]["api"]["environment"]
    return {key: _interpolate(str(value)) for key, value in environment.items()}


def dockerfile_command() -> list[str]:
    text = (ROOT / "Dockerfile").read_text()
    match = re.search(r"^CMD (\[.*\])$", text, re.MULTILINE)
    assert match, "the Dockerfile has a JSON-form CMD"
    command: list[str] = json.loads(match.group(1))
    return command


def test_every_api_setting_in_compose_is_a_known_setting() -> None:
    environment = api_environment()
    known = {f"WEALTHWISE_{name.upper()}" for name in Settings.model_fields}
    assert set(environment) <= known, set(environment) - known
    fields = {key.removeprefix("WEALTHWISE_").lower(): value for key, value in environment.items()}
    settings = Settings(**fields)
    assert settings.resolved_database_url.startswith("postgresql+asyncpg://wealthwise:")
    # The API itself connects as the unprivileged role the migrations create.
    assert settings.resolved_app_database_url.startswith("postgresql+asyncpg://wealthwise_app:")
    assert settings.environment == "production" and not settings.graphiql
    assert settings.resolved_log_format == "json"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    try:
        url = test_services.create_postgres_database()
    except OSError as error:
        test_services.unavailable("PostgreSQL", error)
    yield url
    test_services.drop_postgres_database(url)


def _local(
    environment: dict[str, str], database_url: str, port: int, data_dir: Path
) -> dict[str, Any]:
    """Compose's service names point at this machine's services instead."""
    local = dict(environment)
    local["WEALTHWISE_DATABASE_URL"] = database_url
    local["WEALTHWISE_REDIS_URL"] = environment["WEALTHWISE_REDIS_URL"].replace(
        "redis://redis:", "redis://127.0.0.1:"
    )
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {
        **os.environ,
        **local,
        "PATH": path,
        "PYTHONPATH": str(ROOT),
        "WEALTHWISE_DATA_DIR": str(data_dir),
    }


def test_the_image_command_migrates_and_serves_with_composes_settings(
    postgres_url: str, tmp_path: Path
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [part.replace("--port 8000", f"--port {port}") for part in dockerfile_command()]
    command = [part.replace("--host 0.0.0.0", "--host 127.0.0.1") for part in command]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=_local(api_environment(), postgres_url, port, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert ready is not None, process.stdout.read() if process.stdout else ""
        assert ready.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}
        graphiql = httpx.get(f"http://127.0.0.1:{port}/graphql", headers={"accept": "text/html"})
        assert "graphiql" not in graphiql.text.lower()
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_the_worker_service_runs_the_worker_with_the_apis_settings(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    worker = compose["services"]["worker"]
    assert worker["command"] == ["python", "-m", "api", "worker"]
    assert worker["environment"] == compose["services"]["api"]["environment"]
    env = _local(api_environment(), postgres_url, 0, tmp_path)
    # The shared test Redis and a stream of this test's own, not compose's defaults.
    queue = f"wealthwise-test:compose-{os.getpid()}-{time.monotonic_ns()}"
    env |= {
        "WEALTHWISE_REDIS_URL": redis_url,
        "WEALTHWISE_WORKER_QUEUE": queue,
        "WEALTHWISE_WORKER_CONSUMER_GROUP": f"{queue}:group",
    }
    subprocess.run([sys.executable, "-m", "api", "migrate"], cwd=ROOT, env=env, check=True)
    log = tmp_path / "worker.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, *worker["command"][1:]], cwd=ROOT, env=env, stdout=sink, stderr=sink
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if "worker_started" in log.read_text():
                break
            time.sleep(0.1)
        time.sleep(1.5)  # the scheduler sends the sealing job at start; the worker runs it
        assert process.poll() is None, log.read_text()
        process.terminate()
        assert process.wait(timeout=40) == 0, log.read_text()
        text = log.read_text()
        assert '"event": "worker_started"' in text and '"event": "worker_stopped"' in text
        assert "task_failed" not in text and "Traceback" not in text, text
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        client = redis.Redis.from_url(redis_url)
        client.delete(queue)
        client.close()
