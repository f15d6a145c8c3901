"""Bad input gets a typed error with a code, and changes nothing."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest

from schema.ids import encode_id
from tests.graphql import PASSWORD, Client, category_ids, create_account, post, register

SNAPSHOT = """{
  accounts(includeArchived: true) { id name balance { amount currency } }
  categories { id }
  tags { id }
  transactions(first: 100) {
    edges { node { id amount { amount } payee postings { amount { amount } } } }
  }
}"""


async def household(make_client: Any) -> tuple[Client, dict[str, str]]:
    client = make_client()
    await register(client)
    ids = {
        "inr": await create_account(client, opening="1000"),
        "usd": await create_account(client, name="Chase", currency="USD"),
    }
    ids.update(await category_ids(client))
    ids["tx"] = await post(client, ids["inr"], ids["Groceries"], "-10", tags=["t"])
    return client, ids


POST = """mutation($i: TransactionInput!) {
  postTransaction(input: $i, idempotencyKey: "bad") { id } }"""
JOURNAL = """mutation($i: JournalEntryInput!) {
  postJournalEntry(input: $i, idempotencyKey: "bad") { id } }"""
ACCOUNT = """mutation($i: CreateAccountInput!) { createAccount(input: $i) { id } }"""
TRANSACTIONS = """query($first: Int, $after: String, $f: TransactionFilter) {
  transactions(first: $first, after: $after, filter: $f) { edges { node { id } } } }"""
EDIT = """mutation($id: ID!, $i: TransactionInput!) {
  editTransaction(id: $id, input: $i, idempotencyKey: "bad") { id } }"""


def cases(ids: dict[str, str]) -> list[tuple[str, str, dict[str, Any], str]]:
    unknown_account = encode_id("Account", uuid.uuid4())
    spend = {"accountId": ids["inr"], "categoryId": ids["Groceries"], "date": "2025-01-02"}
    return [
        (
            "unknown currency",
            ACCOUNT,
            {"i": {"name": "X", "kind": "CASH", "currency": "XYZ"}},
            "BAD_USER_INPUT",
        ),
        ("too many decimals", POST, {"i": {**spend, "amount": "-1.001"}}, "BAD_USER_INPUT"),
        (
            "too many decimals on opening",
            ACCOUNT,
            {"i": {"name": "Y", "kind": "CASH", "currency": "JPY", "openingBalance": "1.5"}},
            "BAD_USER_INPUT",
        ),
        ("not a number", POST, {"i": {**spend, "amount": "lots"}}, "BAD_USER_INPUT"),
        ("zero amount", POST, {"i": {**spend, "amount": "0"}}, "BAD_USER_INPUT"),
        (
            "unbalanced postings",
            JOURNAL,
            {
                "i": {
                    "date": "2025-01-02",
                    "postings": [
                        {"accountId": ids["inr"], "amount": "-10", "currency": "INR"},
                        {"categoryId": ids["Rent"], "amount": "9.99", "currency": "INR"},
                    ],
                }
            },
            "BAD_USER_INPUT",
        ),
        (
            "posting in the wrong currency",
            JOURNAL,
            {
                "i": {
                    "date": "2025-01-02",
                    "postings": [
                        {"accountId": ids["usd"], "amount": "-10", "currency": "INR"},
                        {"categoryId": ids["Rent"], "amount": "10", "currency": "INR"},
                    ],
                }
            },
            "BAD_USER_INPUT",
        ),
        (
            "unknown account",
            POST,
            {"i": {**spend, "accountId": unknown_account, "amount": "-1"}},
            "NOT_FOUND",
        ),
        (
            "unknown category",
            POST,
            {"i": {**spend, "categoryId": encode_id("Category", uuid.uuid4()), "amount": "-1"}},
            "NOT_FOUND",
        ),
        (
            "an id of another type",
            POST,
            {"i": {**spend, "accountId": ids["Groceries"], "amount": "-1"}},
            "NOT_FOUND",
        ),
        (
            "malformed id",
            POST,
            {"i": {**spend, "accountId": "not-an-id", "amount": "-1"}},
            "BAD_USER_INPUT",
        ),
        (
            "unknown transaction",
            EDIT,
            {"id": encode_id("Transaction", uuid.uuid4()), "i": {**spend, "amount": "-1"}},
            "NOT_FOUND",
        ),
        ("malformed cursor", TRANSACTIONS, {"after": "bm90LWEtY3Vyc29y"}, "BAD_USER_INPUT"),
        ("first above the cap", TRANSACTIONS, {"first": 101}, "BAD_USER_INPUT"),
        ("first below one", TRANSACTIONS, {"first": 0}, "BAD_USER_INPUT"),
        (
            "dates reversed",
            TRANSACTIONS,
            {"f": {"dateFrom": "2025-02-01", "dateTo": "2025-01-01"}},
            "BAD_USER_INPUT",
        ),
        (
            "unknown filter account",
            TRANSACTIONS,
            {"f": {"accountIds": [unknown_account]}},
            "NOT_FOUND",
        ),
        (
            "category and splits",
            POST,
            {
                "i": {
                    **spend,
                    "amount": "-5",
                    "splits": [{"categoryId": ids["Rent"], "amount": "-5"}],
                }
            },
            "BAD_USER_INPUT",
        ),
        (
            "splits that miss the amount",
            POST,
            {
                "i": {
                    "accountId": ids["inr"],
                    "date": "2025-01-02",
                    "amount": "-5",
                    "splits": [{"categoryId": ids["Rent"], "amount": "-4"}],
                }
            },
            "BAD_USER_INPUT",
        ),
        (
            "transfer to itself",
            """mutation($i: TransferInput!) {
              transfer(input: $i, idempotencyKey: "bad") { id } }""",
            {
                "i": {
                    "fromAccountId": ids["inr"],
                    "toAccountId": ids["inr"],
                    "date": "2025-01-02",
                    "amount": "1",
                }
            },
            "BAD_USER_INPUT",
        ),
        (
            "empty idempotency key",
            """mutation($i: TransactionInput!) {
              postTransaction(input: $i, idempotencyKey: "") { id } }""",
            {"i": {**spend, "amount": "-1"}},
            "BAD_USER_INPUT",
        ),
        (
            "a period backwards",
            """{ spendingSummary(period: {start: "2025-02-01", end: "2025-01-01"}) {
              total { amount } } }""",
            {},
            "BAD_USER_INPUT",
        ),
        (
            "a bad date literal",
            """{ cashflow(period: {start: "2025-13-01", end: "2025-01-01"}) { net { amount } } }""",
            {},
            "BAD_USER_INPUT",
        ),
        ("syntax error", "{ accounts { ", {}, "GRAPHQL_PARSE_FAILED"),
        ("unknown field", "{ accounts { secret } }", {}, "GRAPHQL_VALIDATION_FAILED"),
        (
            "too deep",
            "{ categories " + "{ parent " * 12 + "{ name }" + " }" * 13,
            {},
            "GRAPHQL_VALIDATION_FAILED",
        ),
        (
            "too many aliases",
            "{ " + " ".join(f"a{i}: tags {{ id }}" for i in range(31)) + " }",
            {},
            "GRAPHQL_VALIDATION_FAILED",
        ),
        (
            "31 decimals",
            POST,
            {"i": {**spend, "amount": "-0.1" + "0" * 29 + "1"}},
            "BAD_USER_INPUT",
        ),
        ("a huge exponent", POST, {"i": {**spend, "amount": "-1e999998"}}, "BAD_USER_INPUT"),
        (
            "a vanishing exponent",
            ACCOUNT,
            {"i": {"name": "V", "kind": "CASH", "currency": "INR", "openingBalance": "1e-999999"}},
            "BAD_USER_INPUT",
        ),
        (
            "a NaN amount bound",
            TRANSACTIONS,
            {"f": {"amountMin": "NaN", "amountMax": "5"}},
            "BAD_USER_INPUT",
        ),
        (
            "a period at the end of time",
            '{ cashflow(period: {start: "9999-01-01", end: "9999-12-31"}) { net { amount } } }',
            {},
            "BAD_USER_INPUT",
        ),
        (
            "an absurd FX rate",
            'mutation { setFxRate(base: "USD", quote: "INR", date: "2025-01-01", rate: "1e30") '
            "{ rate } }",
            {},
            "BAD_USER_INPUT",
        ),
        (
            "a forged non-ASCII cursor",
            TRANSACTIONS,
            {"after": base64.urlsafe_b64encode("2025-01-01|x|é".encode()).decode()},
            "BAD_USER_INPUT",
        ),
    ]


CASE_NAMES = [case[0] for case in cases({k: "x" for k in ("inr", "usd", "Groceries", "Rent")})]


@pytest.mark.parametrize("case", CASE_NAMES)
async def test_bad_input_is_refused_with_a_code_and_changes_nothing(
    make_client: Any, case: str
) -> None:
    client, ids = await household(make_client)
    _name, query, variables, code = next(c for c in cases(ids) if c[0] == case)
    before = await client.ok(SNAPSHOT)
    error = await client.error(query, **variables)
    assert error["extensions"]["code"] == code, error
    assert "Traceback" not in error["message"] and "SELECT" not in error["message"]
    assert await client.ok(SNAPSHOT) == before


async def test_another_workspaces_ids_are_answered_exactly_like_unknown_ids(
    make_client: Any,
) -> None:
    owner, ids = await household(make_client)
    intruder = make_client()
    await register(intruder, name="Eve")
    own_account = await create_account(intruder)
    own_category = (await category_ids(intruder))["Groceries"]
    before = await owner.ok(SNAPSHOT)
    attempts = [
        ("query($id: ID!) { account(id: $id) { name } }", {"id": ids["inr"]}, "Account"),
        ("query($id: ID!) { transaction(id: $id) { payee } }", {"id": ids["tx"]}, "Transaction"),
        (
            EDIT,
            {
                "id": ids["tx"],
                "i": {
                    "accountId": own_account,
                    "categoryId": own_category,
                    "amount": "-1",
                    "date": "2025-01-01",
                },
            },
            "Transaction",
        ),
        (
            """mutation($id: ID!) { deleteTransaction(id: $id, idempotencyKey: "x") { id } }""",
            {"id": ids["tx"]},
            "Transaction",
        ),
        (
            """mutation($id: ID!) { updateAccount(id: $id, input: {name: "mine"}) { id } }""",
            {"id": ids["inr"]},
            "Account",
        ),
        (
            POST,
            {
                "i": {
                    "accountId": ids["inr"],
                    "categoryId": own_category,
                    "amount": "-1",
                    "date": "2025-01-01",
                }
            },
            "Account",
        ),
        (
            POST,
            {
                "i": {
                    "accountId": own_account,
                    "categoryId": ids["Groceries"],
                    "amount": "-1",
                    "date": "2025-01-01",
                }
            },
            "Category",
        ),
        (TRANSACTIONS, {"f": {"accountIds": [ids["inr"]]}}, "Account"),
        (TRANSACTIONS, {"f": {"categoryIds": [ids["Groceries"]]}}, "Category"),
    ]
    for query, variables, type_name in attempts:
        foreign = await intruder.error(query, **variables)
        unknown_vars = _replace(variables, ids, type_name)
        unknown = await intruder.error(query, **unknown_vars)
        assert foreign["extensions"] == unknown["extensions"], query
        assert foreign["message"] == unknown["message"], query
        assert foreign["extensions"]["code"] == "NOT_FOUND"
    # Relay's node() answers null for both.
    node = await intruder.ok("query($id: ID!) { node(id: $id) { id } }", id=ids["tx"])
    assert node["node"] is None
    # Pointing the workspace header at the other household is refused like an unknown one.
    intruder.use_workspace(encode_id("Workspace", uuid.uuid4()))
    unknown_ws = await intruder.error("{ accounts { id } }")
    owner_ws = (await owner.ok("{ workspace { id } }"))["workspace"]["id"]
    intruder.use_workspace(owner_ws)
    assert await intruder.error("{ accounts { id } }") == unknown_ws
    assert await owner.ok(SNAPSHOT) == before


def _replace(variables: dict[str, Any], ids: dict[str, str], type_name: str) -> dict[str, Any]:
    """The same request with the owner's id swapped for an id that exists nowhere."""
    owners = set(ids.values())
    fresh = encode_id(type_name, uuid.uuid4())

    def swap(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [swap(v) for v in value]
        if (
            isinstance(value, str)
            and value in owners
            and value.startswith(encode_id(type_name, uuid.UUID(int=0))[:8])
        ):
            return fresh
        return value

    return swap(variables)


async def test_a_cursor_from_another_workspace_is_refused(make_client: Any) -> None:
    owner, _ids = await household(make_client)
    page = await owner.ok("{ transactions(first: 1) { pageInfo { endCursor } } }")
    cursor = page["transactions"]["pageInfo"]["endCursor"]
    intruder = make_client()
    await register(intruder, name="Eve")
    error = await intruder.error(TRANSACTIONS, after=cursor)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "after"}


async def test_a_viewer_can_read_but_not_write(make_client: Any) -> None:
    owner, ids = await household(make_client)
    viewer = make_client()
    email = f"viewer-{uuid.uuid4().hex[:8]}@example.com"
    invited = await owner.ok(
        "mutation($e: String!) { inviteMember(email: $e, role: VIEWER) { token role } }", e=email
    )
    assert invited["inviteMember"]["role"] == "VIEWER"
    await viewer.ok(
        """mutation($e: String!, $p: String!) { register(email: $e, password: $p, name: "Vik") {
            user { id } } }""",
        e=email,
        p=PASSWORD,
    )
    shared = (
        await viewer.ok(
            "mutation($t: String!) { acceptInvitation(token: $t) { id role } }",
            t=invited["inviteMember"]["token"],
        )
    )["acceptInvitation"]
    assert shared["role"] == "VIEWER"
    viewer.use_workspace(shared["id"])
    before = await owner.ok(SNAPSHOT)
    assert len((await viewer.ok(SNAPSHOT))["accounts"]) == 2
    writes = [
        (
            POST,
            {
                "i": {
                    "accountId": ids["inr"],
                    "categoryId": ids["Rent"],
                    "amount": "-1",
                    "date": "2025-01-01",
                }
            },
        ),
        (ACCOUNT, {"i": {"name": "Z", "kind": "CASH", "currency": "INR"}}),
        (
            """mutation($id: ID!) { deleteTransaction(id: $id, idempotencyKey: "v") { id } }""",
            {"id": ids["tx"]},
        ),
        ('mutation { createCategory(input: {name: "Pets", kind: EXPENSE}) { id } }', {}),
        (
            """mutation { setFxRate(base: "USD", quote: "INR", date: "2025-01-01", rate: "80") {
              rate } }""",
            {},
        ),
        ('mutation { inviteMember(email: "x@example.com", role: OWNER) { token } }', {}),
    ]
    for query, variables in writes:
        assert await viewer.code(query, **variables) == "FORBIDDEN", query
    assert await owner.ok(SNAPSHOT) == before


async def test_requests_without_a_session_are_unauthenticated(make_client: Any) -> None:
    anonymous = make_client()
    assert await anonymous.code("{ accounts { id } }") == "UNAUTHENTICATED"
    assert await anonymous.code("{ me { user { id } } }") == "UNAUTHENTICATED"
    anonymous.headers["Authorization"] = "Bearer not.a.jwt"
    assert await anonymous.code("{ accounts { id } }") == "UNAUTHENTICATED"
