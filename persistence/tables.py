"""The tables. Write-side tables live in `write_metadata`; read models and their checkpoints
in `read_metadata`, which may sit in another database (ORDERDESK_READ_DATABASE_URL)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
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
    # The command that wrote the event, and, for a reaction's write, the id of the event it
    # reacted to: what `orderdesk trace` follows from one request to all it caused.
    Column("command", String(80), nullable=True),
    Column("causation_id", String(36), nullable=True),
    # A second writer of the same aggregate version fails here, whatever the rows said.
    UniqueConstraint("stream_id", "stream_version"),
    Index("ix_event_log_correlation_id", "correlation_id"),
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

customers = Table(
    "customers",
    write_metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("email", String(254), nullable=False, unique=True),
    Column("version", Integer, nullable=False),
)

orders = Table(
    "orders",
    write_metadata,
    Column("id", String(64), primary_key=True),
    Column("customer_id", String(64), ForeignKey("customers.id"), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("currency", String(3), nullable=False),
    # Lines and address never change once placed; the aggregate reads them whole.
    Column("lines", JSON, nullable=False),
    Column("shipping_address", JSON, nullable=False),
    Column("special_instructions", Text, nullable=False),
    Column("version", Integer, nullable=False),
)

idempotency_keys = Table(
    "idempotency_keys",
    write_metadata,
    # The scope names the command and the caller, so one caller's key never meets another's.
    Column("scope", String(200), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("entity_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("position", Position, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

projection_checkpoints = Table(
    "projection_checkpoints",
    read_metadata,
    Column("name", String(80), primary_key=True),
    Column("position", Position, nullable=False),
    # Why the projection stopped, once it has failed too often; cleared when it runs again.
    # Kept here, not only in memory, so `orderdesk projections status` sees it from outside.
    Column("parked_error", Text, nullable=True),
    # Counted up when a rebuild starts and when it ends: how another process's projector
    # learns that what it read (and cached) meanwhile is stale, though positions end equal.
    Column("rebuilds", Integer, nullable=False, server_default="0"),
    # The process that applies this projection (see persistence/projection_leases.py), and
    # the beat it counts up as it works: a beat that stops moving is a lease to take over.
    Column("leader", String(200), nullable=True),
    Column("beat", BigInteger, nullable=False, server_default="0"),
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

customer_summaries = Table(
    "customer_summaries",
    read_metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("email", String(254), nullable=False),
    Column("search_text", Text, nullable=False),
    Column("order_count", Integer, nullable=False),
    # Orders not withdrawn (cancelled), in the currency of the customer's first order.
    Column("lifetime_value", ScaledDecimal, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("registered_at", UtcDateTime, nullable=False),
    Column("registered_position", Position, nullable=False, unique=True),
    Column("version", Integer, nullable=False),
    Column("last_position", Position, nullable=False),
    Index("ix_customer_summaries_name_id", "name", "id"),
)

order_summaries = Table(
    "order_summaries",
    read_metadata,
    Column("id", String(64), primary_key=True),
    Column("customer_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("line_count", Integer, nullable=False),
    Column("total", ScaledDecimal, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("street", String(200), nullable=False),
    Column("city", String(100), nullable=False),
    Column("state", String(100), nullable=False),
    Column("postal_code", String(20), nullable=False),
    Column("country", String(2), nullable=False),
    Column("special_instructions", Text, nullable=False),
    Column("placed_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("version", Integer, nullable=False),
    # The log position of OrderPlaced: unique and increasing, the key of NEWEST and OLDEST.
    Column("placed_position", Position, nullable=False, unique=True),
    Column("last_position", Position, nullable=False),
    # One index per filter and sort of `orders` and `Customer.orders`, so every page is a
    # range scan in key order whatever the table's size: NEWEST/OLDEST without a filter
    # walk the unique placed_position index; TOTAL_DESC walks (total, id) backwards.
    Index("ix_order_summaries_customer_placed", "customer_id", "placed_position"),
    Index("ix_order_summaries_customer_status_placed", "customer_id", "status", "placed_position"),
    Index("ix_order_summaries_customer_total_id", "customer_id", "total", "id"),
    Index("ix_order_summaries_status_placed", "status", "placed_position"),
    Index("ix_order_summaries_status_total_id", "status", "total", "id"),
    Index("ix_order_summaries_placed_at", "placed_at", "placed_position"),
    Index("ix_order_summaries_total_id", "total", "id"),
)

order_lines = Table(
    "order_lines",
    read_metadata,
    Column("order_id", String(64), primary_key=True),
    Column("line_number", Integer, primary_key=True),
    Column("product_id", String(64), nullable=False),
    Column("product_name", String(200), nullable=False),
    Column("unit_price", ScaledDecimal, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("line_total", ScaledDecimal, nullable=False),
    Column("currency", String(3), nullable=False),
)
