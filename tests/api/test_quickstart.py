"""The Quickstart's first command: a real server with demo data answers for the demo user."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from domain.demo import DEMO_PASSWORD, DEMO_USERS

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "WEALTHWISE_DATA_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("WEALTHWISE_DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "api", "demo-serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"demo-serve exited: {process.stdout.read() if process.stdout else ''}")
            try:
                if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail("demo-serve did not become ready in 120 s")
        yield base
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
        assert "GraphiQL" in output and DEMO_USERS[0][0] in output


def test_the_demo_answers_the_demo_users_accounts_and_balances(demo_server: str) -> None:
    with httpx.Client(base_url=demo_server) as client:
        login = client.post(
            "/graphql",
            json={
                "query": (
                    "mutation($e: String!, $p: String!) "
                    "{ login(email: $e, password: $p) { user { name } } }"
                ),
                "variables": {"e": DEMO_USERS[0][0], "p": DEMO_PASSWORD},
            },
        )
        assert login.json()["data"]["login"]["user"]["name"] == DEMO_USERS[0][1]
        # Secure cookies are not replayed over plain http by httpx; a browser on localhost does.
        access = login.cookies.get("ww_access")
        assert access
        answer = client.post(
            "/graphql",
            json={"query": "{ accounts { name currency balance { amount currency } } }"},
            headers={"Authorization": f"Bearer {access}"},
        ).json()
    accounts = answer["data"]["accounts"]
    assert len(accounts) >= 6
    assert {a["currency"] for a in accounts} == {"INR", "USD"}
    assert any(Decimal(a["balance"]["amount"]) != 0 for a in accounts)
