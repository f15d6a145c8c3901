"""oidc identities: sign-in identities at external providers, linked to users

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-27 23:30:00.000000

On PostgreSQL with row-level security in place (the `ww_*` functions of the RLS revision:
chain this revision after it), the table is treated like the other user-owned tables: the
API role may use it and sees a row only for its own user, or by `provider:subject` (the
sign-in lookup, before the user is known).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_APP_ROLE = "wealthwise_app"
USING = "user_id = ww_user() OR provider || ':' || subject = ww_lookup()"
CHECK = "user_id = ww_user()"


def upgrade() -> None:
    op.create_table(
        "oidc_identities",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_oidc_identities_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oidc_identities")),
        sa.UniqueConstraint("provider", "subject", name=op.f("uq_oidc_identities_provider")),
    )
    with op.batch_alter_table("oidc_identities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_oidc_identities_user_id"), ["user_id"], unique=False)
    if _row_level_security():
        _protect()


def downgrade() -> None:
    with op.batch_alter_table("oidc_identities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oidc_identities_user_id"))
    op.drop_table("oidc_identities")


def _row_level_security() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    return bool(bind.execute(sa.text("SELECT to_regprocedure('ww_user()') IS NOT NULL")).scalar())


def _protect() -> None:
    config = op.get_context().config
    role = (config.attributes.get("app_db_role") if config is not None else None) or (
        DEFAULT_APP_ROLE
    )
    op.execute(
        f"""DO $$ BEGIN
          IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
            GRANT SELECT, INSERT, UPDATE, DELETE ON oidc_identities TO "{role}";
          END IF;
        END $$"""
    )
    op.execute("ALTER TABLE oidc_identities ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE oidc_identities FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_scope ON oidc_identities USING ({USING}) WITH CHECK ({CHECK})"
    )
    op.execute(
        "CREATE POLICY owner_maintenance ON oidc_identities TO CURRENT_USER"
        " USING (ww_maintenance()) WITH CHECK (ww_maintenance())"
    )
