"""product catalog and checkpoints

Revision ID: read_0001
Revises:
Create Date: 2026-11-26 09:31:35.007976
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
        sa.PrimaryKeyConstraint("name", name=op.f("pk_projection_checkpoints")),
    )


def downgrade() -> None:
    op.drop_table("projection_checkpoints")
    with op.batch_alter_table("product_catalog", schema=None) as batch_op:
        batch_op.drop_index("ix_product_catalog_price_id")
        batch_op.drop_index("ix_product_catalog_name_id")

    op.drop_table("product_catalog")
