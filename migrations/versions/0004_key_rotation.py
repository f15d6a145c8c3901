"""key rotation: data keys keep a wrapping by the previous KEK during a KEK rotation

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 23:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("data_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_kek_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("previous_wrapped", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("data_keys", schema=None) as batch_op:
        batch_op.drop_column("previous_wrapped")
        batch_op.drop_column("previous_kek_id")
