"""Outbox tables: events written in the same transaction as the change they announce, and
one sequence head per workspace (appends lock and move it, so seq is contiguous)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


class OutboxEvent(SQLModel, table=True):
    __tablename__ = "outbox_events"
    __table_args__ = (UniqueConstraint("workspace_id", "seq"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    workspace_id: uuid.UUID
    seq: int = Field(sa_type=BigInteger)
    type: str = Field(max_length=64)
    data: str = Field(sa_type=Text)  # compact JSON: ids and non-secret fields only
    occurred_at: datetime = Field(sa_type=DateTime(timezone=True))
    # NULL until the relay has published it; pending rows are found through this index.
    published_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True), index=True)


class OutboxHead(SQLModel, table=True):
    """The last seq given out in a workspace; survives pruning, so seq never goes back."""

    __tablename__ = "outbox_heads"

    workspace_id: uuid.UUID = Field(primary_key=True)
    seq: int = Field(sa_type=BigInteger)
