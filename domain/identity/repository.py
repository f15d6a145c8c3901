"""Queries of the identity context."""

from __future__ import annotations

import uuid

from sqlalchemy import and_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from domain.identity.models import (
    AuthSession,
    Invitation,
    Membership,
    OidcIdentity,
    RefreshToken,
    User,
    Workspace,
)


class IdentityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def user_by_email_index(self, email_index: bytes) -> User | None:
        result = await self.session.execute(select(User).where(User.email_index == email_index))
        return result.scalar_one_or_none()

    async def oidc_identity(self, provider: str, subject: str) -> OidcIdentity | None:
        result = await self.session.execute(
            select(OidcIdentity).where(
                OidcIdentity.provider == provider, OidcIdentity.subject == subject
            )
        )
        return result.scalar_one_or_none()

    async def user(self, user_id: uuid.UUID) -> User | None:
        return await self.session.get(User, user_id)

    async def users(self, user_ids: list[uuid.UUID]) -> list[User]:
        result = await self.session.execute(select(User).where(col(User.id).in_(user_ids)))
        return list(result.scalars())

    async def workspace(self, workspace_id: uuid.UUID) -> Workspace | None:
        return await self.session.get(Workspace, workspace_id)

    async def membership(self, workspace_id: uuid.UUID, user_id: uuid.UUID) -> Membership | None:
        result = await self.session.execute(
            select(Membership).where(
                Membership.workspace_id == workspace_id, Membership.user_id == user_id
            )
        )
        return result.scalar_one_or_none()

    async def membership_view(
        self, user_id: uuid.UUID, workspace_id: uuid.UUID | None
    ) -> tuple[uuid.UUID, str, str] | None:
        """(workspace id, role, base currency) of one membership, or of the user's first
        one when no workspace is named: one query, since every request needs it."""
        statement = (
            select(col(Membership.workspace_id), col(Membership.role), col(Workspace.base_currency))
            .join(Workspace, col(Workspace.id) == col(Membership.workspace_id))
            .where(Membership.user_id == user_id)
            .order_by(col(Membership.created_at), col(Membership.id))
            .limit(1)
        )
        if workspace_id is not None:
            statement = statement.where(Membership.workspace_id == workspace_id)
        row = (await self.session.execute(statement)).first()
        return None if row is None else (row[0], row[1], row[2])

    async def auth_session_with_membership(
        self, session_id: uuid.UUID, workspace_id: uuid.UUID | None
    ) -> tuple[AuthSession | None, tuple[uuid.UUID, str, str] | None]:
        """The session and its user's membership view (as `membership_view`) in one query:
        every authenticated GraphQL request needs both before anything else."""
        on = [col(Membership.user_id) == col(AuthSession.user_id)]
        if workspace_id is not None:
            on.append(col(Membership.workspace_id) == workspace_id)
        statement = (
            select(
                AuthSession,
                col(Membership.workspace_id),
                col(Membership.role),
                col(Workspace.base_currency),
            )
            .outerjoin(Membership, and_(*on))
            .outerjoin(Workspace, col(Workspace.id) == col(Membership.workspace_id))
            .where(col(AuthSession.id) == session_id)
            .order_by(col(Membership.created_at), col(Membership.id))
            .limit(1)
        )
        row = (await self.session.execute(statement)).first()
        if row is None:
            return None, None
        membership = None if row[1] is None or row[3] is None else (row[1], row[2], row[3])
        return row[0], membership

    async def memberships_of_user(self, user_id: uuid.UUID) -> list[tuple[Membership, Workspace]]:
        result = await self.session.execute(
            select(Membership, Workspace)
            .join(Workspace, col(Workspace.id) == col(Membership.workspace_id))
            .where(Membership.user_id == user_id)
            .order_by(col(Membership.created_at), col(Membership.id))
        )
        return [(row[0], row[1]) for row in result.all()]

    async def members_of_workspace(self, workspace_id: uuid.UUID) -> list[Membership]:
        result = await self.session.execute(
            select(Membership)
            .where(Membership.workspace_id == workspace_id)
            .order_by(col(Membership.created_at), col(Membership.id))
        )
        return list(result.scalars())

    async def invitation_by_token(self, token_hash: str) -> Invitation | None:
        result = await self.session.execute(
            select(Invitation).where(Invitation.token_hash == token_hash).with_for_update()
        )
        return result.scalar_one_or_none()

    async def invitation(self, workspace_id: uuid.UUID, email_index: bytes) -> Invitation | None:
        result = await self.session.execute(
            select(Invitation).where(
                Invitation.workspace_id == workspace_id, Invitation.email_index == email_index
            )
        )
        return result.scalar_one_or_none()

    async def auth_session(self, session_id: uuid.UUID) -> AuthSession | None:
        return await self.session.get(AuthSession, session_id)

    async def refresh_token(self, token_hash: str) -> RefreshToken | None:
        result = await self.session.execute(
            select(RefreshToken).where(RefreshToken.token_hash == token_hash).with_for_update()
        )
        return result.scalar_one_or_none()

    async def live_sessions_of_user(self, user_id: uuid.UUID) -> list[AuthSession]:
        result = await self.session.execute(
            select(AuthSession).where(
                AuthSession.user_id == user_id, col(AuthSession.revoked_at).is_(None)
            )
        )
        return list(result.scalars())
