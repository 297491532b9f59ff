"""order_expiries: when each pending order falls due, and what came of it

Revision ID: read_0008
Revises: read_0007
Create Date: 2026-12-01 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import persistence.types

revision: str = "read_0008"
down_revision: str | None = "read_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "order_expiries",
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("due_at", persistence.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expected_version", sa.Integer(), nullable=False),
        sa.Column("correlation_id", sa.String(length=64), nullable=False),
        sa.Column("placed_event_id", sa.String(length=36), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claimed_by", sa.String(length=200), nullable=True),
        sa.Column("claimed_until", persistence.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=80), nullable=True),
        sa.Column("settled_at", persistence.types.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_order_expiries")),
    )
    with op.batch_alter_table("order_expiries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_order_expiries_settled_at_due_at", ["settled_at", "due_at"], unique=False
        )
        batch_op.create_index("ix_order_expiries_correlation_id", ["correlation_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("order_expiries", schema=None) as batch_op:
        batch_op.drop_index("ix_order_expiries_correlation_id")
        batch_op.drop_index("ix_order_expiries_settled_at_due_at")
    op.drop_table("order_expiries")
