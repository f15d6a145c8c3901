"""wake relays in any process: a NOTIFY at the commit of every transaction that appended
outbox events

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 19:00:00

A relay learns of a commit in its own process from the session hook; a commit in another
process (the API's, when the worker relays) it found only by polling, `outbox_poll_seconds`
later (0.2 s by default). A statement-level trigger on outbox_events now notifies channel
`ww_outbox`, which every relay LISTENs on (domain/realtime/relay.py). PostgreSQL delivers a
notification only when its transaction commits, and folds identical ones of a transaction
into one: an `emit_many` wakes the relays once, and a rolled-back one not at all. The
payload is empty; nothing of the event leaves the table this way.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
CREATE OR REPLACE FUNCTION ww_outbox_notify() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
  PERFORM pg_notify('ww_outbox', '');
  RETURN NULL;
END
$$"""
    )
    # Nobody calls it: PostgreSQL does, as the trigger (firing checks no EXECUTE grant).
    op.execute("REVOKE ALL ON FUNCTION ww_outbox_notify() FROM PUBLIC")
    op.execute(
        "CREATE TRIGGER outbox_events_notify AFTER INSERT ON outbox_events"
        " FOR EACH STATEMENT EXECUTE FUNCTION ww_outbox_notify()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS outbox_events_notify ON outbox_events")
        op.execute("DROP FUNCTION IF EXISTS ww_outbox_notify()")
