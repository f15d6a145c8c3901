"""Registration, login, cookies, refresh rotation, logout, workspaces and invitations."""

from __future__ import annotations

import uuid
from typing import Any

from tests.graphql import PASSWORD, REGISTER, Client, register

LOGIN = (
    """mutation($e: String!, $p: String!) { login(email: $e, password: $p) { user { name } } }"""
)
REFRESH = "mutation { refreshSession { user { name } } }"


def cookie(client: Client, name: str) -> str | None:
    return client.http.cookies.get(name)


async def test_register_sets_secure_http_only_cookies_and_me_answers(make_client: Any) -> None:
    client = make_client()
    response = await client.http.post(
        "/graphql",
        json={
            "query": REGISTER,
            "variables": {
                "email": "Mixed.Case@Example.com",
                "password": PASSWORD,
                "name": "Asha",
                "currency": "INR",
            },
        },
    )
    set_cookies = response.headers.get_list("set-cookie")
    assert len(set_cookies) == 2
    for header in set_cookies:
        assert header.startswith("__Host-ww_")  # served over TLS
        lowered = header.lower()
        assert "httponly" in lowered and "secure" in lowered and "samesite=strict" in lowered
        assert "path=/" in lowered
    me = await client.ok("{ me { user { email name } workspaces { name role baseCurrency } } }")
    assert me["me"]["user"] == {"email": "mixed.case@example.com", "name": "Asha"}
    assert me["me"]["workspaces"] == [
        {"name": "Asha's household", "role": "OWNER", "baseCurrency": "INR"}
    ]


async def test_login_is_refused_for_a_wrong_password_or_an_unknown_email(make_client: Any) -> None:
    client = make_client()
    session = await register(client)
    fresh = make_client()
    wrong = await fresh.error(LOGIN, e=session["email"], p="wrong-password-123")
    unknown = await fresh.error(LOGIN, e="nobody@example.com", p=PASSWORD)
    assert wrong["extensions"]["code"] == unknown["extensions"]["code"] == "UNAUTHENTICATED"
    assert wrong["message"] == unknown["message"]
    assert (await fresh.ok(LOGIN, e=session["email"].upper(), p=PASSWORD))["login"]["user"][
        "name"
    ] == "Asha"


async def test_registering_an_email_twice_is_a_conflict(make_client: Any) -> None:
    client = make_client()
    session = await register(client)
    again = make_client()
    error = await again.error(
        REGISTER, email=session["email"], password=PASSWORD, name="X", currency="INR"
    )
    assert error["extensions"] == {"code": "CONFLICT", "field": "email"}


async def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_session(
    make_client: Any,
) -> None:
    client = make_client()
    await register(client)
    first = cookie(client, "__Host-ww_refresh")
    await client.ok(REFRESH)
    second = cookie(client, "__Host-ww_refresh")
    assert first and second and first != second
    # An attacker replays the first (spent) token: the whole session ends.
    thief = make_client()
    thief.http.cookies.set("__Host-ww_refresh", first, domain="wealthwise.test")
    assert await thief.code(REFRESH) == "UNAUTHENTICATED"
    assert await client.code("{ me { user { name } } }") == "UNAUTHENTICATED"
    assert await client.code(REFRESH) == "UNAUTHENTICATED"


async def test_logout_invalidates_the_access_token_server_side(make_client: Any) -> None:
    client = make_client()
    await register(client)
    access = cookie(client, "__Host-ww_access")
    await client.ok("mutation { logout { sessionsEnded } }")
    replay = make_client()
    replay.headers["Authorization"] = f"Bearer {access}"
    assert await replay.code("{ me { user { name } } }") == "UNAUTHENTICATED"


async def test_logout_everywhere_ends_every_session_of_the_user(make_client: Any) -> None:
    laptop = make_client()
    session = await register(laptop)
    phone = make_client()
    await phone.ok(LOGIN, e=session["email"], p=PASSWORD)
    ended = await laptop.ok("mutation { logoutEverywhere { sessionsEnded } }")
    assert ended["logoutEverywhere"]["sessionsEnded"] == 2
    assert await phone.code("{ me { user { name } } }") == "UNAUTHENTICATED"


async def test_a_tampered_access_token_is_refused(make_client: Any) -> None:
    client = make_client()
    await register(client)
    access = cookie(client, "__Host-ww_access") or ""
    header, payload, signature = access.split(".")
    forged = make_client()
    forged.headers["Authorization"] = f"Bearer {header}.{payload}.{signature[::-1]}"
    assert await forged.code("{ me { user { name } } }") == "UNAUTHENTICATED"


INVITE = "mutation($e: String!) { inviteMember(email: $e, role: MEMBER) { token role } }"
ACCEPT = "mutation($t: String!) { acceptInvitation(token: $t) { id name role } }"


async def test_an_invited_user_joins_with_the_token_and_sees_the_workspace(
    make_client: Any,
) -> None:
    owner = make_client()
    await register(owner, name="Asha")
    member = make_client()
    member_session = await register(member, name="Rohan")
    token = (await owner.ok(INVITE, e=member_session["email"]))["inviteMember"]["token"]
    shared = (await member.ok(ACCEPT, t=token))["acceptInvitation"]
    assert shared["name"] == "Asha's household" and shared["role"] == "MEMBER"
    assert (await member.error(ACCEPT, t=token))["extensions"]["code"] == "NOT_FOUND"  # spent
    again = await owner.error(INVITE, e=member_session["email"])
    assert again["extensions"]["code"] == "CONFLICT"
    member.use_workspace(shared["id"])
    members = await member.ok("{ workspace { name members { user { name } role } } }")
    assert {(m["user"]["name"], m["role"]) for m in members["workspace"]["members"]} == {
        ("Asha", "OWNER"),
        ("Rohan", "MEMBER"),
    }


async def test_nobody_joins_on_an_email_alone_or_with_someone_elses_token(
    make_client: Any,
) -> None:
    """Emails are not verified: registering the invited email grants nothing, and a token
    is only good for the account with the invited email."""
    owner = make_client()
    await register(owner, name="Asha")
    invited_email = f"alice-{uuid.uuid4().hex[:8]}@example.com"
    token = (await owner.ok(INVITE, e=invited_email))["inviteMember"]["token"]
    squatter = make_client()
    session = await squatter.ok(
        REGISTER, email=invited_email, password=PASSWORD, name="Mallory", currency="INR"
    )
    assert [w["role"] for w in session["register"]["workspaces"]] == ["OWNER"]  # only her own
    thief = make_client()
    await register(thief, name="Eve")
    assert (await thief.error(ACCEPT, t=token))["extensions"]["code"] == "NOT_FOUND"
    assert (await thief.error(ACCEPT, t="guessed"))["extensions"]["code"] == "NOT_FOUND"


async def test_create_workspace_makes_the_caller_its_owner(make_client: Any) -> None:
    client = make_client()
    await register(client)
    created = await client.ok(
        """mutation { createWorkspace(name: "Side business", baseCurrency: "USD") {
          id name role baseCurrency } }"""
    )
    workspace = created["createWorkspace"]
    assert workspace["role"] == "OWNER" and workspace["baseCurrency"] == "USD"
    client.use_workspace(workspace["id"])
    names = {c["name"] for c in (await client.ok("{ categories { name } }"))["categories"]}
    assert {"Groceries", "Salary", "Currency exchange"} <= names


async def test_node_answers_for_your_own_objects_of_every_type_and_null_for_others(
    make_client: Any,
) -> None:
    client = make_client()
    session = await register(client)
    other = make_client()
    stranger = await register(other, name="Eve")
    account = (
        await client.ok(
            'mutation { createAccount(input: {name: "A", kind: CASH, currency: "INR"}) { id } }'
        )
    )["createAccount"]["id"]
    category = (await client.ok("{ categories { id } }"))["categories"][0]["id"]
    await client.ok(
        """mutation($a: ID!, $c: ID!) { postTransaction(idempotencyKey: "n", input: {
            accountId: $a, categoryId: $c, amount: "-1", date: "2025-01-01", tags: ["x"]
        }) { id } }""",
        a=account,
        c=category,
    )
    tag = (await client.ok("{ tags { id } }"))["tags"][0]["id"]
    own = [session["user"]["id"], session["workspaces"][0]["id"], account, category, tag]
    for node_id in own:
        found = await client.ok("query($id: ID!) { node(id: $id) { id } }", id=node_id)
        assert found["node"] == {"id": node_id}
    for node_id in (stranger["user"]["id"], stranger["workspaces"][0]["id"]):
        assert (await client.ok("query($id: ID!) { node(id: $id) { id } }", id=node_id))[
            "node"
        ] is None
