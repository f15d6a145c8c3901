"""Tables of the core: data keys and idempotency records; shared column helpers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import DateTime, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def timestamp_field() -> datetime:
    return Field(default_factory=utcnow, sa_type=DateTime(timezone=True))  # type: ignore[no-any-return]


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class DataKey(SQLModel, table=True):
    """A data key of one owner (workspace, or the system owner), wrapped by the KEK.

    During a KEK rotation it is also wrapped by the previous KEK, so processes that still
    run with that one keep working until `wealthwise keys purge-retired` drops it.
    """

    __tablename__ = "data_keys"
    __table_args__ = (UniqueConstraint("owner_id", "key_id", "purpose"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = Field(index=True)
    purpose: str = Field(max_length=16)  # "fields" or "index"
    key_id: int
    kek_id: str = Field(max_length=32)
    wrapped: bytes = Field(sa_type=LargeBinary)
    previous_kek_id: str | None = Field(default=None, max_length=32)
    previous_wrapped: bytes | None = Field(default=None, sa_type=LargeBinary)
    created_at: datetime = timestamp_field()
    retired_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class IdempotencyRecord(SQLModel, table=True):
    """Stripe semantics: the first result of a money-moving write, keyed per workspace."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("workspace_id", "key"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    workspace_id: uuid.UUID = Field(foreign_key="workspaces.id")
    key: str = Field(max_length=255)
    operation: str = Field(max_length=64)
    request_hash: str = Field(max_length=64)
    result_id: uuid.UUID | None = None
    created_at: datetime = timestamp_field()
