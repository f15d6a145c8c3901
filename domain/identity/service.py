"""The identity context: accounts, logins and sessions, workspaces and their members."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.core.crypto import SYSTEM_OWNER, blind_index
from domain.core.db import bind_scope, restoring_scope
from domain.core.errors import BadInput, Conflict, NotFound, Unauthenticated
from domain.core.keys import Keyring
from domain.core.models import as_utc, utcnow
from domain.core.money import check_currency
from domain.core.settings import Settings
from domain.core.tenancy import Tenant
from domain.identity.models import (
    AuthSession,
    Invitation,
    Membership,
    RefreshToken,
    Role,
    User,
    Workspace,
)
from domain.identity.repository import IdentityRepository
from domain.identity.tokens import AccessClaims, TokenSigner
from domain.ledger import categories

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_hasher = PasswordHasher()  # argon2id with the library's recommended parameters
# Verified against when the email is unknown, so both paths cost one argon2 run.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


def configure_password_hashing(settings: Settings) -> None:
    """New hashes (and the unknown-email dummy) with the settings' argon2id parameters;
    hashes made with others still verify (argon2 reads them from the hash)."""
    global _hasher, _DUMMY_HASH
    wanted = (
        settings.password_hash_memory_kib,
        settings.password_hash_time_cost,
        settings.password_hash_parallelism,
    )
    if wanted == (_hasher.memory_cost, _hasher.time_cost, _hasher.parallelism):
        return
    memory, time_cost, parallelism = wanted
    _hasher = PasswordHasher(memory_cost=memory, time_cost=time_cost, parallelism=parallelism)
    _DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


MIN_PASSWORD_LENGTH = 10


class RefreshTokenReused(Unauthenticated):
    """A spent refresh token came back: someone holds a copy. Revoke its session."""

    def __init__(self, session_id: uuid.UUID) -> None:
        super().__init__("Refresh token reuse detected: the session is revoked")
        self.session_id = session_id


@dataclass(frozen=True)
class Profile:
    id: uuid.UUID
    email: str
    name: str


@dataclass(frozen=True)
class IssuedSession:
    session_id: uuid.UUID
    access_token: str
    refresh_token: str
    refresh_expires_in: int


def normalise_email(email: str) -> str:
    email = email.strip().casefold()
    if len(email) > 254 or not _EMAIL.match(email):
        raise BadInput("Not a valid email address", field="email")
    return email


def _role(role: str) -> Role:
    try:
        return Role(role.lower())
    except ValueError:
        raise BadInput(f"Unknown role {role!r}", field="role") from None


async def profile(session: AsyncSession, keyring: Keyring, user: User) -> Profile:
    cipher = await keyring.cipher(session, SYSTEM_OWNER)
    return Profile(
        id=user.id,
        email=cipher.open_text(user.email_enc, "users", "email", user.id),
        name=cipher.open_text(user.name_enc, "users", "name", user.id),
    )


async def register(
    session: AsyncSession,
    keyring: Keyring,
    *,
    email: str,
    password: str,
    name: str,
    workspace_name: str | None = None,
    base_currency: str = "INR",
) -> User:
    """A new user with a household of their own (invitations are accepted separately)."""
    email = normalise_email(email)
    name = name.strip()
    if not name or len(name) > 120:
        raise BadInput("A name of 1 to 120 characters is required", field="name")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadInput(
            f"The password needs at least {MIN_PASSWORD_LENGTH} characters", field="password"
        )
    check_currency(base_currency)
    return await create_user(
        session,
        keyring,
        email=email,
        name=name,
        password_hash=_hasher.hash(password),
        workspace_name=workspace_name,
        base_currency=base_currency,
    )


async def create_user(
    session: AsyncSession,
    keyring: Keyring,
    *,
    email: str,
    name: str,
    password_hash: str | None,
    workspace_name: str | None = None,
    base_currency: str = "INR",
) -> User:
    """A user (with a normalised email and a valid name) and a household of their own.
    Without a password hash they sign in only through a linked provider."""
    repository = IdentityRepository(session)
    index = blind_index(await keyring.index_key(session), email)
    await bind_scope(session, lookup=index.hex())
    if await repository.user_by_email_index(index) is not None:
        raise Conflict("An account with this email already exists", field="email")
    cipher = await keyring.cipher(session, SYSTEM_OWNER)
    user = User(email_index=index, email_enc=b"", name_enc=b"", password_hash=password_hash)
    await bind_scope(session, user_id=user.id)
    user.email_enc = cipher.seal_text(email, "users", "email", user.id)
    user.name_enc = cipher.seal_text(name, "users", "name", user.id)
    session.add(user)
    await session.flush()
    await create_workspace(
        session, keyring, user.id, workspace_name or f"{name}'s household", base_currency
    )
    return user


async def authenticate(session: AsyncSession, keyring: Keyring, email: str, password: str) -> User:
    failure = Unauthenticated("Invalid email or password")
    try:
        index = blind_index(await keyring.index_key(session), normalise_email(email))
    except BadInput:
        raise failure from None
    await bind_scope(session, lookup=index.hex())
    user = await IdentityRepository(session).user_by_email_index(index)
    # Unknown emails and users without a password (provider sign-in only) cost the same.
    try:
        _hasher.verify(user.password_hash if user and user.password_hash else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        raise failure from None
    if user is None or user.password_hash is None:
        raise failure
    return user


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def start_session(
    session: AsyncSession, signer: TokenSigner, user_id: uuid.UUID, refresh_days: int
) -> IssuedSession:
    """A new login: a new session id, an access JWT and the first refresh token."""
    await bind_scope(session, user_id=user_id)
    auth_session = AuthSession(user_id=user_id)
    session.add(auth_session)
    await session.flush()
    return await _issue(session, signer, auth_session, refresh_days)


async def _issue(
    session: AsyncSession, signer: TokenSigner, auth_session: AuthSession, refresh_days: int
) -> IssuedSession:
    refresh = secrets.token_urlsafe(32)
    lifetime = timedelta(days=refresh_days)
    session.add(
        RefreshToken(
            session_id=auth_session.id,
            user_id=auth_session.user_id,
            token_hash=_hash_token(refresh),
            expires_at=utcnow() + lifetime,
        )
    )
    await session.flush()
    return IssuedSession(
        session_id=auth_session.id,
        access_token=signer.issue(auth_session.user_id, auth_session.id),
        refresh_token=refresh,
        refresh_expires_in=int(lifetime.total_seconds()),
    )


async def refresh_session(
    session: AsyncSession, signer: TokenSigner, refresh_token: str, refresh_days: int
) -> IssuedSession:
    """Rotate: the presented token is spent; presenting a spent one revokes the session."""
    repository = IdentityRepository(session)
    token_hash = _hash_token(refresh_token)
    await bind_scope(session, lookup=token_hash)
    stored = await repository.refresh_token(token_hash)
    if stored is None:
        raise Unauthenticated("Unknown refresh token")
    await bind_scope(session, user_id=stored.user_id)
    auth_session = await repository.auth_session(stored.session_id)
    if auth_session is None or auth_session.revoked_at is not None:
        raise Unauthenticated("This session has ended")
    if stored.used_at is not None:
        # The caller must revoke the session in a transaction that survives this error.
        raise RefreshTokenReused(auth_session.id)
    if as_utc(stored.expires_at) <= utcnow():
        raise Unauthenticated("The refresh token has expired")
    stored.used_at = utcnow()
    return await _issue(session, signer, auth_session, refresh_days)


async def end_session(session: AsyncSession, session_id: uuid.UUID, reason: str = "logout") -> None:
    auth_session = await IdentityRepository(session).auth_session(session_id)
    if auth_session is not None and auth_session.revoked_at is None:
        auth_session.revoked_at = utcnow()
        auth_session.revoked_reason = reason
        await session.flush()


async def end_all_sessions(session: AsyncSession, user_id: uuid.UUID) -> int:
    live = await IdentityRepository(session).live_sessions_of_user(user_id)
    for auth_session in live:
        auth_session.revoked_at = utcnow()
        auth_session.revoked_reason = "logout_everywhere"
    await session.flush()
    return len(live)


def _live(auth_session: AuthSession | None, claims: AccessClaims) -> AuthSession:
    if (
        auth_session is None
        or auth_session.revoked_at is not None
        or auth_session.user_id != claims.user_id
    ):
        raise Unauthenticated("This session has ended")
    return auth_session


async def resolve_access(session: AsyncSession, signer: TokenSigner, token: str) -> AuthSession:
    """The live session behind an access token (a revoked session refuses its tokens)."""
    claims = signer.verify(token)
    await bind_scope(session, user_id=claims.user_id)
    return _live(await IdentityRepository(session).auth_session(claims.session_id), claims)


async def resolve_access_and_tenant(
    session: AsyncSession,
    signer: TokenSigner,
    keyring: Keyring,
    token: str,
    workspace_id: uuid.UUID | None,
) -> tuple[AuthSession, Tenant]:
    """`resolve_access` then `open_tenant`, in one query."""
    claims = signer.verify(token)
    await bind_scope(session, user_id=claims.user_id)
    repository = IdentityRepository(session)
    found, membership = await repository.auth_session_with_membership(
        claims.session_id, workspace_id
    )
    auth_session = _live(found, claims)
    return auth_session, await _tenant(session, keyring, auth_session.user_id, membership)


async def create_workspace(
    session: AsyncSession, keyring: Keyring, user_id: uuid.UUID, name: str, base_currency: str
) -> Workspace:
    name = name.strip()
    if not name or len(name) > 120:
        raise BadInput("A workspace name of 1 to 120 characters is required", field="name")
    check_currency(base_currency)
    workspace = Workspace(name_enc=b"", base_currency=base_currency)
    async with restoring_scope(session):
        # Set up inside the new workspace's scope, then act for the request's one again.
        await bind_scope(session, workspace_id=workspace.id)
        session.add(workspace)
        await session.flush()
        cipher = await keyring.create_owner_key(session, workspace.id)
        workspace.name_enc = cipher.seal_text(name, "workspaces", "name", workspace.id)
        session.add(Membership(workspace_id=workspace.id, user_id=user_id, role=Role.OWNER.value))
        await session.flush()
        tenant = Tenant(workspace.id, base_currency, cipher, user_id, Role.OWNER.value)
        await categories.create_defaults(session, tenant)
    return workspace


async def workspace_name(session: AsyncSession, keyring: Keyring, workspace: Workspace) -> str:
    cipher = await keyring.cipher(session, workspace.id)
    return cipher.open_text(workspace.name_enc, "workspaces", "name", workspace.id)


async def open_tenant(
    session: AsyncSession, keyring: Keyring, user_id: uuid.UUID, workspace_id: uuid.UUID | None
) -> Tenant:
    """The caller's view of a workspace (None: their first one); unknown and foreign
    workspaces look the same."""
    await bind_scope(session, user_id=user_id)
    found = await IdentityRepository(session).membership_view(user_id, workspace_id)
    return await _tenant(session, keyring, user_id, found)


async def _tenant(
    session: AsyncSession,
    keyring: Keyring,
    user_id: uuid.UUID,
    membership: tuple[uuid.UUID, str, str] | None,
) -> Tenant:
    if membership is None:
        raise NotFound("Workspace not found")
    workspace_id, role, base_currency = membership
    await bind_scope(session, workspace_id=workspace_id)
    cipher = await keyring.cipher(session, workspace_id)
    return Tenant(workspace_id, base_currency, cipher, user_id, role)


@dataclass(frozen=True)
class IssuedInvitation:
    invitation: Invitation
    token: str  # shown to the owner once, stored only as a hash


INVITATION_DAYS = 7


async def invite_member(
    session: AsyncSession, keyring: Keyring, tenant: Tenant, email: str, role: str
) -> IssuedInvitation:
    """Owners invite by email. Nobody joins on an email alone (emails are not verified):
    the invitee, signed in with that email, presents the one-time token."""
    tenant.require_owner()
    chosen = _role(role)
    repository = IdentityRepository(session)
    index = blind_index(await keyring.index_key(session), normalise_email(email))
    await bind_scope(session, lookup=index.hex())
    user = await repository.user_by_email_index(index)
    if user is not None and await repository.membership(tenant.workspace_id, user.id):
        raise Conflict("This person is already a member", field="email")
    previous = await repository.invitation(tenant.workspace_id, index)
    if previous is not None:  # inviting again replaces the old token
        await session.delete(previous)
        await session.flush()
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        workspace_id=tenant.workspace_id,
        email_index=index,
        role=chosen.value,
        invited_by=tenant.user_id,
        token_hash=_hash_token(token),
        expires_at=utcnow() + timedelta(days=INVITATION_DAYS),
    )
    session.add(invitation)
    await session.flush()
    return IssuedInvitation(invitation, token)


async def accept_invitation(
    session: AsyncSession, keyring: Keyring, user_id: uuid.UUID, token: str
) -> Membership:
    """Join with an invitation's token; it must be live and addressed to your email."""
    repository = IdentityRepository(session)
    token_hash = _hash_token(token)
    await bind_scope(session, user_id=user_id, lookup=token_hash)
    invitation = await repository.invitation_by_token(token_hash)
    user = await repository.user(user_id)
    if (
        invitation is None
        or user is None
        or as_utc(invitation.expires_at) <= utcnow()
        or not hmac.compare_digest(invitation.email_index, user.email_index)
    ):
        raise NotFound("Invitation not found or expired", field="token")
    if await repository.membership(invitation.workspace_id, user_id) is not None:
        raise Conflict("You are already a member", field="token")
    membership = Membership(
        workspace_id=invitation.workspace_id, user_id=user_id, role=invitation.role
    )
    async with restoring_scope(session):
        # The token proved the right to act in the inviting workspace, for this one join.
        await bind_scope(session, workspace_id=invitation.workspace_id)
        session.add(membership)
        await session.delete(invitation)
        await session.flush()
    return membership
