"""Authorization: every root field is guarded, and every mutation is tried as every caller.

The matrix is read from the schema itself: a mutation without a row in `MATRIX` fails the
test, so a new mutation needs one line here saying who may call it. A refused call must
answer the expected code and change nothing in the database (a full snapshot, compared).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlmodel import SQLModel

from api.app import build_services, create_app
from domain.core.settings import Settings
from schema import schema
from schema.context import AppServices
from tests.graphql import PASSWORD, Client, category_ids, create_account, post, register
from tests.schema.roles import ACCEPT, CREATE_TOKEN, INVITE, owner_session

# Root fields anyone may call, each with the reason it needs no permission class.
PUBLIC = {
    "Mutation.register": "creates the caller's account",
    "Mutation.login": "checks a password",
    "Mutation.refreshSession": "authenticated by its refresh-token cookie",
    "Query.node": "each type's resolve_nodes checks the caller (tenant or the user itself)",
    "Query.loginProviders": "the configured sign-in providers' names and login URLs",
}


def _root_fields() -> dict[str, list[type]]:
    found: dict[str, list[type]] = {}
    for type_name in ("Query", "Mutation", "Subscription"):
        definition = schema.get_type_by_name(type_name)
        if definition is None and type_name == "Subscription":
            continue
        assert definition is not None and hasattr(definition, "fields")
        for strawberry_field in definition.fields:
            name = schema.config.name_converter.get_graphql_name(strawberry_field)
            found[f"{type_name}.{name}"] = list(strawberry_field.permission_classes)
    return found


def test_every_root_field_has_a_permission_class_or_is_listed_as_public() -> None:
    fields = _root_fields()
    unguarded = sorted(name for name, classes in fields.items() if not classes)
    assert unguarded == sorted(PUBLIC), "guard it with a permission class (schema/common.py)"
    assert all(not fields[name] for name in PUBLIC)


class Caller(enum.StrEnum):
    OWNER = "owner"
    MEMBER = "member"
    VIEWER = "viewer"
    STRANGER = "stranger"  # signed in, not a member of the workspace
    ANONYMOUS = "anonymous"
    READ_TOKEN = "read token"  # created by the owner
    WRITE_TOKEN = "write token"  # created by the owner


PEOPLE = frozenset({Caller.OWNER, Caller.MEMBER, Caller.VIEWER, Caller.STRANGER})
WRITERS = frozenset({Caller.OWNER, Caller.MEMBER, Caller.WRITE_TOKEN})
EVERYONE = frozenset(Caller)
TOKENS = frozenset({Caller.READ_TOKEN, Caller.WRITE_TOKEN})


def default_code(caller: Caller) -> str:
    if caller is Caller.ANONYMOUS:
        return "UNAUTHENTICATED"
    if caller is Caller.STRANGER:
        return "NOT_FOUND"  # a foreign workspace looks like an unknown one
    return "FORBIDDEN"


Arguments = Callable[["World", Caller], Awaitable[dict[str, Any]]]


def fixed(**variables: Any) -> Arguments:
    async def arguments(_world: World, _caller: Caller) -> dict[str, Any]:
        return variables

    return arguments


@dataclass(frozen=True)
class Row:
    document: str
    allowed: frozenset[Caller]
    arguments: Arguments = field(default_factory=fixed)
    codes: dict[Caller, str] = field(default_factory=dict)  # refusals other than the default
    signs_out: bool = False  # an allowed call ends the caller's session

    def expected_code(self, caller: Caller) -> str:
        return self.codes.get(caller, default_code(caller))


def _keyed(field_name: str, input_type: str, *, edit: bool = False) -> str:
    """A money-moving mutation document: `$i` input, `$k` idempotency key (`$id` to edit)."""
    if edit:
        return (
            f"mutation($id: ID!, $i: {input_type}!, $k: String!) "
            f"{{ {field_name}(id: $id, input: $i, idempotencyKey: $k) {{ id }} }}"
        )
    return (
        f"mutation($i: {input_type}!, $k: String!) "
        f"{{ {field_name}(input: $i, idempotencyKey: $k) {{ id }} }}"
    )


TX = _keyed("postTransaction", "TransactionInput")
TRANSFER = _keyed("transfer", "TransferInput")
JOURNAL = _keyed("postJournalEntry", "JournalEntryInput")
LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { user { id } } }"
REGISTER = (
    "mutation($e: String!, $p: String!) "
    '{ register(email: $e, password: $p, name: "N") { user { id } } }'
)

MATRIX: dict[str, Row] = {
    "register": Row(REGISTER, EVERYONE, lambda w, c: w.new_email_and_password()),
    "login": Row(LOGIN, EVERYONE, lambda w, c: w.owner_email_and_password()),
    "refreshSession": Row(
        "mutation { refreshSession { user { id } } }",
        PEOPLE,
        codes={Caller.READ_TOKEN: "UNAUTHENTICATED", Caller.WRITE_TOKEN: "UNAUTHENTICATED"},
        signs_out=True,
    ),
    "logout": Row("mutation { logout { sessionsEnded } }", PEOPLE, signs_out=True),
    "logoutEverywhere": Row(
        "mutation { logoutEverywhere { sessionsEnded } }", PEOPLE, signs_out=True
    ),
    "createWorkspace": Row('mutation { createWorkspace(name: "Side") { id } }', PEOPLE),
    "inviteMember": Row(INVITE, frozenset({Caller.OWNER}), lambda w, c: w.invitee()),
    "acceptInvitation": Row(ACCEPT, PEOPLE, lambda w, c: w.invitation_for(c)),
    "createAccount": Row(
        "mutation($i: CreateAccountInput!) { createAccount(input: $i) { id } }",
        WRITERS,
        fixed(i={"name": "New", "kind": "CASH", "currency": "INR"}),
    ),
    "updateAccount": Row(
        'mutation($id: ID!) { updateAccount(id: $id, input: {name: "Renamed"}) { id } }',
        WRITERS,
        lambda w, c: w.account_id(),
    ),
    "createCategory": Row(
        "mutation($i: CreateCategoryInput!) { createCategory(input: $i) { id } }",
        WRITERS,
        lambda w, c: w.new_category(),
    ),
    "postTransaction": Row(TX, WRITERS, lambda w, c: w.transaction_input()),
    "transfer": Row(TRANSFER, WRITERS, lambda w, c: w.transfer_input()),
    "postJournalEntry": Row(JOURNAL, WRITERS, lambda w, c: w.journal_input()),
    "editTransaction": Row(
        _keyed("editTransaction", "TransactionInput", edit=True),
        WRITERS,
        lambda w, c: w.existing(TX, w.transaction_input),
    ),
    "editTransfer": Row(
        _keyed("editTransfer", "TransferInput", edit=True),
        WRITERS,
        lambda w, c: w.existing(TRANSFER, w.transfer_input),
    ),
    "editJournalEntry": Row(
        _keyed("editJournalEntry", "JournalEntryInput", edit=True),
        WRITERS,
        lambda w, c: w.existing(JOURNAL, w.journal_input),
    ),
    "deleteTransaction": Row(
        "mutation($id: ID!, $k: String!) { deleteTransaction(id: $id, idempotencyKey: $k) { id } }",
        WRITERS,
        lambda w, c: w.transaction_to_delete(),
    ),
    "setFxRate": Row(
        'mutation { setFxRate(base: "USD", quote: "INR", date: "2025-01-31", rate: "83.10") '
        "{ rate } }",
        WRITERS,
    ),
    "setBudget": Row(
        'mutation($c: ID!) { setBudget(categoryId: $c, amount: "5000") { amount { amount } } }',
        WRITERS,
        lambda w, c: w.category("Groceries"),
    ),
    "askAdvisor": Row(
        'mutation { askAdvisor(question: "How much did we spend last month?") { answer { id } } }',
        frozenset({Caller.OWNER, Caller.MEMBER, Caller.VIEWER}),
    ),
    "removeBudget": Row(
        "mutation($c: ID!) { removeBudget(categoryId: $c) }",
        WRITERS,
        lambda w, c: w.budget_to_remove(),
    ),
    "createApiToken": Row(
        CREATE_TOKEN,
        frozenset({Caller.OWNER, Caller.MEMBER, Caller.VIEWER}),
        fixed(n="cron", s="READ", d=30),
    ),
    "revokeApiToken": Row(
        "mutation($id: ID!) { revokeApiToken(id: $id) { id } }",
        frozenset({Caller.OWNER, Caller.MEMBER}),  # a member's token: its creator or an owner
        lambda w, c: w.members_token(),
        codes={Caller.VIEWER: "NOT_FOUND"},
    ),
    "sealAuditLog": Row("mutation { sealAuditLog { seq } }", frozenset({Caller.OWNER})),
}

# Columns that change on a refused call by design (bookkeeping, not data); "*": the whole
# table (the audit trail records refused attempts too).
VOLATILE: dict[str, set[str]] = {
    "api_tokens": {"last_used_at"},
    "audit_events": {"*"},
    "audit_heads": {"*"},
}


def test_the_matrix_has_a_row_for_every_mutation_and_no_stale_rows() -> None:
    mutations = {name.split(".", 1)[1] for name in _root_fields() if name.startswith("Mutation.")}
    assert sorted(mutations - MATRIX.keys()) == [], "add a row to MATRIX for each mutation"
    assert sorted(MATRIX.keys() - mutations) == [], "remove the rows of removed mutations"


class World:
    """One workspace with a person per role, a stranger, two tokens of its owner and the
    accounts and categories the mutations need; credentials are renewed after sign-outs."""

    def __init__(self, app: Any, services: AppServices) -> None:
        self.app, self.services = app, services
        self.emails: dict[Caller, str] = {}
        self.credentials: dict[Caller, tuple[str, str]] = {}
        self.tokens: dict[Caller, str] = {}
        self.workspace_id = ""
        self.accounts: list[str] = []
        self.categories: dict[str, str] = {}
        self._opened: list[httpx.AsyncClient] = []
        self.inviter = self.client()  # owns another workspace; invites callers to it

    def client(self) -> Client:
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="https://wealthwise.test"
        )
        self._opened.append(http)
        return Client(http)

    async def close(self) -> None:
        for http in self._opened:
            await http.aclose()

    async def sign_in(self, email: str) -> tuple[str, str]:
        client = self.client()
        await client.ok(LOGIN, e=email, p=PASSWORD)
        access = client.http.cookies.get("__Host-ww_access")
        refresh = client.http.cookies.get("__Host-ww_refresh")
        assert access and refresh
        return access, refresh

    async def renew_credentials(self, *callers: Caller) -> None:
        for caller in callers or PEOPLE:
            self.credentials[caller] = await self.sign_in(self.emails[caller])

    def as_caller(self, caller: Caller) -> Client:
        client = self.client()
        client.use_workspace(self.workspace_id)
        if caller in PEOPLE:
            access, refresh = self.credentials[caller]
            client.headers["Authorization"] = f"Bearer {access}"
            client.http.cookies.set("__Host-ww_refresh", refresh, domain="wealthwise.test")
        elif caller in TOKENS:
            client.headers["Authorization"] = f"Bearer {self.tokens[caller]}"
        return client

    async def build(self) -> None:
        people = {}
        for caller in (Caller.OWNER, Caller.MEMBER, Caller.VIEWER, Caller.STRANGER):
            client = self.client()
            session = await register(client, name=caller.value.capitalize())
            self.emails[caller] = session["email"]
            people[caller] = (client, session)
        owner = people[Caller.OWNER][0]
        self.workspace_id = people[Caller.OWNER][1]["workspaces"][0]["id"]
        for caller in (Caller.MEMBER, Caller.VIEWER):
            role = "MEMBER" if caller is Caller.MEMBER else "VIEWER"
            invited = await owner.ok(INVITE, e=self.emails[caller], r=role)
            await people[caller][0].ok(ACCEPT, t=invited["inviteMember"]["token"])
        await register(self.inviter, name="Inviter")
        self.accounts = [await create_account(owner, name=n) for n in ("HDFC", "Cash")]
        self.categories = await category_ids(owner)
        for caller, scope in ((Caller.READ_TOKEN, "READ"), (Caller.WRITE_TOKEN, "WRITE")):
            created = await owner.ok(CREATE_TOKEN, n=caller.value, s=scope, d=None)
            self.tokens[caller] = created["createApiToken"]["token"]
        await self.renew_credentials()

    # Arguments of the rows: each call sets up what it needs as the owner (or the member).
    async def new_email_and_password(self) -> dict[str, Any]:
        return {"e": f"new-{uuid.uuid4().hex[:10]}@example.com", "p": PASSWORD}

    async def owner_email_and_password(self) -> dict[str, Any]:
        return {"e": self.emails[Caller.OWNER], "p": PASSWORD}

    async def invitee(self) -> dict[str, Any]:
        return {"e": f"invitee-{uuid.uuid4().hex[:10]}@example.com", "r": "VIEWER"}

    async def invitation_for(self, caller: Caller) -> dict[str, Any]:
        """An invitation to another workspace, addressed to the caller when it is a person
        (tokens and anonymous callers are refused before the address matters)."""
        email = self.emails.get(caller) or (await self.new_email_and_password())["e"]
        invited = await self.inviter.ok(INVITE, e=email, r="VIEWER")
        return {"t": invited["inviteMember"]["token"]}

    async def account_id(self) -> dict[str, Any]:
        return {"id": self.accounts[0]}

    async def new_category(self) -> dict[str, Any]:
        return {"i": {"name": f"Cat {uuid.uuid4().hex[:8]}", "kind": "EXPENSE"}}

    async def category(self, name: str) -> dict[str, Any]:
        return {"c": self.categories[name]}

    async def budget_to_remove(self) -> dict[str, Any]:
        """A budget the owner has just set: a refused removal must leave it in place."""
        await self.as_caller(Caller.OWNER).ok(
            'mutation($c: ID!) { setBudget(categoryId: $c, amount: "900") { amount { amount } } }',
            c=self.categories["Dining out"],
        )
        return {"c": self.categories["Dining out"]}

    async def transaction_input(self) -> dict[str, Any]:
        return {
            "i": {
                "accountId": self.accounts[0],
                "categoryId": self.categories["Groceries"],
                "amount": "-12.50",
                "date": "2025-02-01",
            },
            "k": uuid.uuid4().hex,
        }

    async def transfer_input(self) -> dict[str, Any]:
        return {
            "i": {
                "fromAccountId": self.accounts[0],
                "toAccountId": self.accounts[1],
                "amount": "40",
                "date": "2025-02-02",
            },
            "k": uuid.uuid4().hex,
        }

    async def journal_input(self) -> dict[str, Any]:
        postings = [
            {"amount": "5", "currency": "INR", "accountId": self.accounts[1]},
            {"amount": "-5", "currency": "INR", "categoryId": self.categories["Salary"]},
        ]
        return {"i": {"date": "2025-02-03", "postings": postings}, "k": uuid.uuid4().hex}

    async def existing(
        self, document: str, make: Callable[[], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        """A fresh row made by the owner, and new valid input for it."""
        created = await self.as_caller(Caller.OWNER).ok(document, **await make())
        row_id = next(iter(created.values()))["id"]
        return {"id": row_id, **await make()}

    async def transaction_to_delete(self) -> dict[str, Any]:
        owner = self.as_caller(Caller.OWNER)
        transaction = await post(owner, self.accounts[0], self.categories["Groceries"], "-3")
        return {"id": transaction, "k": uuid.uuid4().hex}

    async def members_token(self) -> dict[str, Any]:
        member = self.as_caller(Caller.MEMBER)
        created = await member.ok(CREATE_TOKEN, n="member's", s="READ", d=None)
        return {"id": created["createApiToken"]["apiToken"]["id"]}

    async def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table (minus bookkeeping columns), in a stable order."""
        tables: dict[str, list[tuple[Any, ...]]] = {}
        async with owner_session(self.services.settings) as session:
            for table in SQLModel.metadata.sorted_tables:
                skip = VOLATILE.get(table.name, set())
                if "*" in skip:
                    continue
                columns = [column for column in table.columns if column.name not in skip]
                rows = (await session.execute(select(*columns))).all()
                tables[table.name] = sorted((tuple(row) for row in rows), key=repr)
        # Blind snapshots (say, row-level security hiding every row) would prove nothing.
        assert tables["accounts"] and tables["memberships"] and tables["api_tokens"]
        return tables


@pytest.fixture
async def world(fresh_database: Settings) -> AsyncIterator[World]:
    services = build_services(fresh_database)
    built = World(create_app(services.settings, services), services)
    await built.build()
    yield built
    await built.close()
    await services.engine.dispose()


def _outcome(body: dict[str, Any]) -> str:
    errors = body.get("errors") or []
    return str(errors[0].get("extensions", {}).get("code")) if errors else "OK"


async def test_every_mutation_as_every_caller(world: World) -> None:
    failures: list[str] = []
    attempts = 0
    for name, row in MATRIX.items():
        for caller in Caller:
            variables = await row.arguments(world, caller)
            allowed = caller in row.allowed
            before = None if allowed else await world.snapshot()
            body = await world.as_caller(caller).execute(row.document, **variables)
            attempts += 1
            outcome = _outcome(body)
            if allowed and outcome != "OK":
                failures.append(f"{name} as {caller}: expected success, got {body['errors']}")
            if not allowed:
                expected = row.expected_code(caller)
                if outcome != expected:
                    failures.append(f"{name} as {caller}: expected {expected}, got {outcome}")
                if body.get("data") not in (None, {name: None}):
                    failures.append(f"{name} as {caller}: refused but returned {body['data']}")
                if await world.snapshot() != before:
                    failures.append(f"{name} as {caller}: refused but changed the database")
            if allowed and row.signs_out:
                await world.renew_credentials(caller)
    assert failures == [], "\n".join(failures)
    assert attempts == len(MATRIX) * len(Caller)
