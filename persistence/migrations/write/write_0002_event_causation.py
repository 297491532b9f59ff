"""event_log.command and .causation_id, and an index by correlation id, for tracing

Revision ID: write_0002
Revises: write_0001
Create Date: 2026-12-01 22:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "write_0002"
down_revision: str | None = "write_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("event_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("command", sa.String(80), nullable=True))
        batch_op.add_column(sa.Column("causation_id", sa.String(36), nullable=True))
        batch_op.create_index("ix_event_log_correlation_id", ["correlation_id"])


def downgrade() -> None:
    with op.batch_alter_table("event_log", schema=None) as batch_op:
        batch_op.drop_index("ix_event_log_correlation_id")
        batch_op.drop_column("causation_id")
        batch_op.drop_column("command")
