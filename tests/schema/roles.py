"""People in one workspace, one per role, built through the public API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from domain.core.db import bind_scope
from domain.core.settings import Settings
from tests.graphql import Client, register

INVITE = "mutation($e: String!, $r: Role!) { inviteMember(email: $e, role: $r) { token } }"
ACCEPT = "mutation($t: String!) { acceptInvitation(token: $t) { id } }"
CREATE_TOKEN = """
mutation($n: String!, $s: ApiTokenScope!, $d: Int) {
  createApiToken(name: $n, scope: $s, expiresInDays: $d) {
    token apiToken { id name scope createdAt expiresAt lastUsedAt revokedAt }
  }
}"""


@dataclass
class Person:
    client: Client
    email: str
    user_id: str


@dataclass
class Household:
    workspace_id: str
    owner: Person
    member: Person
    viewer: Person


async def person(make_client: Any, name: str) -> tuple[Person, str]:
    """A registered person and the id of their own workspace."""
    client = make_client()
    session = await register(client, name=name)
    return Person(client, session["email"], session["user"]["id"]), session["workspaces"][0]["id"]


async def join(owner: Person, workspace_id: str, newcomer: Person, role: str) -> None:
    owner.client.use_workspace(workspace_id)
    token = (await owner.client.ok(INVITE, e=newcomer.email, r=role))["inviteMember"]["token"]
    await newcomer.client.ok(ACCEPT, t=token)
    newcomer.client.use_workspace(workspace_id)


async def household(make_client: Any) -> Household:
    owner, workspace_id = await person(make_client, "Asha")
    member, _ = await person(make_client, "Rohan")
    viewer, _ = await person(make_client, "Meera")
    await join(owner, workspace_id, member, "MEMBER")
    await join(owner, workspace_id, viewer, "VIEWER")
    return Household(workspace_id, owner, member, viewer)


async def api_token(
    creator: Person, scope: str, *, expires_in_days: int | None = None, name: str = "script"
) -> dict[str, Any]:
    """`{token, apiToken}` of a new token created by `creator` in their current workspace."""
    data = await creator.client.ok(CREATE_TOKEN, n=name, s=scope, d=expires_in_days)
    created: dict[str, Any] = data["createApiToken"]
    return created


def bearer(make_client: Any, token: str) -> Client:
    """A client that authenticates with `Authorization: Bearer` only (no cookies)."""
    client: Client = make_client()
    client.headers["Authorization"] = f"Bearer {token}"
    return client


@asynccontextmanager
async def owner_session(settings: Settings) -> AsyncIterator[AsyncSession]:
    """One transaction as the tables' owner (the migrations' URL, not the API's role), in
    maintenance scope: raw inspection past row-level security. Commits on success."""
    engine = create_async_engine(settings.resolved_database_url)
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
            await bind_scope(session, maintenance=True)
            yield session
    finally:
        await engine.dispose()
