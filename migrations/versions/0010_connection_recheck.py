"""owner-defined functions for the WebSocket connections' batched recheck

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 10:50:00

Each API process rechecks all of its open connections at once (api/realtime/registry.py).
Row-level security shows the API's role only one user's sessions and one workspace's
memberships and tokens per transaction, so two functions owned by the table owner answer
for many at once. They take the ids a process already holds (from its own sign-ins) and
give back only which of the given entries are dead: the entry's position, its given id and
a reason code ('session', 'token', 'membership', 'role'); nothing read from a row.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_APP_ROLE = "wealthwise_app"

# As in 0007: the owner's maintenance policy lets the function see every row for its
# duration only; the caller's settings are restored on return.
DEFINER = "LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public SET app.maintenance = 'on'"
FUNCTIONS = {
    # A person's connection lives while its session is live (and the user's) and the user
    # is still a member of the workspace with the same role.
    "ww_ws_dead_sessions(uuid[], uuid[], uuid[], text[])": f"""
CREATE OR REPLACE FUNCTION ww_ws_dead_sessions(
  session_ids uuid[], user_ids uuid[], workspace_ids uuid[], roles text[])
RETURNS TABLE (pos integer, id uuid, reason text)
{DEFINER} AS $$
  SELECT g.pos::integer, g.session_id,
         CASE WHEN s.id IS NULL OR s.revoked_at IS NOT NULL OR s.user_id <> g.user_id
                THEN 'session'
              WHEN m.id IS NULL THEN 'membership'
              ELSE 'role' END
  FROM unnest(session_ids, user_ids, workspace_ids, roles)
       WITH ORDINALITY AS g(session_id, user_id, workspace_id, role, pos)
  LEFT JOIN auth_sessions s ON s.id = g.session_id
  LEFT JOIN memberships m ON m.user_id = g.user_id AND m.workspace_id = g.workspace_id
  WHERE s.id IS NULL OR s.revoked_at IS NOT NULL OR s.user_id <> g.user_id
     OR m.id IS NULL OR m.role <> g.role
$$""",
    # An API token's connection lives while the token is neither revoked nor expired, its
    # creator is still a member, and its role (min(creator's role, scope)) is unchanged.
    "ww_ws_dead_tokens(uuid[], uuid[], text[])": f"""
CREATE OR REPLACE FUNCTION ww_ws_dead_tokens(
  token_ids uuid[], workspace_ids uuid[], roles text[])
RETURNS TABLE (pos integer, id uuid, reason text)
{DEFINER} AS $$
  SELECT x.pos::integer, x.token_id,
         CASE WHEN x.dead THEN 'token' WHEN x.creator_role IS NULL THEN 'membership'
              ELSE 'role' END
  FROM (
    SELECT g.pos, g.token_id, g.role, m.role AS creator_role,
           (t.id IS NULL OR t.revoked_at IS NOT NULL OR coalesce(t.expires_at <= now(), false)
            OR t.workspace_id <> g.workspace_id) AS dead,
           CASE WHEN t.scope = 'read' OR m.role = 'viewer' THEN 'viewer' ELSE 'member' END
             AS effective
    FROM unnest(token_ids, workspace_ids, roles) WITH ORDINALITY
         AS g(token_id, workspace_id, role, pos)
    LEFT JOIN api_tokens t ON t.id = g.token_id
    LEFT JOIN memberships m ON m.user_id = t.created_by AND m.workspace_id = t.workspace_id
  ) x
  WHERE x.dead OR x.creator_role IS NULL OR x.effective <> x.role
$$""",
}


def _app_role() -> str:
    config = op.get_context().config
    role = config.attributes.get("app_db_role") if config is not None else None
    return str(role or DEFAULT_APP_ROLE)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    role = _app_role()
    for signature, body in FUNCTIONS.items():
        op.execute(body)
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f'GRANT EXECUTE ON FUNCTION {signature} TO "{role}"')


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for signature in FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {signature}")
