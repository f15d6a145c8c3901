"""Schemathesis fuzzes every query and mutation of the schema against a real server (demo
data on PostgreSQL, signed in as a demo user): no 500, and no error that is not masked
and coded. Bounded to a few hundred cases so that it fits in CI."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from graphql import GraphQLObjectType
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.graphql import nodes

from domain.demo import DEMO_PASSWORD, DEMO_USERS
from schema import schema as wealthwise_schema
from tests import services as test_services
from tests.server import running_server

EXAMPLES_PER_OPERATION = 8
# Ending the fuzzer's own session would turn the rest of the run into UNAUTHENTICATED.
# Schemathesis names an operation "<root type>.<field>", and `exclude(name=...)` matches that.
NOT_FUZZED = ["Mutation.logout", "Mutation.logoutEverywhere"]
LEAKS = ("Traceback", "sqlalchemy", "asyncpg", "SELECT ", "INSERT ", 'File "', "Error:")
# Roomy enough that no fuzzed case is refused for the budget: sign-in mutations (login,
# register, refreshSession, acceptInvitation) must reach their resolvers, not RATE_LIMITED.
ROOMY = "1000000"
ROOMY_LIMITS = {
    f"WEALTHWISE_RATE_LIMIT_{name}": ROOMY
    for name in (
        "AUTH_PER_MINUTE",
        "AUTH_BURST",
        "IP_AUTH_PER_MINUTE",
        "IP_AUTH_BURST",
        "COST_PER_MINUTE",
        "COST_BURST",
        "IP_COST_PER_MINUTE",
        "IP_COST_BURST",
    )
}
ME = "{ me { user { id } } }"
# Ids of the demo data, so that fuzzed ids, emails and currencies often name real things and
# the cases reach the resolvers' work rather than stopping at BAD_USER_INPUT.
REAL_IDS = """{ me { user { id } workspaces { id } } accounts(includeArchived: true) { id }
  categories { id } tags { id } apiTokens { id } advisorThreads { id }
  transactions(first: 20) { edges { node { id } } } }"""


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
        **ROOMY_LIMITS,
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
                timeout=30,
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


def _ids_in(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "id" and isinstance(inner, str):
                yield inner
            else:
                yield from _ids_in(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _ids_in(inner)


def _realistic_strings_and_ids(server: dict[str, str]) -> None:
    """Strings and ids drawn mostly from values the API accepts (the demo data's ids, real
    emails, currencies, the demo credentials), the rest junk."""
    answer = httpx.post(
        f"{server['base']}/graphql",
        json={"query": REAL_IDS},
        headers={"Authorization": f"Bearer {server['token']}"},
        timeout=30,
    ).json()
    assert "errors" not in answer, answer
    ids = sorted(set(_ids_in(answer["data"])))
    assert len(ids) >= 10, ids
    junk = st.text(max_size=24)
    plausible = st.one_of(
        st.emails(),
        st.sampled_from(
            [DEMO_USERS[0][0], DEMO_USERS[1][0], DEMO_PASSWORD, "INR", "USD", "EUR", "JPY"]
        ),
        st.sampled_from(["Groceries", "Rent", "a", "x" * 121, "1.5", "2025-03-10", ids[0]]),
        st.uuids().map(str),
    )
    schemathesis.graphql.scalar("String", st.one_of(plausible, plausible, junk).map(nodes.String))
    schemathesis.graphql.scalar(
        "ID", st.one_of(st.sampled_from(ids), st.sampled_from(ids), junk).map(nodes.String)
    )


def _fuzzed_labels() -> set[str]:
    """What schemathesis should run: every query and mutation root field of the schema the
    code builds (subscriptions are not HTTP operations), less NOT_FUZZED."""
    labels = set()
    for root in ("Query", "Mutation"):
        root_type = wealthwise_schema._schema.get_type(root)
        assert isinstance(root_type, GraphQLObjectType)
        labels |= {f"{root}.{field}" for field in root_type.fields}
    assert set(NOT_FUZZED) <= labels  # else the exclusion names nothing again
    return labels - set(NOT_FUZZED)


def _check(case: Any, token: str) -> list[str]:
    """Asserts the answer is not a 500 and leaks nothing; returns its error codes."""
    response = case.call(headers={"Authorization": f"Bearer {token}"})
    assert response.status_code < 500, response.text
    body = response.json()
    codes = []
    for error in body.get("errors") or []:
        code = error.get("extensions", {}).get("code")
        assert code, f"an error without a code: {error}"
        if code == "INTERNAL_SERVER_ERROR":
            assert not any(leak in error["message"] for leak in LEAKS), error
        codes.append(code)
    text = json.dumps(body)
    assert not any(leak in text for leak in LEAKS[:5]), text[:2000]
    return codes


def test_no_operation_answers_500_or_an_unmasked_error(server: dict[str, str]) -> None:
    # schemathesis's pytest plugin (from_fixture) does not run on pytest 9: drive its
    # per-operation Hypothesis strategies directly instead.
    _realistic_strings_and_ids(server)
    loaded = schemathesis.graphql.from_url(f"{server['base']}/graphql").exclude(name=NOT_FUZZED)
    operations = [result.ok() for result in loaded.get_all_operations()]
    labels = {op.label for op in operations}
    assert not any("logout" in label.lower() for label in labels), sorted(labels)
    assert labels == _fuzzed_labels()
    assert len(operations) == len(labels)
    calls = 0
    codes: dict[str, Counter[str]] = defaultdict(Counter)

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
            codes[case.operation.label].update(_check(case, server["token"]) or ["OK"])

        fuzz()
    print(f"\nschemathesis: {calls} cases over {len(operations)} operations")
    for label in sorted(codes):
        print(f"  {label}: {dict(codes[label])}")
    assert calls >= len(operations) * 3
    # The fuzzer's session outlived the run, and no case was refused for the budget.
    refused = {label: c["RATE_LIMITED"] for label, c in codes.items() if c["RATE_LIMITED"]}
    assert refused == {}
    me = httpx.post(
        f"{server['base']}/graphql",
        json={"query": ME},
        headers={"Authorization": f"Bearer {server['token']}"},
    ).json()
    assert "errors" not in me, me
    assert me["data"]["me"]["user"]["id"]
