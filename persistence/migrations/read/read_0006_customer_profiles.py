"""customer_summaries.marketing_opt_in and .language: customer profiles, in the summary row

The profile is read beside the customer's version, which its changes bump: one row keeps
the two together (see persistence/tables.py), so there is no customer_profiles table.

Revision ID: read_0006
Revises: read_0005
Create Date: 2026-12-01 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "read_0006"
down_revision: str | None = "read_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("customer_summaries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("marketing_opt_in", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("language", sa.String(12), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("customer_summaries", schema=None) as batch_op:
        batch_op.drop_column("language")
        batch_op.drop_column("marketing_opt_in")
