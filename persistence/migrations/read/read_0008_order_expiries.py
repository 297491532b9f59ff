"""order_expiries (to be written)

Revision ID: read_0008
Revises: read_0007
Create Date: 2026-12-01 22:30:00
"""

from collections.abc import Sequence

revision: str = "read_0008"
down_revision: str | None = "read_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
