"""budgets: a monthly limit per expense category, its amount encrypted

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 09:45:00

On PostgreSQL the table gets the same row-level security as every workspace table (0006).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_APP_ROLE = "wealthwise_app"


def _app_role() -> str:
    config = op.get_context().config
    role = config.attributes.get("app_db_role") if config is not None else None
    return str(role or DEFAULT_APP_ROLE)


def upgrade() -> None:
    op.create_table(
        "budgets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("category_id", sa.Uuid(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_enc", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["category_id"], ["categories.id"], name=op.f("fk_budgets_category_id_categories")
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_budgets_workspace_id_workspaces")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budgets")),
        # Also the index the row-level security policy filters on (led by workspace_id).
        sa.UniqueConstraint("workspace_id", "category_id", name=op.f("uq_budgets_workspace_id")),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    role = _app_role()
    op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON budgets TO "{role}"')
    op.execute("ALTER TABLE budgets ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE budgets FORCE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY tenant_scope ON budgets"
        " USING (workspace_id = ww_workspace()) WITH CHECK (workspace_id = ww_workspace())"
    )
    op.execute(
        "CREATE POLICY owner_maintenance ON budgets TO CURRENT_USER"
        " USING (ww_maintenance()) WITH CHECK (ww_maintenance())"
    )


def downgrade() -> None:
    op.drop_table("budgets")
