"""Advisor threads and messages. Everything a person or the model wrote is sealed: the
thread's title, a message's text, its tool calls with their results, and the details of
its flags. Ids, roles, statuses, token counts and times stay clear for queries."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import DateTime, Index, LargeBinary
from sqlmodel import Field, SQLModel

from domain.core.models import timestamp_field


class AdvisorThread(SQLModel, table=True):
    __tablename__ = "advisor_threads"
    __table_args__ = (Index("ix_advisor_threads_workspace_updated", "workspace_id", "updated_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    workspace_id: uuid.UUID = Field(foreign_key="workspaces.id")
    created_by: uuid.UUID = Field(foreign_key="users.id")
    title_enc: bytes = Field(sa_type=LargeBinary)
    created_at: dt.datetime = timestamp_field()
    updated_at: dt.datetime = timestamp_field()


class AdvisorMessage(SQLModel, table=True):
    """One turn. An assistant message grows while it is generated (`version` counts its
    saves); a subscriber re-reads it on each `advisor.message.updated` event."""

    __tablename__ = "advisor_messages"
    __table_args__ = (
        Index(
            "ix_advisor_messages_workspace_thread_created",
            "workspace_id",
            "thread_id",
            "created_at",
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    workspace_id: uuid.UUID = Field(foreign_key="workspaces.id")
    thread_id: uuid.UUID = Field(foreign_key="advisor_threads.id")
    role: str = Field(max_length=16)  # "user" | "assistant"
    # "pending" (queued), "streaming", "done", "failed"; a user message is "done" at once.
    status: str = Field(max_length=16)
    content_enc: bytes = Field(sa_type=LargeBinary)
    # JSON: [{"id", "name", "input", "result", "is_error"}], and the cited transaction ids
    tool_calls_enc: bytes = Field(sa_type=LargeBinary)
    citations_enc: bytes = Field(sa_type=LargeBinary)
    # JSON: [{"code", "detail"}]: e.g. a figure no tool result of this answer contains
    flags_enc: bytes = Field(sa_type=LargeBinary)
    version: int = 0
    provider: str | None = Field(default=None, max_length=32)
    model: str | None = Field(default=None, max_length=64)
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    error_code: str | None = Field(default=None, max_length=32)
    asked_by: uuid.UUID | None = Field(default=None, foreign_key="users.id")
    created_at: dt.datetime = timestamp_field()
    completed_at: dt.datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
