"""projection_checkpoints.rebuilds: how other processes notice a rebuild

Revision ID: read_0002
Revises: read_0001
Create Date: 2026-12-01 11:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "read_0002"
down_revision: str | None = "read_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("projection_checkpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rebuilds", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("projection_checkpoints", schema=None) as batch_op:
        batch_op.drop_column("rebuilds")
