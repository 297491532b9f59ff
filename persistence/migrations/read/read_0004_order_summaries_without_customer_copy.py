"""order_summaries without customer_name and customer_email: projected, never read (an
order's customer is read from customer_summaries, which stays current)

Revision ID: read_0004
Revises: read_0003
Create Date: 2026-12-01 16:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "read_0004"
down_revision: str | None = "read_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("order_summaries", schema=None) as batch_op:
        batch_op.drop_column("customer_email")
        batch_op.drop_column("customer_name")


def downgrade() -> None:
    # Back as empty columns: this version of the projection writes them no more.
    with op.batch_alter_table("order_summaries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("customer_name", sa.String(200), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("customer_email", sa.String(254), nullable=False, server_default="")
        )
