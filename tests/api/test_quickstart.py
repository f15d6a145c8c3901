"""The Quickstart's first command: a real server with demo data answers for the demo user."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from domain.demo import DEMO_PASSWORD, DEMO_USERS
from tests.server import running_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def demo_server(tmp_path: Path) -> Iterator[str]:
    env = {"WEALTHWISE_DATA_DIR": str(tmp_path), "WEALTHWISE_DATABASE_URL": ""}
    with running_server(["demo-serve"], env) as (base, output):
        yield base
    assert "GraphiQL" in output[0] and DEMO_USERS[0][0] in output[0]


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
