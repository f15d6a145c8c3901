"""row level security: the API's own role, per-transaction tenant scope, forced policies

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 23:30:00

PostgreSQL only (SQLite has no roles; there the repository layer is the only wall).

The API connects as a role (default `wealthwise_app`) that owns nothing and cannot bypass
RLS; migrations run as the owner. Every table that holds a workspace's or a user's data
has FORCE ROW LEVEL SECURITY and one permissive policy for everyone, written against the
transaction-local settings that `domain.core.db.bind_scope` sets:

  app.workspace_id  the workspace the transaction acts for
  app.user_id       the signed-in user (their own sessions, memberships, workspaces list)
  app.lookup        a token hash / blind index the caller may look one row up by
                    before it knows the owner (login, refresh, invitation)

With nothing set, every such table is empty. A second policy lets the owner role (only)
see everything when it sets `app.maintenance = on` (admin CLI: key rotation, audit verify).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_APP_ROLE = "wealthwise_app"

FUNCTIONS = [
    """CREATE OR REPLACE FUNCTION ww_workspace() RETURNS uuid LANGUAGE sql STABLE AS
  $$ SELECT nullif(current_setting('app.workspace_id', true), '')::uuid $$""",
    """CREATE OR REPLACE FUNCTION ww_user() RETURNS uuid LANGUAGE sql STABLE AS
  $$ SELECT nullif(current_setting('app.user_id', true), '')::uuid $$""",
    """CREATE OR REPLACE FUNCTION ww_lookup() RETURNS text LANGUAGE sql STABLE AS
  $$ SELECT nullif(current_setting('app.lookup', true), '') $$""",
    """CREATE OR REPLACE FUNCTION ww_lookup_bytes() RETURNS bytea LANGUAGE sql STABLE AS
  $$ SELECT CASE WHEN ww_lookup() ~ '^([0-9a-f]{2})+$' THEN decode(ww_lookup(), 'hex') END $$""",
    """CREATE OR REPLACE FUNCTION ww_maintenance() RETURNS boolean LANGUAGE sql STABLE AS
  $$ SELECT coalesce(current_setting('app.maintenance', true), '') = 'on' $$""",
]

MY_WORKSPACES = "(SELECT m.workspace_id FROM memberships m WHERE m.user_id = ww_user())"

# table -> (USING, WITH CHECK); None for WITH CHECK means "same as USING".
POLICIES: dict[str, tuple[str, str | None]] = {
    "workspaces": (f"id = ww_workspace() OR id IN {MY_WORKSPACES}", "id = ww_workspace()"),
    "memberships": (
        "workspace_id = ww_workspace() OR user_id = ww_user()",
        "workspace_id = ww_workspace()",
    ),
    "invitations": (
        "workspace_id = ww_workspace() OR token_hash = ww_lookup()",
        "workspace_id = ww_workspace()",
    ),
    "users": (
        "id = ww_user() OR email_index = ww_lookup_bytes()"
        " OR id IN (SELECT m.user_id FROM memberships m WHERE m.workspace_id = ww_workspace())",
        "id = ww_user()",
    ),
    "auth_sessions": ("user_id = ww_user()", None),
    "refresh_tokens": ("user_id = ww_user() OR token_hash = ww_lookup()", "user_id = ww_user()"),
    # sign-in through a provider looks its link up by provider:subject before the user is known
    "oidc_identities": (
        "user_id = ww_user() OR provider || ':' || subject = ww_lookup()",
        "user_id = ww_user()",
    ),
    # an API token is found by its secret's hash before its workspace is known
    "api_tokens": (
        "workspace_id = ww_workspace() OR secret_hash = ww_lookup()",
        "workspace_id = ww_workspace()",
    ),
    "data_keys": (
        "owner_id = ww_workspace() OR owner_id = '00000000-0000-0000-0000-000000000000'"
        f" OR owner_id IN {MY_WORKSPACES}",
        "owner_id = ww_workspace()",
    ),
}
WORKSPACE_TABLES = [
    "idempotency_records",
    "accounts",
    "categories",
    "transactions",
    "postings",
    "tags",
    "transaction_tags",
    "month_totals",
    "fx_rates",
    "audit_events",
    "audit_heads",
    "audit_checkpoints",
]
# Append-only for the API role (a trigger also raises for everyone).
INSERT_ONLY_TABLES = ["audit_events", "audit_checkpoints"]

# The periodic sealer runs in the API process, whose role sees one workspace per
# transaction: this function, owned by the table owner, lists only which chains moved
# since their last checkpoint (ids, nothing else).
CHAINS_TO_SEAL = """
CREATE OR REPLACE FUNCTION ww_audit_chains_to_seal() RETURNS SETOF uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
  PERFORM set_config('app.maintenance', 'on', true);
  RETURN QUERY
    SELECT h.workspace_id FROM audit_heads h
    WHERE h.seq > coalesce(
      (SELECT max(c.seq) FROM audit_checkpoints c WHERE c.workspace_id = h.workspace_id), 0)
    ORDER BY h.workspace_id;
  PERFORM set_config('app.maintenance', '', true);
END $$"""


def _app_role() -> str:
    config = op.get_context().config
    role = config.attributes.get("app_db_role") if config is not None else None
    return str(role or DEFAULT_APP_ROLE)


def _app_password() -> str | None:
    config = op.get_context().config
    password = config.attributes.get("app_db_password") if config is not None else None
    return str(password) if password else None


def upgrade() -> None:
    # refresh tokens name their user, so a refresh can be scoped before the session is read
    with op.batch_alter_table("refresh_tokens") as batch_op:
        batch_op.add_column(sa.Column("user_id", sa.Uuid(), nullable=True))
    op.execute(
        "UPDATE refresh_tokens SET user_id ="
        " (SELECT s.user_id FROM auth_sessions s WHERE s.id = refresh_tokens.session_id)"
    )
    with op.batch_alter_table("refresh_tokens") as batch_op:
        batch_op.alter_column("user_id", nullable=False)
        batch_op.create_index(batch_op.f("ix_refresh_tokens_user_id"), ["user_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_refresh_tokens_user_id_users"), "users", ["user_id"], ["id"]
        )

    if op.get_bind().dialect.name != "postgresql":
        return
    role = _app_role()
    op.execute(
        f"""DO $$ BEGIN
          IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
            CREATE ROLE "{role}" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
          END IF;
        END $$"""
    )
    for function in FUNCTIONS:
        op.execute(function)
    password = _app_password()
    if password is not None:  # compose and similar: the role logs in over the network
        literal = "'" + password.replace("'", "''") + "'"
        op.execute(f'ALTER ROLE "{role}" PASSWORD {literal}')
    op.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')
    op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"')
    op.execute(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{role}"')
    op.execute(f'REVOKE ALL ON alembic_version FROM "{role}"')
    op.execute(f'GRANT SELECT ON alembic_version TO "{role}"')
    op.execute(CHAINS_TO_SEAL)
    op.execute("REVOKE ALL ON FUNCTION ww_audit_chains_to_seal() FROM PUBLIC")
    op.execute(f'GRANT EXECUTE ON FUNCTION ww_audit_chains_to_seal() TO "{role}"')
    for table in INSERT_ONLY_TABLES:
        op.execute(f'REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM "{role}"')
    policies = dict(POLICIES)
    for table in WORKSPACE_TABLES:
        policies[table] = ("workspace_id = ww_workspace()", None)
    for table, (using, check) in policies.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_scope ON {table} USING ({using}) WITH CHECK ({check or using})"
        )
        op.execute(
            f"CREATE POLICY owner_maintenance ON {table} TO CURRENT_USER"
            " USING (ww_maintenance()) WITH CHECK (ww_maintenance())"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ww_audit_chains_to_seal()")
        for table in [*POLICIES, *WORKSPACE_TABLES]:
            op.execute(f"DROP POLICY IF EXISTS tenant_scope ON {table}")
            op.execute(f"DROP POLICY IF EXISTS owner_maintenance ON {table}")
            op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
        op.execute(f'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{_app_role()}"')
    with op.batch_alter_table("refresh_tokens") as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_refresh_tokens_user_id_users"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_refresh_tokens_user_id"))
        batch_op.drop_column("user_id")
