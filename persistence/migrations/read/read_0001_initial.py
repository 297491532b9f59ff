"""checkpoints, product catalog, customer and order summaries

Revision ID: read_0001
Revises:
Create Date: 2026-11-26 09:47:07.431494
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import persistence.types

revision: str = "read_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_summaries",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("order_count", sa.Integer(), nullable=False),
        sa.Column("lifetime_value", persistence.types.ScaledDecimal(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("registered_at", persistence.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column(
            "registered_position",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "last_position", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_summaries")),
        sa.UniqueConstraint(
            "registered_position", name=op.f("uq_customer_summaries_registered_position")
        ),
    )
    with op.batch_alter_table("customer_summaries", schema=None) as batch_op:
        batch_op.create_index("ix_customer_summaries_name_id", ["name", "id"], unique=False)

    op.create_table(
        "order_lines",
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("line_number", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.String(length=64), nullable=False),
        sa.Column("product_name", sa.String(length=200), nullable=False),
        sa.Column("unit_price", persistence.types.ScaledDecimal(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("line_total", persistence.types.ScaledDecimal(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.PrimaryKeyConstraint("order_id", "line_number", name=op.f("pk_order_lines")),
    )
    op.create_table(
        "order_summaries",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("customer_name", sa.String(length=200), nullable=False),
        sa.Column("customer_email", sa.String(length=254), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("line_count", sa.Integer(), nullable=False),
        sa.Column("total", persistence.types.ScaledDecimal(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("street", sa.String(length=200), nullable=False),
        sa.Column("city", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=100), nullable=False),
        sa.Column("postal_code", sa.String(length=20), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("special_instructions", sa.Text(), nullable=False),
        sa.Column("placed_at", persistence.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", persistence.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "placed_position", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "last_position", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_summaries")),
        sa.UniqueConstraint("placed_position", name=op.f("uq_order_summaries_placed_position")),
    )
    with op.batch_alter_table("order_summaries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_order_summaries_customer_placed", ["customer_id", "placed_position"], unique=False
        )
        batch_op.create_index(
            "ix_order_summaries_placed_at", ["placed_at", "placed_position"], unique=False
        )
        batch_op.create_index(
            "ix_order_summaries_customer_status_placed",
            ["customer_id", "status", "placed_position"],
            unique=False,
        )
        batch_op.create_index(
            "ix_order_summaries_customer_total_id", ["customer_id", "total", "id"], unique=False
        )
        batch_op.create_index(
            "ix_order_summaries_status_placed", ["status", "placed_position"], unique=False
        )
        batch_op.create_index(
            "ix_order_summaries_status_total_id", ["status", "total", "id"], unique=False
        )
        batch_op.create_index("ix_order_summaries_total_id", ["total", "id"], unique=False)

    op.create_table(
        "product_catalog",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("price", persistence.types.ScaledDecimal(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", persistence.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", persistence.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column(
            "created_position", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "last_position", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_catalog")),
        sa.UniqueConstraint("created_position", name=op.f("uq_product_catalog_created_position")),
    )
    with op.batch_alter_table("product_catalog", schema=None) as batch_op:
        batch_op.create_index("ix_product_catalog_name_id", ["name", "id"], unique=False)
        batch_op.create_index("ix_product_catalog_price_id", ["price", "id"], unique=False)

    op.create_table(
        "projection_checkpoints",
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("position", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("parked_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_projection_checkpoints")),
    )


def downgrade() -> None:
    op.drop_table("projection_checkpoints")
    with op.batch_alter_table("product_catalog", schema=None) as batch_op:
        batch_op.drop_index("ix_product_catalog_price_id")
        batch_op.drop_index("ix_product_catalog_name_id")

    op.drop_table("product_catalog")
    with op.batch_alter_table("order_summaries", schema=None) as batch_op:
        batch_op.drop_index("ix_order_summaries_total_id")
        batch_op.drop_index("ix_order_summaries_status_total_id")
        batch_op.drop_index("ix_order_summaries_status_placed")
        batch_op.drop_index("ix_order_summaries_customer_total_id")
        batch_op.drop_index("ix_order_summaries_customer_status_placed")
        batch_op.drop_index("ix_order_summaries_placed_at")
        batch_op.drop_index("ix_order_summaries_customer_placed")

    op.drop_table("order_summaries")
    op.drop_table("order_lines")
    with op.batch_alter_table("customer_summaries", schema=None) as batch_op:
        batch_op.drop_index("ix_customer_summaries_name_id")

    op.drop_table("customer_summaries")
