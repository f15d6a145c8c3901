"""With Redis stopped the limiter falls back to in-process buckets: never "no limit"."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis as sync_redis
from structlog.testing import capture_logs

from tests.ratelimit.conftest import LimitedClients
from tests.ratelimit.test_api_limits import post

RETRY_SECONDS = 0.2


class PrivateRedis:
    """A redis-server of the test's own on a free loopback port (never the shared one)."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        self.process = subprocess.Popen(
            [*command, "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = sync_redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        try:
            for _ in range(100):
                try:
                    client.ping()
                    return
                except sync_redis.ConnectionError:
                    time.sleep(0.02)
            raise RuntimeError("the private redis-server did not start")
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def keys(self) -> list[str]:
        client = sync_redis.Redis.from_url(self.url, socket_connect_timeout=1)
        try:
            return sorted(key.decode() for key in client.scan_iter())
        finally:
            client.close()


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


async def burst(client: Any, count: int) -> list[int]:
    return [(await post(client, "{ __typename }")).status_code for _ in range(count)]


async def test_requests_stay_limited_while_redis_is_down_and_redis_is_used_again_after(
    limited_app: Any, private_redis: PrivateRedis
) -> None:
    make: LimitedClients = limited_app(
        redis_url=private_redis.url,
        rate_limit_redis_retry_seconds=RETRY_SECONDS,
        # Three operations at once, then one a minute.
        rate_limit_ip_cost_per_minute=1,
        rate_limit_ip_cost_burst=3,
    )
    client = make(ip="192.0.2.50")
    with capture_logs() as logs:
        assert await burst(client, 4) == [200, 200, 200, 429]
        assert private_redis.keys() == ["wealthwise:ratelimit:ip-cost:192.0.2.50"]

        private_redis.stop()
        # The in-process buckets take over with the same policy: a burst, then 429s.
        assert await burst(client, 5) == [200, 200, 200, 429, 429]
        down = [log for log in logs if log["event"] == "rate_limit_redis_down"]
        assert len(down) == 1 and down[0]["log_level"] == "warning"

        private_redis.start()  # empty: nothing survived the restart
        await asyncio.sleep(RETRY_SECONDS * 1.5)
        assert await burst(client, 4) == [200, 200, 200, 429]
        assert private_redis.keys() == ["wealthwise:ratelimit:ip-cost:192.0.2.50"]
        recovered = [log for log in logs if log["event"] == "rate_limit_redis_recovered"]
        assert len(recovered) == 1
        assert [log["event"] for log in logs if log["event"].startswith("rate_limit_redis")] == [
            "rate_limit_redis_down",
            "rate_limit_redis_recovered",
        ]


async def test_an_unreachable_redis_at_start_still_limits(limited_app: Any) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    make: LimitedClients = limited_app(
        redis_url=f"redis://127.0.0.1:{port}/0",
        rate_limit_ip_cost_per_minute=1,
        rate_limit_ip_cost_burst=2,
    )
    client = make(ip="192.0.2.51")
    with capture_logs() as logs:
        assert await burst(client, 4) == [200, 200, 429, 429]
    assert [log["event"] for log in logs if log["event"].startswith("rate_limit_redis")] == [
        "rate_limit_redis_down"
    ]
