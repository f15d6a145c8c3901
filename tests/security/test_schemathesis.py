"""Schemathesis fuzzes every query and mutation of the schema against a real server (demo
data on PostgreSQL, signed in as a demo user): no 500, and no error that is not masked
and coded. Bounded to a few hundred cases so that it fits in CI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.graphql import nodes

from domain.demo import DEMO_PASSWORD, DEMO_USERS
from tests import services as test_services
from tests.server import running_server

EXAMPLES_PER_OPERATION = 8
# Ending the fuzzer's own session would turn the rest of the run into UNAUTHENTICATED.
NOT_FUZZED = ["logout", "logoutEverywhere"]
LEAKS = ("Traceback", "sqlalchemy", "asyncpg", "SELECT ", "INSERT ", 'File "', "Error:")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    try:
        url = test_services.create_postgres_database()
    except OSError as error:
        test_services.unavailable("PostgreSQL", error)
    env = {
        "WEALTHWISE_DATA_DIR": str(tmp_path_factory.mktemp("fuzz")),
        "WEALTHWISE_DATABASE_URL": url,
        "WEALTHWISE_KEK": test_services.TEST_KEK,
        "WEALTHWISE_JWT_SECRET": test_services.TEST_JWT_SECRET,
        "WEALTHWISE_ENVIRONMENT": "test",
    }
    try:
        with running_server(["demo-serve"], env) as (base, _output):
            login = httpx.post(
                f"{base}/graphql",
                json={
                    "query": "mutation($e: String!, $p: String!)"
                    " { login(email: $e, password: $p) { user { id } } }",
                    "variables": {"e": DEMO_USERS[0][0], "p": DEMO_PASSWORD},
                },
            )
            yield {"base": base, "token": login.cookies["ww_access"]}
    finally:
        test_services.drop_postgres_database(url)


# Our custom scalars travel as strings: valid values, boundary values and junk alike.
_DECIMALS = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.sampled_from(["0", "-0.01", "1e400", "999999999999999999.99", "NaN", "1,5", ""]),
    st.text(max_size=16),
)
schemathesis.graphql.scalar("Decimal", _DECIMALS.map(nodes.String))
schemathesis.graphql.scalar(
    "Date", st.one_of(st.dates().map(str), st.text(max_size=12)).map(nodes.String)
)
schemathesis.graphql.scalar(
    "DateTime",
    st.one_of(st.datetimes().map(lambda d: d.isoformat()), st.text(max_size=24)).map(nodes.String),
)


def _check(case: Any, token: str) -> None:
    response = case.call(headers={"Authorization": f"Bearer {token}"})
    assert response.status_code < 500, response.text
    body = response.json()
    for error in body.get("errors") or []:
        code = error.get("extensions", {}).get("code")
        assert code, f"an error without a code: {error}"
        if code == "INTERNAL_SERVER_ERROR":
            assert not any(leak in error["message"] for leak in LEAKS), error
    text = json.dumps(body)
    assert not any(leak in text for leak in LEAKS[:5]), text[:2000]


def test_no_operation_answers_500_or_an_unmasked_error(server: dict[str, str]) -> None:
    # schemathesis's pytest plugin (from_fixture) does not run on pytest 9: drive its
    # per-operation Hypothesis strategies directly instead.
    loaded = schemathesis.graphql.from_url(f"{server['base']}/graphql").exclude(name=NOT_FUZZED)
    operations = [result.ok() for result in loaded.get_all_operations()]
    assert any("postTransaction" in op.label for op in operations), [o.label for o in operations]
    assert len(operations) >= 25
    calls = 0

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def fuzz(case: Any) -> None:
            nonlocal calls
            calls += 1
            _check(case, server["token"])

        fuzz()
    print(f"\nschemathesis: {calls} cases over {len(operations)} operations")
    assert calls >= len(operations) * 3
