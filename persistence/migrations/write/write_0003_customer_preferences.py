"""customer_preferences (to be written)

Revision ID: write_0003
Revises: write_0002
Create Date: 2026-12-01 22:30:00
"""

from collections.abc import Sequence

revision: str = "write_0003"
down_revision: str | None = "write_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
