"""webhook_summaries, webhook_deliveries and webhook_attempts: the webhooks as staff list
them, and each delivery of an event to one with every attempt at it

Revision ID: read_0007
Revises: read_0006
Create Date: 2026-12-01 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import persistence.types

revision: str = "read_0007"
down_revision: str | None = "read_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_POSITION = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _when(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, persistence.types.UtcDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "webhook_summaries",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.String(length=500), nullable=True),
        _when("created_at", nullable=False),
        _when("disabled_at", nullable=True),
        sa.Column("created_position", _POSITION, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("last_position", _POSITION, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_summaries")),
        sa.UniqueConstraint("created_position", name=op.f("uq_webhook_summaries_created_position")),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("webhook_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("position", _POSITION, nullable=False),
        sa.Column("correlation_id", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _when("created_at", nullable=False),
        _when("due_at", nullable=True),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        _when("claimed_until", nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        _when("finished_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint(
            "webhook_id", "event_id", name=op.f("uq_webhook_deliveries_webhook_id_event_id")
        ),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_deliveries_due_at", ["due_at"], unique=False)
        batch_op.create_index(
            "ix_webhook_deliveries_webhook_id_position", ["webhook_id", "position"], unique=False
        )
        batch_op.create_index(
            "ix_webhook_deliveries_correlation_id", ["correlation_id"], unique=False
        )
        batch_op.create_index(
            "ix_webhook_deliveries_claimed_until", ["claimed_until"], unique=False
        )
    op.create_table(
        "webhook_attempts",
        sa.Column("id", _POSITION, autoincrement=True, nullable=False),
        sa.Column("delivery_id", sa.String(length=32), nullable=False),
        sa.Column("webhook_id", sa.String(length=64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        _when("attempted_at", nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("response_excerpt", sa.String(length=200), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        _when("next_retry_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
    )
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_attempts_delivery_id_number", ["delivery_id", "number"], unique=False
        )
        batch_op.create_index(
            "ix_webhook_attempts_webhook_id_succeeded_id",
            ["webhook_id", "succeeded", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_webhook_attempts_webhook_id_id", ["webhook_id", "id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_summaries")
