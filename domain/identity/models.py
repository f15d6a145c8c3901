"""Identity tables: users, workspaces, memberships, invitations, refresh tokens."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import DateTime, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from domain.core.models import timestamp_field


class Role(enum.StrEnum):
    OWNER = "owner"
    MEMBER = "member"
    VIEWER = "viewer"

    @property
    def can_write(self) -> bool:
        return self is not Role.VIEWER


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    email_index: bytes = Field(sa_type=LargeBinary, unique=True)  # HMAC blind index
    email_enc: bytes = Field(sa_type=LargeBinary)
    name_enc: bytes = Field(sa_type=LargeBinary)
    password_hash: str | None = Field(default=None, max_length=255)
    created_at: datetime = timestamp_field()


class Workspace(SQLModel, table=True):
    __tablename__ = "workspaces"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name_enc: bytes = Field(sa_type=LargeBinary)
    base_currency: str = Field(max_length=3)
    created_at: datetime = timestamp_field()


class Membership(SQLModel, table=True):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("workspace_id", "user_id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    workspace_id: uuid.UUID = Field(foreign_key="workspaces.id", index=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True)
    role: str = Field(max_length=16)
    created_at: datetime = timestamp_field()


class Invitation(SQLModel, table=True):
    """An invitation to a workspace. Emails are not verified, so joining takes the one-time
    token the owner was shown and passed on, presented by the account with that email."""

    __tablename__ = "invitations"
    __table_args__ = (UniqueConstraint("workspace_id", "email_index"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    workspace_id: uuid.UUID = Field(foreign_key="workspaces.id", index=True)
    email_index: bytes = Field(sa_type=LargeBinary, index=True)
    role: str = Field(max_length=16)
    invited_by: uuid.UUID = Field(foreign_key="users.id")
    token_hash: str = Field(max_length=64, unique=True)
    expires_at: datetime = Field(sa_type=DateTime(timezone=True))
    created_at: datetime = timestamp_field()


class AuthSession(SQLModel, table=True):
    """A login: the family of its refresh tokens. Revoking it ends every token at once."""

    __tablename__ = "auth_sessions"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True)
    created_at: datetime = timestamp_field()
    revoked_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    revoked_reason: str | None = Field(default=None, max_length=32)


class RefreshToken(SQLModel, table=True):
    """A refresh token, stored hashed; each use rotates it, a reuse revokes the session."""

    __tablename__ = "refresh_tokens"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    session_id: uuid.UUID = Field(foreign_key="auth_sessions.id", index=True)
    # The session's user, so that a refresh can be scoped (row-level security) before
    # the session row is read.
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True)
    token_hash: str = Field(max_length=64, unique=True)
    expires_at: datetime = Field(sa_type=DateTime(timezone=True))
    used_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    revoked_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    created_at: datetime = timestamp_field()


class OidcIdentity(SQLModel, table=True):
    """A sign-in identity at an external provider (an OIDC subject, a GitHub user id),
    linked to one user: later sign-ins find the user by it, whatever the email says."""

    __tablename__ = "oidc_identities"
    __table_args__ = (UniqueConstraint("provider", "subject"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    provider: str = Field(max_length=64)
    subject: str = Field(max_length=255)
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True)
    created_at: datetime = timestamp_field()


class ApiTokenScope(enum.StrEnum):
    READ = "read"
    WRITE = "write"


class ApiToken(SQLModel, table=True):
    """A token for scripts: `wwt_<id>_<secret>`, stored as the SHA-256 of the secret only.
    It acts in its workspace with at most its creator's current role (READ: as a viewer)."""

    __tablename__ = "api_tokens"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    workspace_id: uuid.UUID = Field(foreign_key="workspaces.id", index=True)
    created_by: uuid.UUID = Field(foreign_key="users.id", index=True)
    name_enc: bytes = Field(sa_type=LargeBinary)
    scope: str = Field(max_length=8)
    secret_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = timestamp_field()
    last_used_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    expires_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    revoked_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
