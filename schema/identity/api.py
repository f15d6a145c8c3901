"""Identity queries and mutations: register, login, sessions, workspaces, members."""

from __future__ import annotations

import uuid

import strawberry
from starlette.requests import HTTPConnection
from starlette.responses import Response

from domain.core.errors import Unauthenticated
from domain.identity import service as identity
from domain.identity.repository import IdentityRepository
from schema.common import IsAuthenticated, IsOwner
from schema.context import (
    ACCESS_COOKIE,
    REFRESH_COOKIE,
    AppServices,
    Info,
    RequestContext,
    cookie_name,
)
from schema.identity.types import Invitation, LogoutResult, Role, Session, User, Workspace


async def _session_view(context: RequestContext, user_id: uuid.UUID) -> Session:
    async with context.db() as session:
        user = await IdentityRepository(session).user(user_id)
        assert user is not None
        profile = await identity.profile(session, context.services.keyring, user)
        workspaces = await Workspace.of_user(session, context.services.keyring, user_id)
    return Session(user=User.of(profile), workspaces=workspaces)


def _set_cookies(context: RequestContext, issued: identity.IssuedSession) -> None:
    assert context.response is not None
    set_session_cookies(context.request, context.response, context.services, issued)


def set_session_cookies(
    request: HTTPConnection,
    response: Response,
    services: AppServices,
    issued: identity.IssuedSession,
) -> None:
    """The session cookies of a new or refreshed login (also set by provider sign-in)."""
    for name, value, max_age in (
        (ACCESS_COOKIE, issued.access_token, services.signer.ttl_seconds),
        (REFRESH_COOKIE, issued.refresh_token, issued.refresh_expires_in),
    ):
        response.set_cookie(
            cookie_name(request, name),
            value,
            max_age=max_age,
            path="/",
            secure=True,
            httponly=True,
            samesite="strict",
        )


def _clear_cookies(context: RequestContext) -> None:
    response = context.response
    assert response is not None
    for name in (ACCESS_COOKIE, REFRESH_COOKIE):
        response.delete_cookie(
            cookie_name(context.request, name),
            path="/",
            secure=True,
            httponly=True,
            samesite="strict",
        )


@strawberry.type
class IdentityQuery:
    @strawberry.field(permission_classes=[IsAuthenticated])
    async def me(self, info: Info) -> Session:
        return await _session_view(info.context, await info.context.user_id())

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="The workspace requests act on (X-Workspace-ID header, or your first).",
    )
    async def workspace(self, info: Info) -> Workspace:
        tenant = await info.context.tenant()
        async with info.context.db() as session:
            found = await Workspace.of_user(session, info.context.services.keyring, tenant.user_id)
        return next(w for w in found if w.id == tenant.workspace_id.hex)


@strawberry.type
class IdentityMutation:
    @strawberry.mutation(description="Create an account with a household of its own; signs in.")
    async def register(
        self,
        info: Info,
        email: str,
        password: str,
        name: str,
        workspace_name: str | None = None,
        base_currency: str = "INR",
    ) -> Session:
        context, services = info.context, info.context.services
        async with context.db() as session:
            user = await identity.register(
                session,
                services.keyring,
                email=email,
                password=password,
                name=name,
                workspace_name=workspace_name,
                base_currency=base_currency,
            )
            issued = await identity.start_session(
                session, services.signer, user.id, services.settings.refresh_token_days
            )
        _set_cookies(context, issued)
        return await _session_view(context, user.id)

    @strawberry.mutation(description="Sign in: sets HttpOnly session cookies.")
    async def login(self, info: Info, email: str, password: str) -> Session:
        context, services = info.context, info.context.services
        async with context.db() as session:
            user = await identity.authenticate(session, services.keyring, email, password)
            issued = await identity.start_session(
                session, services.signer, user.id, services.settings.refresh_token_days
            )
        _set_cookies(context, issued)
        return await _session_view(context, user.id)

    @strawberry.mutation(description="Rotate the refresh token; a reused one ends the session.")
    async def refresh_session(self, info: Info) -> Session:
        context, services = info.context, info.context.services
        token = context.request.cookies.get(cookie_name(context.request, REFRESH_COOKIE))
        if not token:
            raise Unauthenticated("No refresh token")
        async with context.db() as session:
            try:
                issued = await identity.refresh_session(
                    session, services.signer, token, services.settings.refresh_token_days
                )
            except identity.RefreshTokenReused as reuse:
                reused = reuse.session_id
                context.persist_despite_failure(
                    lambda own: identity.end_session(own, reused, reason="refresh_reuse")
                )
                raise
            auth = await IdentityRepository(session).auth_session(issued.session_id)
            assert auth is not None
        _set_cookies(context, issued)
        return await _session_view(context, auth.user_id)

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def logout(self, info: Info) -> LogoutResult:
        auth = await info.context.auth()
        async with info.context.db() as session:
            await identity.end_session(session, auth.id)
        _clear_cookies(info.context)
        return LogoutResult(sessions_ended=1)

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def logout_everywhere(self, info: Info) -> LogoutResult:
        user_id = await info.context.user_id()
        async with info.context.db() as session:
            ended = await identity.end_all_sessions(session, user_id)
        _clear_cookies(info.context)
        return LogoutResult(sessions_ended=ended)

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def create_workspace(
        self, info: Info, name: str, base_currency: str = "INR"
    ) -> Workspace:
        user_id = await info.context.user_id()
        async with info.context.db() as session:
            workspace = await identity.create_workspace(
                session, info.context.services.keyring, user_id, name, base_currency
            )
        return Workspace(
            id=workspace.id.hex, name=name.strip(), base_currency=base_currency, role=Role.OWNER
        )

    @strawberry.mutation(permission_classes=[IsOwner])
    async def invite_member(self, info: Info, email: str, role: Role) -> Invitation:
        tenant = await info.context.tenant()
        async with info.context.db() as session:
            issued = await identity.invite_member(
                session, info.context.services.keyring, tenant, email, role.value
            )
        return Invitation(
            email=email.strip().casefold(),
            role=role,
            expires_at=issued.invitation.expires_at,
            token=issued.token,
        )

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        description="Join a workspace with the token of an invitation to your email.",
    )
    async def accept_invitation(self, info: Info, token: str) -> Workspace:
        user_id = await info.context.user_id()
        async with info.context.db() as session:
            membership = await identity.accept_invitation(
                session, info.context.services.keyring, user_id, token
            )
            found = await Workspace.of_user(session, info.context.services.keyring, user_id)
        return next(w for w in found if w.id == membership.workspace_id.hex)
