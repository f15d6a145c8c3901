"""GraphQL types of identity."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable
from enum import Enum

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import relay

from domain.core.keys import Keyring
from domain.identity import service as identity
from domain.identity.repository import IdentityRepository
from schema.context import Info


@strawberry.enum
class Role(Enum):
    OWNER = "owner"
    MEMBER = "member"
    VIEWER = "viewer"


@strawberry.type
class User(relay.Node):
    id: relay.NodeID[str]
    email: str
    name: str

    @classmethod
    def of(cls, profile: identity.Profile) -> User:
        return cls(id=profile.id.hex, email=profile.email, name=profile.name)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[User | None]:
        """Only yourself: other people are reached through a workspace's members."""
        user_id = await info.context.user_id()
        found: list[User | None] = []
        for node_id in node_ids:
            if node_id != user_id.hex:
                found.append(None)
                continue
            async with info.context.db() as session:
                user = await IdentityRepository(session).user(user_id)
                assert user is not None
                profile = await identity.profile(session, info.context.services.keyring, user)
            found.append(cls.of(profile))
        return found


@strawberry.type
class Member:
    user: User
    role: Role


@strawberry.type
class Workspace(relay.Node):
    id: relay.NodeID[str]
    name: str
    base_currency: str
    role: Role = strawberry.field(description="Your role in this workspace.")

    @classmethod
    async def of_user(
        cls, session: AsyncSession, keyring: Keyring, user_id: uuid.UUID
    ) -> list[Workspace]:
        """Every workspace the user belongs to, with their role in it."""
        found = []
        for membership, row in await IdentityRepository(session).memberships_of_user(user_id):
            found.append(
                cls(
                    id=row.id.hex,
                    name=await identity.workspace_name(session, keyring, row),
                    base_currency=row.base_currency,
                    role=Role(membership.role),
                )
            )
        return found

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Workspace | None]:
        """Only workspaces you belong to."""
        user_id = await info.context.user_id()
        async with info.context.db() as session:
            mine = await cls.of_user(session, info.context.services.keyring, user_id)
        by_id = {workspace.id: workspace for workspace in mine}
        return [by_id.get(node_id) for node_id in node_ids]

    @strawberry.field
    async def members(self, info: Info) -> list[Member]:
        user_id = await info.context.user_id()
        workspace_id = uuid.UUID(self.id)
        keyring = info.context.services.keyring
        async with info.context.db() as session:
            repository = IdentityRepository(session)
            if await repository.membership(workspace_id, user_id) is None:
                return []
            memberships = await repository.members_of_workspace(workspace_id)
            users = {u.id: u for u in await repository.users([m.user_id for m in memberships])}
            return [
                Member(
                    user=User.of(await identity.profile(session, keyring, users[m.user_id])),
                    role=Role(m.role),
                )
                for m in memberships
            ]


@strawberry.type
class Invitation:
    email: str
    role: Role
    expires_at: datetime.datetime
    token: str = strawberry.field(
        description=(
            "Shown once: give it to the invitee, who signs in with this email and calls "
            "acceptInvitation(token)."
        )
    )


@strawberry.type
class Session:
    user: User
    workspaces: list[Workspace]


@strawberry.type
class LogoutResult:
    sessions_ended: int
