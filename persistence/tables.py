"""The tables. Write-side tables live in `write_metadata`; read models and their checkpoints
in `read_metadata`, which may sit in another database (ORDERDESK_READ_DATABASE_URL)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from persistence.types import ScaledDecimal, UtcDateTime

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
Position = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

write_metadata = MetaData(naming_convention=NAMING)
read_metadata = MetaData(naming_convention=NAMING)

event_log = Table(
    "event_log",
    write_metadata,
    Column("position", Position, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("stream_type", String(40), nullable=False),
    Column("stream_id", String(64), nullable=False),
    Column("stream_version", Integer, nullable=False),
    Column("event_type", String(80), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("correlation_id", String(64), nullable=False),
    # A second writer of the same aggregate version fails here, whatever the rows said.
    UniqueConstraint("stream_id", "stream_version"),
)

products = Table(
    "products",
    write_metadata,
    Column("id", String(64), primary_key=True),
    Column("sku", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("price", ScaledDecimal, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("stock", Integer, nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("version", Integer, nullable=False),
)

projection_checkpoints = Table(
    "projection_checkpoints",
    read_metadata,
    Column("name", String(80), primary_key=True),
    Column("position", Position, nullable=False),
)

product_catalog = Table(
    "product_catalog",
    read_metadata,
    Column("id", String(64), primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    # Lower-cased name and sku, so search is a plain LIKE on both databases.
    Column("search_text", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("price", ScaledDecimal, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("stock", Integer, nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # The log position of the product's creation: unique and increasing, the NEWEST key.
    Column("created_position", Position, nullable=False, unique=True),
    Column("last_position", Position, nullable=False),
    Index("ix_product_catalog_name_id", "name", "id"),
    Index("ix_product_catalog_price_id", "price", "id"),
)
