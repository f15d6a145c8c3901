"""Mutations, refusals, reads of transactions and sign-ins each leave the right event."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from typing import Any

from domain.audit.models import GENESIS
from domain.audit.signing import load_signer
from domain.audit.verify import verify_chains
from domain.core.db import bind_scope, unit_of_work
from schema.context import AppServices
from schema.ids import encode_id
from tests.audit.helpers import chain, join, system_events, user_of, workspace_of
from tests.graphql import PASSWORD, POST, category_ids, create_account, post, register
from tests.schema.roles import CREATE_TOKEN

LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { user { id } } }"


async def _ip(services: AppServices, workspace_id: uuid.UUID, event: Any) -> str:
    async with unit_of_work(services.engine, write=False) as session:
        await bind_scope(session, workspace_id=workspace_id)
        cipher = await services.keyring.cipher(session, workspace_id)
    return cipher.open_text(event.ip_enc, "audit_events", "ip", event.id)


async def test_a_mutation_writes_an_event_with_who_what_and_where(
    make_client: Any, services: AppServices
) -> None:
    client = make_client()
    session = await register(client)
    workspace = workspace_of(session)
    account = await create_account(client)
    groceries = (await category_ids(client))["Groceries"]
    client.headers["X-Request-ID"] = "req-post-1"
    posted = await post(client, account, groceries, "-120.00")

    events = await chain(services, workspace)
    assert [e.action for e in events] == ["mutation.createAccount", "mutation.postTransaction"]
    event = events[-1]
    assert (event.seq, event.outcome, event.actor_kind) == (2, "ok", "user")
    assert event.actor_id == user_of(session)
    assert event.request_id == "req-post-1"
    assert {account, groceries, posted} <= set(event.target_ids)
    assert event.ip_enc is not None and b"127.0.0.1" not in event.ip_enc
    assert await _ip(services, workspace, event) == "127.0.0.1"
    assert event.prev_hash == events[0].hash and events[0].prev_hash == GENESIS


async def test_refused_and_failed_mutations_are_recorded_and_change_nothing(
    make_client: Any, services: AppServices
) -> None:
    owner, viewer = make_client(), make_client()
    session = await register(owner)
    workspace = workspace_of(session)
    viewer_session = await join(owner, viewer, session["workspaces"][0]["id"], "VIEWER")
    account = await create_account(owner)
    groceries = (await category_ids(owner))["Groceries"]
    refused = {"accountId": account, "categoryId": groceries, "amount": "-5", "date": "2025-01-02"}
    assert await viewer.code(POST, i=refused, k="viewer-try") == "FORBIDDEN"
    bad = {**refused, "amount": "-5.001"}  # more decimals than INR has
    assert await owner.code(POST, i=bad, k="owner-try") == "BAD_USER_INPUT"

    events = await chain(services, workspace)
    denied, failed = events[-2], events[-1]
    assert (denied.action, denied.outcome) == ("mutation.postTransaction", "denied")
    assert denied.actor_id == user_of(viewer_session)
    assert account in denied.target_ids and groceries in denied.target_ids
    assert (failed.action, failed.outcome) == ("mutation.postTransaction", "failed")
    assert failed.actor_id == user_of(session)
    listed = await owner.ok("{ transactions { edges { node { id } } } }")
    assert listed["transactions"]["edges"] == []


async def test_reads_of_transactions_name_what_was_returned(
    make_client: Any, services: AppServices
) -> None:
    client = make_client()
    session = await register(client)
    workspace = workspace_of(session)
    account = await create_account(client)
    groceries = (await category_ids(client))["Groceries"]
    ids = [await post(client, account, groceries, "-1.00", date=f"2025-03-0{n}") for n in (1, 2, 3)]
    before = len(await chain(services, workspace))

    page = await client.ok("{ transactions(first: 2) { edges { node { amount { amount } } } } }")
    assert len(page["transactions"]["edges"]) == 2
    await client.ok("query($id: ID!) { transaction(id: $id) { id } }", id=ids[0])
    await client.ok("query($id: ID!) { node(id: $id) { id } }", id=ids[1])
    await client.ok("{ accounts { id } }")  # no transactions: no read event

    reads = (await chain(services, workspace))[before:]
    assert [e.action for e in reads] == ["read.transactions"] * 3
    assert reads[0].target_ids == [ids[2], ids[1]]  # the page, newest first
    assert reads[1].target_ids == [ids[0]] and reads[2].target_ids == [ids[1]]
    assert all(e.actor_id == user_of(session) and e.outcome == "ok" for e in reads)


async def test_sign_ins_go_to_the_system_chain(make_client: Any, services: AppServices) -> None:
    client = make_client()
    client.headers["X-Request-ID"] = request = f"reg-{uuid.uuid4().hex[:8]}"
    session = await register(client)
    user = user_of(session)
    stranger = make_client()
    stranger.headers["X-Request-ID"] = failed_request = f"bad-{uuid.uuid4().hex[:8]}"
    await stranger.code(LOGIN, e=session["email"], p="wrong-password-123")
    stranger.headers["X-Request-ID"] = ok_request = f"ok-{uuid.uuid4().hex[:8]}"
    await stranger.ok(LOGIN, e=session["email"], p=PASSWORD)
    stranger.headers["X-Request-ID"] = out_request = f"out-{uuid.uuid4().hex[:8]}"
    await stranger.ok("mutation { logout { sessionsEnded } }")
    client.headers["X-Request-ID"] = everywhere_request = f"all-{uuid.uuid4().hex[:8]}"
    await client.ok("mutation { logoutEverywhere { sessionsEnded } }")

    (registered,) = await system_events(services, request)
    assert (registered.action, registered.outcome, registered.actor_id) == (
        "auth.register",
        "ok",
        user,
    )
    (failed,) = await system_events(services, failed_request)
    assert (failed.action, failed.outcome) == ("auth.login_failed", "failed")
    assert failed.actor_id is None and failed.actor_kind == "anonymous"
    assert not any(session["email"] in target for target in failed.target_ids)
    (logged_in,) = await system_events(services, ok_request)
    assert (logged_in.action, logged_in.actor_id, logged_in.outcome) == ("auth.login", user, "ok")
    (logged_out,) = await system_events(services, out_request)
    assert (logged_out.action, logged_out.actor_id) == ("auth.logout", user)
    (everywhere,) = await system_events(services, everywhere_request)
    assert (everywhere.action, everywhere.actor_id) == ("auth.logout_everywhere", user)
    assert await chain(services, workspace_of(session)) == []  # nothing in the workspace


async def test_a_reused_refresh_token_is_recorded(make_client: Any, services: AppServices) -> None:
    client = make_client()
    await register(client)
    spent = client.http.cookies.get("__Host-ww_refresh")
    await client.ok("mutation { refreshSession { user { id } } }")
    client.http.cookies.set("__Host-ww_refresh", spent or "", domain="wealthwise.test")
    client.headers["X-Request-ID"] = request = f"reuse-{uuid.uuid4().hex[:8]}"
    assert await client.code("mutation { refreshSession { user { id } } }") == "UNAUTHENTICATED"
    (reuse,) = await system_events(services, request)
    assert (reuse.action, reuse.outcome) == ("auth.refresh_reuse", "failed")
    assert len(reuse.target_ids) == 1


async def test_concurrent_mutations_keep_the_chain_contiguous(
    make_client: Any, services: AppServices
) -> None:
    client = make_client()
    session = await register(client)
    workspace = workspace_of(session)
    account = await create_account(client)
    groceries = (await category_ids(client))["Groceries"]
    posted = await asyncio.gather(
        *(post(client, account, groceries, f"-{n}.00") for n in range(1, 13))
    )

    events = await chain(services, workspace)
    assert [e.seq for e in events] == list(range(1, 14))
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(events))
    assert {target for e in events[1:] for target in e.target_ids} >= set(posted)
    async with unit_of_work(services.engine, write=False) as db:
        await bind_scope(db, workspace_id=workspace)
        report = await verify_chains(db, await load_signer(db, services.keyring), workspace)
    assert report.ok and report.events == 13, report.summary()


AUDIT_LOG = """
query($first: Int, $after: String, $action: String, $actor: ID, $since: DateTime) {
  auditLog(first: $first, after: $after, action: $action, actorId: $actor, since: $since) {
    edges { cursor node { seq action outcome actorId actorKind targetIds ip } }
    pageInfo { hasNextPage endCursor }
  }
}"""


async def test_audit_log_is_for_owners_and_shows_only_their_workspace(make_client: Any) -> None:
    owner, member, viewer, other = make_client(), make_client(), make_client(), make_client()
    session = await register(owner)
    workspace = session["workspaces"][0]["id"]
    member_session = await join(owner, member, workspace, "MEMBER")
    await join(owner, viewer, workspace, "VIEWER")
    account = await create_account(member)
    await register(other)
    await create_account(other, name="Other bank")

    assert await member.code(AUDIT_LOG) == "FORBIDDEN"
    assert await viewer.code(AUDIT_LOG) == "FORBIDDEN"
    first = (await owner.ok(AUDIT_LOG, first=1))["auditLog"]
    (newest,) = first["edges"]
    # two invitations, then the account
    assert newest["node"]["seq"] == 3 and newest["node"]["action"] == "mutation.createAccount"
    assert newest["node"]["actorId"] == encode_id("User", user_of(member_session))
    assert account in newest["node"]["targetIds"] and newest["node"]["ip"] == "127.0.0.1"
    theirs = (await other.ok(AUDIT_LOG))["auditLog"]["edges"]
    assert [e["node"]["seq"] for e in theirs] == [1]
    assert account not in theirs[0]["node"]["targetIds"]
    assert await other.code(AUDIT_LOG, after=newest["cursor"]) == "BAD_USER_INPUT"


async def test_audit_log_pages_newest_first_and_filters(make_client: Any) -> None:
    owner = make_client()
    session = await register(owner)
    account = await create_account(owner)
    groceries = (await category_ids(owner))["Groceries"]
    for n in (1, 2, 3):
        await post(owner, account, groceries, f"-{n}.00")
    await owner.ok("{ transactions { edges { node { id } } } }")

    seen, after = [], None
    while True:
        page = (await owner.ok(AUDIT_LOG, first=2, after=after))["auditLog"]
        seen += [edge["node"]["seq"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [5, 4, 3, 2, 1]
    posts = (await owner.ok(AUDIT_LOG, action="mutation.postTransaction"))["auditLog"]["edges"]
    assert [e["node"]["seq"] for e in posts] == [4, 3, 2]
    mine = await owner.ok(AUDIT_LOG, actor=session["user"]["id"])
    assert len(mine["auditLog"]["edges"]) == 5
    later = await owner.ok(AUDIT_LOG, since="2999-01-01T00:00:00Z")
    assert later["auditLog"]["edges"] == []


SEAL = "mutation { sealAuditLog { seq headHash keyId signature } }"


async def test_owners_seal_their_chain_on_demand(make_client: Any, services: AppServices) -> None:
    owner, member = make_client(), make_client()
    session = await register(owner)
    workspace = workspace_of(session)
    await join(owner, member, session["workspaces"][0]["id"], "MEMBER")
    await create_account(owner)
    assert await member.code(SEAL) == "FORBIDDEN"

    sealed = (await owner.ok(SEAL))["sealAuditLog"]
    events = await chain(services, workspace)
    # the head as it was (the refusal included); the seal's own event comes after it
    assert [(e.action, e.outcome) for e in events] == [
        ("mutation.inviteMember", "ok"),
        ("mutation.createAccount", "ok"),
        ("mutation.sealAuditLog", "denied"),
        ("mutation.sealAuditLog", "ok"),
    ]
    assert sealed["seq"] == 3 and sealed["headHash"] == events[2].hash
    async with unit_of_work(services.engine, write=False) as db:
        await bind_scope(db, workspace_id=workspace)
        signer = await load_signer(db, services.keyring)
        report = await verify_chains(db, signer, workspace)
    assert sealed["keyId"] == signer.key_id
    assert report.ok and report.checkpoints == 1, report.summary()


async def test_an_api_tokens_mutation_names_the_token_as_actor_kind_and_its_creator(
    make_client: Any, services: AppServices
) -> None:
    person = make_client()
    session = await register(person)
    workspace, user = workspace_of(session), user_of(session)
    token = (await person.ok(CREATE_TOKEN, n="script", s="WRITE", d=None))["createApiToken"]
    script = make_client()
    script.headers["Authorization"] = f"Bearer {token['token']}"
    account = await create_account(script, name="From a script")
    event = (await chain(services, workspace))[-1]
    assert (event.action, event.outcome) == ("mutation.createAccount", "ok")
    assert (event.actor_kind, event.actor_id) == ("api_token", user)
    assert account in event.target_ids
