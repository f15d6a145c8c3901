"""transactional outbox: events per workspace with a contiguous seq, and the relay's
owner-defined functions

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 00:45:00

On PostgreSQL both tables get the same row-level security as every workspace table. The
relay and the retention job run as the API's role, which sees one workspace per
transaction; three functions owned by the table owner work across workspaces and give
back only what an event row holds (ids, seq, type, its id-only data, times) or a count.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_APP_ROLE = "wealthwise_app"
TABLES = ["outbox_events", "outbox_heads"]

# SET app.maintenance for the function's duration only: the owner's maintenance policy
# (0006) then lets it see every workspace; the caller's settings are restored on return.
DEFINER = "LANGUAGE sql SECURITY DEFINER SET search_path = public SET app.maintenance = 'on'"
FUNCTIONS = {
    "ww_outbox_pending(integer)": f"""
CREATE OR REPLACE FUNCTION ww_outbox_pending(max_rows integer)
RETURNS TABLE (id uuid, workspace_id uuid, seq bigint, type varchar, data text,
               occurred_at timestamptz)
{DEFINER} AS $$
  SELECT e.id, e.workspace_id, e.seq, e.type, e.data, e.occurred_at
  FROM outbox_events e WHERE e.published_at IS NULL
  ORDER BY e.workspace_id, e.seq LIMIT least(greatest(max_rows, 0), 10000)
$$""",
    "ww_outbox_mark_published(uuid[])": f"""
CREATE OR REPLACE FUNCTION ww_outbox_mark_published(ids uuid[]) RETURNS integer
{DEFINER} AS $$
  WITH marked AS (
    UPDATE outbox_events SET published_at = now()
    WHERE id = ANY(ids) AND published_at IS NULL RETURNING 1)
  SELECT count(*)::integer FROM marked
$$""",
    "ww_outbox_prune(timestamptz, integer)": f"""
CREATE OR REPLACE FUNCTION ww_outbox_prune(published_before timestamptz, max_rows integer)
RETURNS integer
{DEFINER} AS $$
  WITH pruned AS (
    DELETE FROM outbox_events WHERE id IN (
      SELECT e.id FROM outbox_events e WHERE e.published_at < published_before
      ORDER BY e.published_at LIMIT greatest(max_rows, 0))
    RETURNING 1)
  SELECT count(*)::integer FROM pruned
$$""",
}


def _app_role() -> str:
    config = op.get_context().config
    role = config.attributes.get("app_db_role") if config is not None else None
    return str(role or DEFAULT_APP_ROLE)


def upgrade() -> None:
    op.create_table(
        "outbox_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_events")),
        sa.UniqueConstraint("workspace_id", "seq", name=op.f("uq_outbox_events_workspace_id")),
    )
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outbox_events_published_at"), ["published_at"], unique=False
        )
    op.create_table(
        "outbox_heads",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", name=op.f("pk_outbox_heads")),
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
    for signature, body in FUNCTIONS.items():
        op.execute(body)
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f'GRANT EXECUTE ON FUNCTION {signature} TO "{role}"')


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for signature in FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {signature}")
    op.drop_table("outbox_heads")
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_events_published_at"))
    op.drop_table("outbox_events")
