"""The attack suite: a member of a second workspace goes after the first one through every
query, mutation and subscription of the schema, with guessed and copied ids, relay global
ids, cursors, filters, idempotency keys and the workspace header. Zero attempts may work.

An attempt "works" when the response carries anything of the victim's (a marker string
only the victim's data contains, or one of the victim's ids in `data`), or when the
victim's ledger, members or sessions differ afterwards. Every root field must have cases
here: a field added to the schema without them fails `test_every_root_field_is_attacked`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from schema import schema
from schema.context import AppServices
from schema.ids import decode_id
from tests.graphql import PASSWORD, Client, create_account, post, register
from tests.realtime.ws import Closed, GraphQLWS, serving

MARK = "Zq9victim"  # in every victim string: its appearance anywhere is a leak
Ids = dict[str, Any]
# The victim's ids that must never appear in what the attacker gets back.
VICTIM_IDS = (
    "workspace",
    "user",
    "account",
    "category",
    "tag",
    "transaction",
    "transfer",
    "api_token",
    "advisor_thread",
    "advisor_message",
)


@dataclass
class Attack:
    field: str
    what: str
    query: str
    variables: Callable[[Ids], dict[str, Any]] = lambda ids: {}
    victim_header: bool = False  # send X-Workspace-ID: the victim's workspace


def _tx_input(account: str, category: str | None, **extra: Any) -> dict[str, Any]:
    return {
        "accountId": account,
        "categoryId": category,
        "amount": "-1.00",
        "date": "2025-03-11",
        "payee": "Attacker",
        **extra,
    }


TX = (
    "mutation($i: TransactionInput!, $k: String!) { postTransaction(input: "
    "$i, idempotencyKey: $k) { id payee amount { amount } } }"
)
TRANSFER = (
    "mutation($i: TransferInput!, $k: String!) { transfer(input: $i, idempotencyKey: $k) { id } }"
)
JOURNAL = (
    "mutation($i: JournalEntryInput!, $k: String!) { "
    "postJournalEntry(input: $i, idempotencyKey: $k) { id } }"
)
EDIT = (
    "mutation($id: ID!, $i: TransactionInput!, $k: String!) { "
    "editTransaction(id: $id, input: $i, idempotencyKey: $k) { id payee } }"
)
EDIT_TRANSFER = (
    "mutation($id: ID!, $i: TransferInput!, $k: String!) { "
    "editTransfer(id: $id, input: $i, idempotencyKey: $k) { id } }"
)
EDIT_JOURNAL = (
    "mutation($id: ID!, $i: JournalEntryInput!, $k: String!) { "
    "editJournalEntry(id: $id, input: $i, idempotencyKey: $k) { id } }"
)
PAGE = (
    "query($f: TransactionFilter, $a: String) { transactions(first: 50, "
    "after: $a, filter: $f) { edges { cursor node { id payee narration "
    "account { name } } } } }"
)
NODE = "query($id: ID!) { node(id: $id) { id __typename } }"
SET_BUDGET = (
    'mutation($c: ID!) { setBudget(categoryId: $c, amount: "1") '
    "{ category { id name } amount { amount } } }"
)
REMOVE_BUDGET = "mutation($c: ID!) { removeBudget(categoryId: $c) }"


def _journal(account: str, other: str) -> dict[str, Any]:
    return {
        "date": "2025-03-11",
        "postings": [
            {"amount": "5.00", "currency": "INR", "accountId": account},
            {"amount": "-5.00", "currency": "INR", "accountId": other},
        ],
    }


def _cases() -> list[Attack]:
    cases: list[Attack] = []
    read_everything = {
        "me": "{ me { user { id name email } workspaces { id name members { role } } } }",
        "workspace": "{ workspace { id name members { role user { id name email } } } }",
        "accounts": "{ accounts(includeArchived: true) { id name balance { amount } } }",
        "categories": "{ categories { id name } }",
        "tags": "{ tags { id name } }",
        "transactions": "{ transactions(first: 100) { edges { node { id payee narration } } } }",
        "spendingSummary": '{ spendingSummary(period: {start: "2025-01-01", end: "2025-12-31"}, groupBy: PAYEE) { rows { label amount { amount } } } }',  # noqa: E501
        "cashflow": '{ cashflow(period: {start: "2025-01-01", end: "2025-12-31"}) { months { income { amount } expenses { amount } } } }',  # noqa: E501
        "netWorth": "{ netWorth(months: 24) { net { amount } history { month net { amount } } } }",
        "fxRates": "{ fxRates { base quote rate date } }",
        "budgets": "{ budgets { category { id name } amount { amount currency } } }",
        "auditLog": "{ auditLog(first: 100) { edges { node { id action targetIds actorId } } } }",
        "loginProviders": "{ loginProviders { name displayName loginUrl } }",
        "advisorThreads": "{ advisorThreads { id title messages { id content } } }",
    }
    for name, query in read_everything.items():
        cases.append(
            Attack(name, "the victim's workspace in X-Workspace-ID", query, victim_header=True)
        )
        cases.append(Attack(name, "own workspace: nothing of the victim's shows", query))
    cases += [
        Attack(
            "account",
            "victim account id",
            "query($id: ID!) { account(id: $id) { id name } }",
            lambda ids: {"id": ids["account"]},
        ),
        Attack(
            "account",
            "victim account id + victim header",
            "query($id: ID!) { account(id: $id) { id name } }",
            lambda ids: {"id": ids["account"]},
            victim_header=True,
        ),
        Attack(
            "account",
            "a transaction's id as an account id",
            "query($id: ID!) { account(id: $id) { id name } }",
            lambda ids: {"id": ids["transaction"]},
        ),
        Attack(
            "account",
            "a guessed raw uuid",
            "query($id: ID!) { account(id: $id) { id name } }",
            lambda ids: {"id": ids["account_raw"]},
        ),
        Attack(
            "transaction",
            "victim transaction id",
            "query($id: ID!) { transaction(id: $id) { id payee narration } }",
            lambda ids: {"id": ids["transaction"]},
        ),
        Attack(
            "transaction",
            "victim transfer id",
            "query($id: ID!) { transaction(id: $id) { id payee } }",
            lambda ids: {"id": ids["transfer"]},
        ),
        Attack(
            "transactions",
            "a cursor copied from the victim's page",
            PAGE,
            lambda ids: {"a": ids["cursor"]},
        ),
        Attack(
            "transactions",
            "filter on the victim's account",
            PAGE,
            lambda ids: {"f": {"accountIds": [ids["account"]]}},
        ),
        Attack(
            "transactions",
            "filter on the victim's category",
            PAGE,
            lambda ids: {"f": {"categoryIds": [ids["category"]]}},
        ),
        Attack(
            "transactions",
            "filter on the victim's tag",
            PAGE,
            lambda ids: {"f": {"tagIds": [ids["tag"]]}},
        ),
        Attack(
            "transactions",
            "text search for the victim's payee",
            PAGE,
            lambda ids: {"f": {"text": MARK}},
        ),
    ]
    for kind in VICTIM_IDS:
        cases.append(
            Attack(
                "node",
                f"the victim's {kind} global id",
                NODE,
                lambda ids, kind=kind: {"id": ids[kind]},
            )
        )
    cases.append(
        Attack(
            "node",
            "the victim's user id, victim header",
            NODE,
            lambda ids: {"id": ids["user"]},
            victim_header=True,
        )
    )
    cases += [
        Attack(
            "register",
            "the victim's email again",
            'mutation($e: String!, $p: String!) { register(email: $e, password: $p, name: "X") { user { id } } }',  # noqa: E501
            lambda ids: {"e": ids["email"], "p": "another-password-1"},
        ),
        Attack(
            "login",
            "the victim's email, a wrong password",
            'mutation($e: String!) { login(email: $e, password: "wrong-password-1") { user { id } } }',  # noqa: E501
            lambda ids: {"e": ids["email"]},
        ),
        Attack(
            "refreshSession",
            "no refresh token of the victim's",
            "mutation { refreshSession { user { id } } }",
        ),
        Attack(
            "logout",
            "logout with the victim header",
            "mutation { logout { sessionsEnded } }",
            victim_header=True,
        ),
        Attack(
            "logoutEverywhere",
            "with the victim header",
            "mutation { logoutEverywhere { sessionsEnded } }",
            victim_header=True,
        ),
        Attack(
            "createWorkspace",
            "with the victim header",
            'mutation { createWorkspace(name: "Mine") { id name members { role user { name } } } }',
            victim_header=True,
        ),
        Attack(
            "inviteMember",
            "invite self into the victim's workspace",
            "mutation($e: String!) { inviteMember(email: $e, role: OWNER) { token } }",
            lambda ids: {"e": ids["attacker_email"]},
            victim_header=True,
        ),
        Attack(
            "acceptInvitation",
            "a guessed token",
            "mutation($t: String!) { acceptInvitation(token: $t) { id name } }",
            lambda ids: {"t": "guessed-" + uuid.uuid4().hex},
        ),
        Attack(
            "acceptInvitation",
            "the victim's real invitation token, for another email",
            "mutation($t: String!) { acceptInvitation(token: $t) { id name } }",
            lambda ids: {"t": ids["invitation_token"]},
        ),
        Attack(
            "createAccount",
            "with the victim header",
            'mutation { createAccount(input: {name: "A", kind: CHECKING, currency: "INR", openingBalance: "1", openingDate: "2025-01-01"}) { id } }',  # noqa: E501
            victim_header=True,
        ),
        Attack(
            "updateAccount",
            "rename the victim's account",
            'mutation($id: ID!) { updateAccount(id: $id, input: {name: "pwned", archived: true}) { id name } }',  # noqa: E501
            lambda ids: {"id": ids["account"]},
        ),
        Attack(
            "updateAccount",
            "rename the victim's account, victim header",
            'mutation($id: ID!) { updateAccount(id: $id, input: {name: "pwned"}) { id } }',
            lambda ids: {"id": ids["account"]},
            victim_header=True,
        ),
        Attack(
            "createCategory",
            "under the victim's category",
            'mutation($p: ID!) { createCategory(input: {name: "Sub", kind: EXPENSE, parentId: $p}) { id } }',  # noqa: E501
            lambda ids: {"p": ids["category"]},
        ),
        Attack(
            "createCategory",
            "with the victim header",
            'mutation { createCategory(input: {name: "Sub", kind: EXPENSE}) { id } }',
            victim_header=True,
        ),
        Attack(
            "postTransaction",
            "into the victim's account",
            TX,
            lambda ids: {"i": _tx_input(ids["account"], ids["own_category"]), "k": "a1"},
        ),
        Attack(
            "postTransaction",
            "onto the victim's category",
            TX,
            lambda ids: {"i": _tx_input(ids["own_account"], ids["category"]), "k": "a2"},
        ),
        Attack(
            "postTransaction",
            "split onto the victim's category",
            TX,
            lambda ids: {
                "i": _tx_input(
                    ids["own_account"],
                    None,
                    amount=None,
                    splits=[{"categoryId": ids["category"], "amount": "-1.00"}],
                ),
                "k": "a3",
            },
        ),
        Attack(
            "postTransaction",
            "tagged with the victim's tag name",
            TX,
            lambda ids: {
                "i": _tx_input(ids["own_account"], ids["own_category"], tags=[f"{MARK}-tag"]),
                "k": "a4",
            },
        ),
        Attack(
            "postTransaction",
            "the victim's idempotency key, same input shape",
            TX,
            lambda ids: {
                "i": _tx_input(ids["own_account"], ids["own_category"]),
                "k": ids["idempotency_key"],
            },
        ),
        Attack(
            "postTransaction",
            "with the victim header",
            TX,
            lambda ids: {"i": _tx_input(ids["account"], ids["category"]), "k": "a5"},
            victim_header=True,
        ),
        Attack(
            "transfer",
            "from the victim's account to own",
            TRANSFER,
            lambda ids: {
                "i": {
                    "fromAccountId": ids["account"],
                    "toAccountId": ids["own_account"],
                    "date": "2025-03-11",
                    "amount": "50",
                },
                "k": "t1",
            },
        ),
        Attack(
            "transfer",
            "from own account to the victim's",
            TRANSFER,
            lambda ids: {
                "i": {
                    "fromAccountId": ids["own_account"],
                    "toAccountId": ids["account"],
                    "date": "2025-03-11",
                    "amount": "50",
                },
                "k": "t2",
            },
        ),
        Attack(
            "postJournalEntry",
            "posting to the victim's account",
            JOURNAL,
            lambda ids: {"i": _journal(ids["own_account"], ids["account"]), "k": "j1"},
        ),
        Attack(
            "editTransaction",
            "the victim's transaction",
            EDIT,
            lambda ids: {
                "id": ids["transaction"],
                "i": _tx_input(ids["own_account"], ids["own_category"]),
                "k": "e1",
            },
        ),
        Attack(
            "editTransaction",
            "own transaction moved onto the victim's account",
            EDIT,
            lambda ids: {
                "id": ids["own_transaction"],
                "i": _tx_input(ids["account"], ids["category"]),
                "k": "e2",
            },
        ),
        Attack(
            "editTransfer",
            "the victim's transfer",
            EDIT_TRANSFER,
            lambda ids: {
                "id": ids["transfer"],
                "i": {
                    "fromAccountId": ids["own_account"],
                    "toAccountId": ids["own_account2"],
                    "date": "2025-03-11",
                    "amount": "1",
                },
                "k": "e3",
            },
        ),
        Attack(
            "editJournalEntry",
            "the victim's transaction",
            EDIT_JOURNAL,
            lambda ids: {
                "id": ids["transaction"],
                "i": _journal(ids["own_account"], ids["own_account2"]),
                "k": "e4",
            },
        ),
        Attack(
            "deleteTransaction",
            "the victim's transaction",
            'mutation($id: ID!) { deleteTransaction(id: $id, idempotencyKey: "d1") { id } }',
            lambda ids: {"id": ids["transaction"]},
        ),
        Attack(
            "deleteTransaction",
            "the victim's transaction, victim header",
            'mutation($id: ID!) { deleteTransaction(id: $id, idempotencyKey: "d2") { id } }',
            lambda ids: {"id": ids["transaction"]},
            victim_header=True,
        ),
        Attack(
            "sealAuditLog",
            "seal the victim's audit chain",
            "mutation { sealAuditLog { seq headHash } }",
            victim_header=True,
        ),
        Attack(
            "auditLog",
            "filter on the victim's user id",
            "query($a: ID!) { auditLog(first: 50, actorId: $a)"
            " { edges { node { id targetIds } } } }",
            lambda ids: {"a": ids["user"]},
        ),
        Attack(
            "apiTokens",
            "the victim's workspace in X-Workspace-ID",
            "{ apiTokens { id name } }",
            victim_header=True,
        ),
        Attack(
            "apiTokens", "own workspace: nothing of the victim's shows", "{ apiTokens { id name } }"
        ),
        Attack(
            "createApiToken",
            "a token for the victim's workspace",
            'mutation { createApiToken(name: "mine", scope: WRITE) { token } }',
            victim_header=True,
        ),
        Attack(
            "revokeApiToken",
            "the victim's token id",
            "mutation($id: ID!) { revokeApiToken(id: $id) { id name } }",
            lambda ids: {"id": ids["api_token"]},
        ),
        Attack(
            "revokeApiToken",
            "the victim's token id + victim header",
            "mutation($id: ID!) { revokeApiToken(id: $id) { id name } }",
            lambda ids: {"id": ids["api_token"]},
            victim_header=True,
        ),
        Attack(
            "setBudget",
            "on the victim's category",
            SET_BUDGET,
            lambda ids: {"c": ids["category"]},
        ),
        Attack(
            "setBudget",
            "on the victim's category, victim header",
            SET_BUDGET,
            lambda ids: {"c": ids["category"]},
            victim_header=True,
        ),
        Attack(
            "setBudget",
            "on own category, victim header",
            SET_BUDGET,
            lambda ids: {"c": ids["own_category"]},
            victim_header=True,
        ),
        Attack(
            "removeBudget",
            "the victim's category's budget",
            REMOVE_BUDGET,
            lambda ids: {"c": ids["category"]},
        ),
        Attack(
            "removeBudget",
            "the victim's category's budget, victim header",
            REMOVE_BUDGET,
            lambda ids: {"c": ids["category"]},
            victim_header=True,
        ),
        Attack(
            "advisorThread",
            "the victim's thread id",
            "query($id: ID!) { advisorThread(id: $id) { id title messages { id content } } }",
            lambda ids: {"id": ids["advisor_thread"]},
        ),
        Attack(
            "advisorThread",
            "the victim's thread id + victim header",
            "query($id: ID!) { advisorThread(id: $id) { id title messages { id content } } }",
            lambda ids: {"id": ids["advisor_thread"]},
            victim_header=True,
        ),
        Attack(
            "askAdvisor",
            "a question in the victim's thread",
            'mutation($t: ID!) { askAdvisor(threadId: $t, question: "and now?")'
            " { thread { id title } answer { id } } }",
            lambda ids: {"t": ids["advisor_thread"]},
        ),
        Attack(
            "askAdvisor",
            "a question under the victim's header",
            'mutation { askAdvisor(question: "What did we spend?") { answer { id } } }',
            victim_header=True,
        ),
        Attack(
            "setFxRate",
            "with the victim header",
            'mutation { setFxRate(base: "USD", quote: "INR", date: "2025-03-01", rate: "1") { rate } }',  # noqa: E501
            victim_header=True,
        ),
    ]
    return cases + _subscription_cases()


EVENT_FIELDS = (
    "seq type transactionId accountIds categoryIds transaction { id payee narration }"
    " accounts { id name balance { amount } }"
)
CHANGE_FIELDS = "seq kind transactionId transaction { id payee narration notes }"
BALANCE_FIELDS = "seq accounts { id name number balance { amount } }"


def _subscription_cases() -> list[Attack]:
    """Run over a real WebSocket (`_run_subscription`): the victim then posts, edits and
    deletes a marked transaction, and nothing of it may reach the attacker."""
    events = f"subscription($s: Int) {{ workspaceEvents(since: $s) {{ {EVENT_FIELDS} }} }}"
    balances = (
        f"subscription($a: [ID!]) {{ balanceUpdated(accountIds: $a) {{ {BALANCE_FIELDS} }} }}"
    )
    changes = (
        "subscription($f: TransactionFilter) { transactionsChanged(filter: $f) "
        f"{{ {CHANGE_FIELDS} }} }}"
    )
    cases = []
    for name, query in (
        ("workspaceEvents", events),
        ("balanceUpdated", balances),
        ("transactionsChanged", changes),
    ):
        cases += [
            Attack(name, "own workspace: nothing of the victim's shows", query),
            Attack(name, "the victim's workspace in connection_init", query, victim_header=True),
        ]
    answer = (
        "subscription($id: ID!) { advisorAnswer(messageId: $id) { kind text "
        "message { id content citations { transactionId } } } }"
    )
    return [
        *cases,
        Attack(
            "advisorAnswer",
            "the victim's answer id",
            answer,
            lambda ids: {"id": ids["advisor_message"]},
        ),
        Attack(
            "advisorAnswer",
            "the victim's answer id + the victim's workspace",
            answer,
            lambda ids: {"id": ids["advisor_message"]},
            victim_header=True,
        ),
        Attack("workspaceEvents", "since 0: the whole history", events, lambda ids: {"s": 0}),
        Attack(
            "workspaceEvents",
            "since 0 + the victim's workspace",
            events,
            lambda ids: {"s": 0},
            victim_header=True,
        ),
        Attack(
            "balanceUpdated",
            "the victim's account ids",
            balances,
            lambda ids: {"a": [ids["account"], ids["account_raw"]]},
        ),
        Attack(
            "balanceUpdated",
            "own and the victim's account ids",
            balances,
            lambda ids: {"a": [ids["own_account"], ids["account"]]},
        ),
        Attack(
            "transactionsChanged",
            "a filter on the victim's account",
            changes,
            lambda ids: {"f": {"accountIds": [ids["account"]]}},
        ),
        Attack(
            "transactionsChanged",
            "a filter on the victim's category and tag",
            changes,
            lambda ids: {"f": {"categoryIds": [ids["category"]], "tagIds": [ids["tag"]]}},
        ),
        Attack(
            "transactionsChanged",
            "a text filter on the victim's marker",
            changes,
            lambda ids: {"f": {"text": MARK}},
        ),
    ]


CASES = _cases()


def _root_fields() -> set[str]:
    names: set[str] = set()
    for root in (
        schema._schema.query_type,
        schema._schema.mutation_type,
        schema._schema.subscription_type,
    ):
        if root is not None:
            names |= set(root.fields)
    return names


def test_every_root_field_is_attacked() -> None:
    missing = _root_fields() - {case.field for case in CASES}
    assert not missing, f"add attack cases for: {sorted(missing)}"


SNAPSHOT = """{
  workspace { id name members { role user { id name email } } }
  accounts(includeArchived: true) { id name archived balance { amount currency } }
  categories { id name }
  tags { id name }
  fxRates { base quote rate date }
  budgets { category { id } amount { amount currency } }
  transactions(first: 100) { edges { node { id payee narration amount { amount } } } }
  apiTokens { id name revokedAt }
  advisorThreads { id title messages { id role content } }
}"""


@dataclass
class Household:
    client: Client
    ids: Ids = field(default_factory=dict)


async def _victim(make_client: Callable[[], Client]) -> Household:
    victim = Household(make_client())
    session = await register(victim.client, name="Victim")
    client = victim.client
    await client.ok("mutation($n: String!) { createWorkspace(name: $n) { id } }", n=f"{MARK} spare")
    account = await create_account(client, name=f"{MARK} vault", opening="1000", number="12345678")
    second = await create_account(client, name=f"{MARK} second", opening="10")
    category = (
        await client.ok(
            "mutation($n: String!) { createCategory(input: {name: $n, kind: EXPENSE}) { id } }",
            n=f"{MARK} category",
        )
    )["createCategory"]["id"]
    await client.ok(
        'mutation($c: ID!) { setBudget(categoryId: $c, amount: "4200") { amount { amount } } }',
        c=category,
    )
    key = f"victim-key-{uuid.uuid4().hex}"
    transaction = await post(
        client,
        account,
        category,
        "-42.00",
        payee=f"{MARK} payee",
        narration=f"{MARK} narration",
        tags=[f"{MARK}-tag"],
        key=key,
    )
    await post(client, account, category, "-7.00", payee=f"{MARK} payee 2")
    transfer = (
        await client.ok(
            TRANSFER,
            i={
                "fromAccountId": account,
                "toAccountId": second,
                "date": "2025-03-12",
                "amount": "5",
                "payee": f"{MARK} move",
            },
            k=uuid.uuid4().hex,
        )
    )["transfer"]["id"]
    await client.ok(
        'mutation { setFxRate(base: "USD", quote: "INR", date: "2025-03-01", rate: "83.1")'
        " { rate } }"
    )
    api_token = (
        await client.ok(
            "mutation($n: String!) { createApiToken(name: $n, scope: WRITE) { apiToken { id } } }",
            n=f"{MARK} script",
        )
    )["createApiToken"]["apiToken"]["id"]
    asked = (
        await client.ok(
            "mutation($q: String!) { askAdvisor(question: $q) { thread { id } answer { id } } }",
            q=f"{MARK} how much did we spend?",
        )
    )["askAdvisor"]
    tags = (await client.ok("{ tags { id name } }"))["tags"]
    page = (await client.ok("{ transactions(first: 1) { edges { cursor } } }"))["transactions"]
    invitation = (
        await client.ok(
            "mutation($e: String!) { inviteMember(email: $e, role: MEMBER) { token } }",
            e=f"friend-{uuid.uuid4().hex[:8]}@example.com",
        )
    )["inviteMember"]["token"]
    victim.ids = {
        "workspace": session["workspaces"][0]["id"],
        "user": session["user"]["id"],
        "email": session["email"],
        "account": account,
        "account_raw": str(uuid.UUID(bytes=bytes(16))),
        "category": category,
        "tag": tags[0]["id"],
        "transaction": transaction,
        "transfer": transfer,
        "cursor": page["edges"][0]["cursor"],
        "idempotency_key": key,
        "invitation_token": invitation,
        "api_token": api_token,
        "advisor_thread": asked["thread"]["id"],
        "advisor_message": asked["answer"]["id"],
    }
    # the "guessed" raw uuid is the victim account's own uuid, without the relay wrapper
    victim.ids["account_raw"] = str(decode_id(account, "Account"))
    return victim


async def _attacker(make_client: Callable[[], Client], victim: Household) -> Household:
    attacker = Household(make_client())
    session = await register(attacker.client, name="Attacker")
    client = attacker.client
    account = await create_account(client, name="Mine", opening="500")
    account2 = await create_account(client, name="Mine too", opening="5")
    categories = {
        c["name"]: c["id"] for c in (await client.ok("{ categories { id name } }"))["categories"]
    }
    own = await post(client, account, categories["Groceries"], "-3.00", payee="Mine")
    attacker.ids = {
        "own_account": account,
        "own_account2": account2,
        "own_category": categories["Groceries"],
        "own_transaction": own,
        "attacker_email": session["email"],
    }
    return attacker


INVALID = {"GRAPHQL_VALIDATION_FAILED", "GRAPHQL_PARSE_FAILED"}


def _leaks(body: dict[str, Any], victim_ids: Ids) -> list[str]:
    codes = {e.get("extensions", {}).get("code") for e in body.get("errors") or []}
    assert not codes & INVALID, f"an attack must be a valid operation: {body['errors']}"
    text = json.dumps(body)
    found = [f"marker {MARK}"] if MARK in text else []
    data = json.dumps(body.get("data"))
    for name in VICTIM_IDS:
        if victim_ids[name] in data:
            found.append(f"victim {name} id in data")
    if victim_ids["invitation_token"] in text:
        found.append("invitation token")
    return found


REFUSED = {"NOT_FOUND", "FORBIDDEN", "UNAUTHENTICATED", "BAD_USER_INPUT", "CONFLICT"}


def _is_read(case: Attack) -> bool:
    return not case.query.lstrip().startswith("mutation")


def _is_subscription(case: Attack) -> bool:
    return case.query.lstrip().startswith("subscription")


def _token(client: Client) -> str:
    cookies = client.http.cookies
    token = cookies.get("__Host-ww_access") or cookies.get("ww_access")
    assert token
    return token


async def _subscribe_all(
    base: str, client: Client, cases: list[Attack], ids: Ids, act: Callable[[], Awaitable[object]]
) -> list[dict[str, Any]]:
    """Open one connection per case, let `act` run, and gather what each case received
    (as a response body: `data` is the list of its events' data)."""
    token = _token(client)
    async with contextlib.AsyncExitStack() as stack:
        sockets: list[GraphQLWS | dict[str, Any]] = []
        for case in cases:
            ws = await stack.enter_async_context(GraphQLWS.open(base))
            payload = {"token": token}
            if case.victim_header:
                payload["workspaceId"] = ids["workspace"]
            try:
                await ws.init(payload)
            except Closed as refused:
                sockets.append(
                    {
                        "errors": [
                            {
                                "extensions": {"code": "UNAUTHENTICATED"},
                                "message": f"closed {refused.code}",
                            }
                        ]
                    }
                )
                continue
            await ws.subscribe("attack", case.query, case.variables(ids))
            sockets.append(ws)
        await asyncio.sleep(0.5)  # every subscription is live
        await act()
        await asyncio.sleep(1.5)  # the relay's poll, the fan-out, the re-reads
        bodies: list[dict[str, Any]] = []
        for ws in sockets:
            if isinstance(ws, dict):
                bodies.append(ws)
                continue
            body: dict[str, Any] = {"data": [], "errors": []}
            while not await ws.silent("attack", 0.05):
                message = await ws.message("attack")
                if message["type"] == "next":
                    body["data"].append(message["payload"].get("data"))
                    body["errors"] += message["payload"].get("errors") or []
                elif message["type"] == "error":
                    body["errors"] += message["payload"]
                else:
                    break
            bodies.append(body)
        return bodies


async def _victim_activity(victim: Household) -> None:
    """A marked transaction posted, edited and deleted, on the victim's accounts."""
    client = victim.client
    transaction = await post(
        client,
        victim.ids["account"],
        victim.ids["category"],
        "-9.00",
        payee=f"{MARK} live payee",
        narration=f"{MARK} live narration",
        tags=[f"{MARK}-tag"],
    )
    await client.ok(
        "mutation($id: ID!, $i: TransactionInput!, $k: String!) { editTransaction(id: $id, "
        "input: $i, idempotencyKey: $k) { id } }",
        id=transaction,
        i=_tx_input(victim.ids["account"], victim.ids["category"], payee=f"{MARK} edited", tags=[]),
        k=uuid.uuid4().hex,
    )
    await client.ok(
        "mutation($id: ID!, $k: String!) { deleteTransaction(id: $id, idempotencyKey: $k) { id } }",
        id=transaction,
        k=uuid.uuid4().hex,
    )


async def _run(client: Client, case: Attack, ids: Ids) -> dict[str, Any]:
    client.headers.pop("X-Workspace-ID", None)
    if case.victim_header:
        client.use_workspace(ids["workspace"])
    try:
        return await client.execute(case.query, **case.variables(ids))
    finally:
        client.headers.pop("X-Workspace-ID", None)


async def test_a_second_workspace_member_reaches_nothing_of_the_first(
    make_client: Callable[[], Client], services: AppServices
) -> None:
    victim = await _victim(make_client)
    attacker = await _attacker(make_client, victim)
    before = await victim.client.ok(SNAPSHOT)
    ids = {**victim.ids, **attacker.ids}
    succeeded: list[str] = []
    # Reads first (the baseline of each is the same read without the victim's header),
    # then writes; the attacker signs in again whenever a case ended its own session.
    for case in sorted(
        (c for c in CASES if not _is_subscription(c)), key=lambda c: not _is_read(c)
    ):
        body = await _run(attacker.client, case, ids)
        leaks = _leaks(body, victim.ids)
        if case.victim_header and _is_read(case) and not body.get("errors"):
            # Aggregates carry no marker: with the victim's header a read must either be
            # refused or show exactly what the attacker sees of its own workspace.
            baseline = await attacker.client.execute(case.query, **case.variables(ids))
            if body != baseline:
                leaks.append("answered for the victim's workspace")
        if case.victim_header and not _is_read(case) and case.field not in NO_TENANT:
            codes = {e["extensions"].get("code") for e in body.get("errors") or []}
            if not codes & REFUSED:
                leaks.append(f"a write under the victim's header was not refused: {body}")
        if leaks:
            succeeded.append(f"{case.field} ({case.what}): {leaks}")
        if (await attacker.client.execute("{ me { user { id } } }")).get("errors"):
            await attacker.client.ok(LOGIN, e=attacker.ids["attacker_email"], p=PASSWORD)
    after = await victim.client.ok(SNAPSHOT)  # the victim's own session still works
    assert after == before, "the victim's workspace changed"
    # Subscriptions, all open at once while the victim's ledger moves.
    subscriptions = [c for c in CASES if _is_subscription(c)]
    async with serving(services) as base:
        bodies = await _subscribe_all(
            base, attacker.client, subscriptions, ids, lambda: _victim_activity(victim)
        )
    for case, body in zip(subscriptions, bodies, strict=True):
        if case.victim_header and not body.get("errors"):
            leaks = ["connected to the victim's workspace"]
        else:
            leaks = _leaks(body, victim.ids)
        if leaks:
            succeeded.append(f"{case.field} ({case.what}): {leaks}")
    print(
        f"\nattack suite: {len(CASES)} cases over {len(_root_fields())} root fields, "
        f"{len(succeeded)} succeeded"
    )
    assert succeeded == []
    assert len(CASES) >= 60


# Mutations that act on the caller, not on a workspace: the header means nothing to them.
NO_TENANT = {"logout", "logoutEverywhere", "createWorkspace", "register", "login"}
LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { user { id } } }"


async def test_the_leak_detector_sees_the_victims_own_view(
    make_client: Callable[[], Client], services: AppServices
) -> None:
    """The oracle can fail: the read attacks, run by the victim on its own workspace,
    find the victim's markers and ids (subscriptions too, over a real WebSocket)."""
    victim = await _victim(make_client)
    attacker = await _attacker(make_client, victim)
    ids = {**victim.ids, **attacker.ids}
    reads = [
        c for c in CASES if _is_read(c) and not _is_subscription(c) and c.field not in AGGREGATES
    ]
    blind = [c.what for c in reads if not _leaks(await _run(victim.client, c, ids), victim.ids)]
    # A type-confused id is refused for its owner too.
    assert blind == ["a transaction's id as an account id"], blind
    subscriptions = [c for c in CASES if _is_subscription(c)]
    # The victim's own workspace, the victim's own ids.
    own = {**ids, "own_account": ids["account"], "workspace": ids["workspace"]}
    async with serving(services) as base:
        bodies = await _subscribe_all(
            base, victim.client, subscriptions, own, lambda: _victim_activity(victim)
        )
    blind = [
        f"{c.field} ({c.what})"
        for c, body in zip(subscriptions, bodies, strict=True)
        if not _leaks(body, victim.ids)
    ]
    assert blind == [], blind


# Numbers only (covered by the baseline rule), or public configuration.
AGGREGATES = {"cashflow", "netWorth", "fxRates", "loginProviders"}
