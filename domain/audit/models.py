"""Audit tables: events in a hash chain per workspace, the chain heads, signed checkpoints.

`audit_events` and `audit_checkpoints` are append-only (triggers raise on UPDATE, DELETE
and TRUNCATE); `audit_heads` is the one row per chain that appends lock and move.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import JSON, DateTime, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

# prev_hash of the first event of every chain
GENESIS = "0" * 64


class ActorKind(enum.StrEnum):
    USER = "user"
    API_TOKEN = "api_token"
    SYSTEM = "system"
    ANONYMOUS = "anonymous"


class Outcome(enum.StrEnum):
    OK = "ok"
    DENIED = "denied"
    FAILED = "failed"


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_events"
    __table_args__ = (UniqueConstraint("workspace_id", "seq"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # A workspace id, or SYSTEM_OWNER for the system chain (sign-ins, registrations).
    workspace_id: uuid.UUID
    seq: int
    version: int  # of the hash encoding
    occurred_at: datetime = Field(sa_type=DateTime(timezone=True))
    actor_id: uuid.UUID | None = None
    actor_kind: str = Field(max_length=16)
    action: str = Field(max_length=64)
    outcome: str = Field(max_length=16)
    target_ids: list[str] = Field(sa_type=JSON)
    request_id: str | None = Field(default=None, max_length=64)
    ip_enc: bytes | None = Field(default=None, sa_type=LargeBinary)  # under the chain's cipher
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """The last event of a chain; appends take this row FOR UPDATE."""

    __tablename__ = "audit_heads"

    workspace_id: uuid.UUID = Field(primary_key=True)
    seq: int
    hash: str = Field(max_length=64)


class AuditCheckpoint(SQLModel, table=True):
    """An Ed25519 signature over a chain's head (seq and hash) at one moment."""

    __tablename__ = "audit_checkpoints"
    __table_args__ = (UniqueConstraint("workspace_id", "seq"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    workspace_id: uuid.UUID
    seq: int
    head_hash: str = Field(max_length=64)
    signed_at: datetime = Field(sa_type=DateTime(timezone=True))
    key_id: str = Field(max_length=32)
    signature: bytes = Field(sa_type=LargeBinary)
