"""customers.marketing_opt_in and .language: the profile's preferences (null: no profile yet)

Revision ID: write_0003
Revises: write_0002
Create Date: 2026-12-01 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "write_0003"
down_revision: str | None = "write_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, without a default: customers registered before have no profile, and get one
    # when they first choose their preferences.
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("marketing_opt_in", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("language", sa.String(12), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_column("language")
        batch_op.drop_column("marketing_opt_in")
