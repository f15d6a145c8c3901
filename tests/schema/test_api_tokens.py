"""API tokens: shown once, stored hashed, scoped to their workspace and their creator's role."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlmodel import col

from domain.core.models import as_utc, utcnow
from domain.identity.models import ApiToken, Membership
from schema.context import AppServices
from schema.ids import decode_id
from tests.graphql import create_account
from tests.schema.roles import (
    CREATE_TOKEN,
    api_token,
    bearer,
    household,
    owner_session,
    person,
)

ACCOUNTS = "{ accounts { name } }"
CREATE_ACCOUNT = (
    'mutation { createAccount(input: {name: "Script", kind: CASH, currency: "INR"}) { id } }'
)
TOKENS = "{ apiTokens { id name scope lastUsedAt revokedAt } }"
REVOKE = "mutation($id: ID!) { revokeApiToken(id: $id) { id revokedAt } }"


async def _row(services: AppServices, token_id: str) -> ApiToken:
    async with owner_session(services.settings) as session:
        row = await session.get(ApiToken, decode_id(token_id, "ApiToken"))
    assert row is not None
    return row


async def _set(services: AppServices, token_id: str, **values: Any) -> None:
    async with owner_session(services.settings) as session:
        await session.execute(
            update(ApiToken)
            .where(col(ApiToken.id) == decode_id(token_id, "ApiToken"))
            .values(**values)
        )


async def test_a_write_token_works_as_bearer_and_is_stored_only_as_a_hash(
    make_client: Any, services: AppServices
) -> None:
    home = await household(make_client)
    created = await api_token(home.owner, "WRITE", name="Nightly import")
    token = created["token"]
    assert token.startswith("wwt_") and created["apiToken"]["scope"] == "WRITE"
    script = bearer(make_client, token)
    await script.ok(CREATE_ACCOUNT)
    assert {"name": "Script"} in (await home.member.client.ok(ACCOUNTS))["accounts"]
    row = await _row(services, created["apiToken"]["id"])
    secret = token[37:]  # wwt_<32 hex id>_<secret>
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in repr(row)
    assert b"Nightly" not in row.name_enc
    # Sibling fields resolve concurrently and share the token's one check.
    both = await script.ok("{ accounts { name } categories { name } fxRates { rate } }")
    assert {"name": "Script"} in both["accounts"] and both["categories"]
    listed = (await home.owner.client.ok(TOKENS))["apiTokens"]
    assert [t["name"] for t in listed] == ["Nightly import"]
    assert listed[0]["lastUsedAt"] is not None
    assert "token" not in listed[0]


async def test_a_read_token_acts_as_a_viewer(make_client: Any) -> None:
    home = await household(make_client)
    await create_account(home.owner.client, name="HDFC")
    script = bearer(make_client, (await api_token(home.owner, "READ"))["token"])
    assert (await script.ok(ACCOUNTS))["accounts"] == [{"name": "HDFC"}]
    assert await script.code(CREATE_ACCOUNT) == "FORBIDDEN"
    assert (await home.owner.client.ok(ACCOUNTS))["accounts"] == [{"name": "HDFC"}]


async def test_a_write_token_of_an_owner_acts_as_a_member_not_an_owner(make_client: Any) -> None:
    home = await household(make_client)
    script = bearer(make_client, (await api_token(home.owner, "WRITE"))["token"])
    invite = 'mutation { inviteMember(email: "x@example.com", role: VIEWER) { token } }'
    assert await script.code(invite) == "FORBIDDEN"


async def test_a_token_cannot_be_moved_to_another_workspace_by_the_header(
    make_client: Any,
) -> None:
    home = await household(make_client)
    other = (await home.owner.client.ok('mutation { createWorkspace(name: "Side") { id } }'))[
        "createWorkspace"
    ]["id"]
    script = bearer(make_client, (await api_token(home.owner, "WRITE"))["token"])
    script.use_workspace(other)
    assert await script.code(ACCOUNTS) == "FORBIDDEN"
    assert await script.code(CREATE_ACCOUNT) == "FORBIDDEN"
    script.use_workspace(home.workspace_id)  # naming its own workspace is fine
    assert (await script.ok(ACCOUNTS))["accounts"] == []


async def test_a_revoked_token_is_refused_on_its_next_request(make_client: Any) -> None:
    home = await household(make_client)
    created = await api_token(home.member, "READ")
    script = bearer(make_client, created["token"])
    await script.ok(ACCOUNTS)
    revoked = await home.member.client.ok(REVOKE, id=created["apiToken"]["id"])
    assert revoked["revokeApiToken"]["revokedAt"] is not None
    assert await script.code(ACCOUNTS) == "UNAUTHENTICATED"


async def test_an_expired_token_is_refused(make_client: Any, services: AppServices) -> None:
    home = await household(make_client)
    created = await api_token(home.owner, "READ", expires_in_days=1)
    assert created["apiToken"]["expiresAt"] is not None
    script = bearer(make_client, created["token"])
    await script.ok(ACCOUNTS)
    await _set(services, created["apiToken"]["id"], expires_at=utcnow() - timedelta(seconds=1))
    assert await script.code(ACCOUNTS) == "UNAUTHENTICATED"


async def test_a_demoted_or_departed_creator_takes_the_tokens_power_down(
    make_client: Any, services: AppServices
) -> None:
    home = await household(make_client)
    script = bearer(make_client, (await api_token(home.member, "WRITE"))["token"])
    await script.ok(CREATE_ACCOUNT)
    member_id = decode_id(home.member.user_id, "User")
    workspace_id = decode_id(home.workspace_id, "Workspace")
    where = (col(Membership.user_id) == member_id, col(Membership.workspace_id) == workspace_id)
    async with owner_session(services.settings) as session:  # no demote mutation exists yet
        await session.execute(update(Membership).where(*where).values(role="viewer"))
    assert await script.code(CREATE_ACCOUNT) == "FORBIDDEN"
    await script.ok(ACCOUNTS)
    async with owner_session(services.settings) as session:
        await session.execute(delete(Membership).where(*where))
    assert await script.code(ACCOUNTS) == "UNAUTHENTICATED"


async def test_malformed_and_forged_tokens_are_refused(make_client: Any) -> None:
    home = await household(make_client)
    token = (await api_token(home.owner, "WRITE"))["token"]
    token_id, secret = token[4:36], token[37:]
    forged_secret = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    for forged in (
        "wwt_nothing",
        f"wwt_{token_id}_{forged_secret}",
        f"wwt_{uuid.uuid4().hex}_{secret}",
        f"wwt_{token_id}_{secret}x",
        token.upper(),
    ):
        assert await bearer(make_client, forged).code(ACCOUNTS) == "UNAUTHENTICATED", forged


async def test_tokens_cannot_manage_tokens_people_or_sessions(make_client: Any) -> None:
    home = await household(make_client)
    created = await api_token(home.owner, "WRITE")
    script = bearer(make_client, created["token"])
    for operation in (
        TOKENS,
        "{ me { user { name } } }",
        "mutation { logout { sessionsEnded } }",
        "mutation { logoutEverywhere { sessionsEnded } }",
        'mutation { createApiToken(name: "child", scope: WRITE) { token } }',
        'mutation { createWorkspace(name: "Mine") { id } }',
    ):
        assert await script.code(operation) == "FORBIDDEN", operation
    assert await script.code(REVOKE, id=created["apiToken"]["id"]) == "FORBIDDEN"
    assert len((await home.owner.client.ok(TOKENS))["apiTokens"]) == 1
    await script.ok(ACCOUNTS)  # neither the session nor the token was touched


async def test_a_viewer_may_create_only_read_tokens(make_client: Any) -> None:
    home = await household(make_client)
    error = await home.viewer.client.error(CREATE_TOKEN, n="x", s="WRITE", d=None)
    assert error["extensions"] == {"code": "FORBIDDEN", "field": "scope"}
    script = bearer(make_client, (await api_token(home.viewer, "READ"))["token"])
    await script.ok(ACCOUNTS)
    assert len((await home.viewer.client.ok(TOKENS))["apiTokens"]) == 1


async def test_bad_token_input_is_refused_and_creates_nothing(make_client: Any) -> None:
    home = await household(make_client)
    client = home.owner.client
    for name, days, field in (
        ("  ", None, "name"),
        ("x" * 121, None, "name"),
        ("ok", 0, "expiresInDays"),
        ("ok", 3651, "expiresInDays"),
    ):
        error = await client.error(CREATE_TOKEN, n=name, s="READ", d=days)
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": field}
    assert (await client.ok(TOKENS))["apiTokens"] == []


async def test_owners_see_and_revoke_every_token_others_only_their_own(make_client: Any) -> None:
    home = await household(make_client)
    owners = await api_token(home.owner, "READ", name="owner's")
    members = await api_token(home.member, "WRITE", name="member's")
    await api_token(home.viewer, "READ", name="viewer's")
    all_names = {t["name"] for t in (await home.owner.client.ok(TOKENS))["apiTokens"]}
    assert all_names == {"owner's", "member's", "viewer's"}
    mine = (await home.member.client.ok(TOKENS))["apiTokens"]
    assert [t["name"] for t in mine] == ["member's"]
    error = await home.member.client.error(REVOKE, id=owners["apiToken"]["id"])
    assert error["extensions"]["code"] == "NOT_FOUND"
    await bearer(make_client, owners["token"]).ok(ACCOUNTS)
    await home.owner.client.ok(REVOKE, id=members["apiToken"]["id"])
    assert await bearer(make_client, members["token"]).code(ACCOUNTS) == "UNAUTHENTICATED"
    stranger, _ = await person(make_client, "Eve")
    assert await stranger.client.code(REVOKE, id=owners["apiToken"]["id"]) == "NOT_FOUND"
    await bearer(make_client, owners["token"]).ok(ACCOUNTS)


async def test_last_used_is_written_at_most_once_a_minute(
    make_client: Any, services: AppServices
) -> None:
    home = await household(make_client)
    created = await api_token(home.owner, "READ")
    token_id = created["apiToken"]["id"]
    assert created["apiToken"]["lastUsedAt"] is None
    script = bearer(make_client, created["token"])
    await script.ok(ACCOUNTS)
    first = (await _row(services, token_id)).last_used_at
    await script.ok(ACCOUNTS)
    assert (await _row(services, token_id)).last_used_at == first
    earlier = utcnow() - timedelta(minutes=2)
    await _set(services, token_id, last_used_at=earlier)
    await script.ok(ACCOUNTS)
    latest = (await _row(services, token_id)).last_used_at
    assert latest is not None and as_utc(latest) > earlier + timedelta(minutes=1)


async def test_node_answers_for_the_tokens_you_may_list_and_null_otherwise(
    make_client: Any,
) -> None:
    home = await household(make_client)
    owners = await api_token(home.owner, "READ", name="owner's")
    token_id = owners["apiToken"]["id"]
    node = "query($id: ID!) { node(id: $id) { id ... on ApiToken { name scope } } }"
    found = await home.owner.client.ok(node, id=token_id)
    assert found["node"] == {"id": token_id, "name": "owner's", "scope": "READ"}
    assert (await home.member.client.ok(node, id=token_id))["node"] is None
    stranger, _ = await person(make_client, "Eve")
    assert (await stranger.client.ok(node, id=token_id))["node"] is None
    assert (await bearer(make_client, owners["token"]).ok(node, id=token_id))["node"] is None
