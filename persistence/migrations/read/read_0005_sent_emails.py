"""sent_emails: each email a reaction sent, by its effect key

Revision ID: read_0005
Revises: read_0004
Create Date: 2026-12-01 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import persistence.types

revision: str = "read_0005"
down_revision: str | None = "read_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sent_emails",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("handler", sa.String(length=80), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("correlation_id", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("sent_at", persistence.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("refused", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_sent_emails")),
    )
    with op.batch_alter_table("sent_emails", schema=None) as batch_op:
        batch_op.create_index("ix_sent_emails_correlation_id", ["correlation_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sent_emails", schema=None) as batch_op:
        batch_op.drop_index("ix_sent_emails_correlation_id")
    op.drop_table("sent_emails")
