"""GraphQL types of identity."""

from __future__ import annotations

import uuid
from enum import Enum

import strawberry
from strawberry import relay

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
    pending: bool = strawberry.field(description="True until the invitee registers.")


@strawberry.type
class Session:
    user: User
    workspaces: list[Workspace]


@strawberry.type
class LogoutResult:
    sessions_ended: int
