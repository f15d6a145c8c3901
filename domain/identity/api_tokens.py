"""API tokens for scripts and analysts: `wwt_<token id>_<secret>`, shown once, stored hashed.

A token acts in its own workspace only, as `min(its creator's current role, its scope)`:
READ acts as a viewer, WRITE as a member at most (never as an owner). A creator who leaves
the workspace or is demoted takes the token's power down with them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from domain.core.db import bind_scope
from domain.core.errors import BadInput, Forbidden, NotFound, Unauthenticated
from domain.core.keys import Keyring
from domain.core.models import as_utc, utcnow
from domain.core.tenancy import Tenant
from domain.identity.models import ApiToken, ApiTokenScope, Role
from domain.identity.repository import IdentityRepository

PREFIX = "wwt_"
_FORMAT = re.compile(r"^wwt_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$")
MAX_EXPIRY_DAYS = 3650
# last_used_at is written at most this often per token: one cheap UPDATE, not one per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)
_SCOPE_ROLE = {ApiTokenScope.READ: Role.VIEWER, ApiTokenScope.WRITE: Role.MEMBER}
_RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.OWNER: 2}


@dataclass(frozen=True)
class ApiTokenView:
    id: uuid.UUID
    name: str
    scope: ApiTokenScope
    created_by: uuid.UUID
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class IssuedApiToken:
    token: str  # shown once
    view: ApiTokenView


@dataclass(frozen=True)
class TokenAccess:
    """What a verified API token may do in this request."""

    token_id: uuid.UUID
    tenant: Tenant
    stale_last_used: bool  # last_used_at is older than LAST_USED_RESOLUTION
    expires_at: datetime | None = None


def is_api_token(bearer: str) -> bool:
    return bearer.startswith(PREFIX)


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _view(tenant: Tenant, row: ApiToken) -> ApiTokenView:
    return ApiTokenView(
        id=row.id,
        name=tenant.cipher.open_text(row.name_enc, "api_tokens", "name", row.id),
        scope=ApiTokenScope(row.scope),
        created_by=row.created_by,
        created_at=as_utc(row.created_at),
        expires_at=as_utc(row.expires_at) if row.expires_at else None,
        last_used_at=as_utc(row.last_used_at) if row.last_used_at else None,
        revoked_at=as_utc(row.revoked_at) if row.revoked_at else None,
    )


def _check_creator(tenant: Tenant) -> None:
    if tenant.api_token_id is not None:
        raise Forbidden("API tokens cannot manage API tokens: sign in as a person")


async def create_token(
    session: AsyncSession,
    tenant: Tenant,
    *,
    name: str,
    scope: ApiTokenScope,
    expires_in_days: int | None,
) -> IssuedApiToken:
    """Any member may create a READ token; WRITE needs a role that can write."""
    _check_creator(tenant)
    name = name.strip()
    if not name or len(name) > 120:
        raise BadInput("A token name of 1 to 120 characters is required", field="name")
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
        raise BadInput(
            f"expiresInDays must be between 1 and {MAX_EXPIRY_DAYS}", field="expiresInDays"
        )
    if scope is ApiTokenScope.WRITE and not tenant.can_write:
        raise Forbidden("Your role is read-only: only a READ token is possible", field="scope")
    secret = secrets.token_urlsafe(32)
    row = ApiToken(
        workspace_id=tenant.workspace_id,
        created_by=tenant.user_id,
        name_enc=b"",
        scope=scope.value,
        secret_hash=_hash_secret(secret),
        expires_at=utcnow() + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    row.name_enc = tenant.cipher.seal_text(name, "api_tokens", "name", row.id)
    session.add(row)
    await session.flush()
    return IssuedApiToken(token=f"{PREFIX}{row.id.hex}_{secret}", view=_view(tenant, row))


async def list_tokens(session: AsyncSession, tenant: Tenant) -> list[ApiTokenView]:
    """An owner sees every token of the workspace; anyone else only their own."""
    _check_creator(tenant)
    statement = (
        select(ApiToken)
        .where(ApiToken.workspace_id == tenant.workspace_id)
        .order_by(col(ApiToken.created_at), col(ApiToken.id))
    )
    if tenant.role != Role.OWNER.value:
        statement = statement.where(ApiToken.created_by == tenant.user_id)
    rows = (await session.execute(statement)).scalars()
    return [_view(tenant, row) for row in rows]


async def revoke_token(session: AsyncSession, tenant: Tenant, token_id: uuid.UUID) -> ApiTokenView:
    """Its creator or an owner; someone else's token looks like an unknown one."""
    _check_creator(tenant)
    row = await session.get(ApiToken, token_id, with_for_update=True)
    if (
        row is None
        or row.workspace_id != tenant.workspace_id
        or (tenant.role != Role.OWNER.value and row.created_by != tenant.user_id)
    ):
        raise NotFound("API token not found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await session.flush()
    return _view(tenant, row)


def _parse(bearer: str) -> tuple[uuid.UUID, str]:
    match = _FORMAT.match(bearer)
    if match is None:
        raise Unauthenticated("The API token is invalid")
    return uuid.UUID(match.group(1)), match.group(2)


async def authenticate(
    session: AsyncSession,
    keyring: Keyring,
    bearer: str,
    workspace_id: uuid.UUID | None,
) -> TokenAccess:
    """The tenant an API token acts as; refused when unknown, revoked, expired, or its
    creator has left the workspace. A header naming another workspace is refused."""
    failure = Unauthenticated("The API token is invalid, revoked or expired")
    token_id, secret = _parse(bearer)
    secret_hash = _hash_secret(secret)
    # Before the workspace is known, row-level security shows the row only to its secret.
    await bind_scope(session, lookup=secret_hash)
    row = await session.get(ApiToken, token_id)
    if row is None or not hmac.compare_digest(row.secret_hash, secret_hash):
        raise failure
    now = utcnow()
    if row.revoked_at is not None or (row.expires_at and as_utc(row.expires_at) <= now):
        raise failure
    if workspace_id is not None and workspace_id != row.workspace_id:
        raise Forbidden("An API token acts in its own workspace only")
    await bind_scope(session, workspace_id=row.workspace_id, user_id=row.created_by)
    found = await IdentityRepository(session).membership_view(row.created_by, row.workspace_id)
    if found is None:
        raise failure  # the creator left the workspace
    _, creator_role, base_currency = found
    capped = _SCOPE_ROLE[ApiTokenScope(row.scope)]
    role = min(Role(creator_role), capped, key=_RANK.__getitem__)
    tenant = Tenant(
        row.workspace_id,
        base_currency,
        await keyring.cipher(session, row.workspace_id),
        row.created_by,
        role.value,
        api_token_id=row.id,
    )
    stale = row.last_used_at is None or as_utc(row.last_used_at) <= now - LAST_USED_RESOLUTION
    return TokenAccess(
        token_id=row.id,
        tenant=tenant,
        stale_last_used=stale,
        expires_at=as_utc(row.expires_at) if row.expires_at else None,
    )


async def touch(session: AsyncSession, workspace_id: uuid.UUID, token_id: uuid.UUID) -> None:
    """Record a use; a no-op when another request already did within the resolution."""
    await bind_scope(session, workspace_id=workspace_id)
    now = utcnow()
    await session.execute(
        update(ApiToken)
        .where(
            col(ApiToken.id) == token_id,
            or_(
                col(ApiToken.last_used_at).is_(None),
                col(ApiToken.last_used_at) <= now - LAST_USED_RESOLUTION,
            ),
        )
        .values(last_used_at=now)
    )
