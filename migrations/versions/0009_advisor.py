"""advisor threads and messages, sealed, with row-level security

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_APP_ROLE = "wealthwise_app"
TABLES = ["advisor_threads", "advisor_messages"]


def _app_role() -> str:
    config = op.get_context().config
    role = config.attributes.get("app_db_role") if config is not None else None
    return str(role or DEFAULT_APP_ROLE)


def upgrade() -> None:
    op.create_table(
        "advisor_threads",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("title_enc", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_advisor_threads_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_advisor_threads_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_advisor_threads")),
    )
    op.create_index(
        "ix_advisor_threads_workspace_updated",
        "advisor_threads",
        ["workspace_id", "updated_at"],
        unique=False,
    )
    op.create_table(
        "advisor_messages",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("thread_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("content_enc", sa.LargeBinary(), nullable=False),
        sa.Column("tool_calls_enc", sa.LargeBinary(), nullable=False),
        sa.Column("citations_enc", sa.LargeBinary(), nullable=False),
        sa.Column("flags_enc", sa.LargeBinary(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=True),
        sa.Column("model", sa.String(length=64), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cache_read_tokens", sa.Integer(), nullable=False),
        sa.Column("cache_creation_tokens", sa.Integer(), nullable=False),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("asked_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["asked_by"], ["users.id"], name=op.f("fk_advisor_messages_asked_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["thread_id"],
            ["advisor_threads.id"],
            name=op.f("fk_advisor_messages_thread_id_advisor_threads"),
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_advisor_messages_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_advisor_messages")),
    )
    op.create_index(
        "ix_advisor_messages_workspace_thread_created",
        "advisor_messages",
        ["workspace_id", "thread_id", "created_at"],
        unique=False,
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    role = _app_role()
    for table in TABLES:
        op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO "{role}"')
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_scope ON {table}"
            " USING (workspace_id = ww_workspace()) WITH CHECK (workspace_id = ww_workspace())"
        )
        op.execute(
            f"CREATE POLICY owner_maintenance ON {table} TO CURRENT_USER"
            " USING (ww_maintenance()) WITH CHECK (ww_maintenance())"
        )


def downgrade() -> None:
    op.drop_index("ix_advisor_messages_workspace_thread_created", table_name="advisor_messages")
    op.drop_table("advisor_messages")
    op.drop_index("ix_advisor_threads_workspace_updated", table_name="advisor_threads")
    op.drop_table("advisor_threads")
