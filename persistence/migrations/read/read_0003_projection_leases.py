"""projection_checkpoints.leader and .beat: one process applies each projection

Revision ID: read_0003
Revises: read_0002
Create Date: 2026-12-01 15:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "read_0003"
down_revision: str | None = "read_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("projection_checkpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("leader", sa.String(200), nullable=True))
        batch_op.add_column(sa.Column("beat", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("projection_checkpoints", schema=None) as batch_op:
        batch_op.drop_column("beat")
        batch_op.drop_column("leader")
