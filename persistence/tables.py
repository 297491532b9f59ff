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
    # The profile's preferences: both null until the profile is created (a reaction to the
    # registration creates it a moment after the customer registered).
    Column("marketing_opt_in", Boolean, nullable=True),
    Column("language", String(12), nullable=True),
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

sign_in_codes = Table(
    "sign_in_codes",
    write_metadata,
    # One row per customer that asked for a code: its latest code's id, never the code
    # (domain/sign_in.py derives that from the id), and what became of it.
    Column("id", String(64), primary_key=True),
    Column("customer_id", String(64), ForeignKey("customers.id"), nullable=False, unique=True),
    Column("code_id", String(64), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("version", Integer, nullable=False),
)

webhooks = Table(
    "webhooks",
    write_metadata,
    Column("id", String(64), primary_key=True),
    Column("url", String(2000), nullable=False),
    # GraphQL names of the events it takes ("ORDER_PLACED"): few, read whole.
    Column("events", JSON, nullable=False),
    # The signing secret lives here only: never in an event, a read model or a log line.
    Column("secret", String(100), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("disabled_reason", String(500), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("version", Integer, nullable=False),
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
    # The profile's preferences, null until it exists. Here rather than in a table of their
    # own: a profile change bumps the customer's version, which this row carries, so one row
    # read shows preferences and version together, never one newer than the other, and
    # `me { version preferences }` stays one statement and one cache entry.
    Column("marketing_opt_in", Boolean, nullable=True),
    Column("language", String(12), nullable=True),
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

sent_emails = Table(
    "sent_emails",
    read_metadata,
    # One row per email a reaction sent, by its effect key ("<handler>:<event id>"): the
    # mailer sends no key twice, and `orderdesk trace` lists a request's emails from here.
    Column("key", String(200), primary_key=True),
    Column("handler", String(80), nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("correlation_id", String(64), nullable=False),
    Column("recipient", String(254), nullable=False),
    Column("subject", Text, nullable=False),
    Column("message_id", String(200), nullable=False),
    Column("sent_at", UtcDateTime, nullable=False),
    # The mail server's answer when it refused the message for good (an address that does
    # not exist): recorded like a sent one, so that the handler goes on with the next.
    Column("refused", Text, nullable=True),
    Index("ix_sent_emails_correlation_id", "correlation_id"),
)

order_expiries = Table(
    "order_expiries",
    read_metadata,
    # One row per order placed while ORDERDESK_PENDING_ORDER_TTL is set: when it falls due,
    # what the timer must send (the version the order had when placed, the request and the
    # event that caused it), who holds it for now, and what came of it.
    Column("order_id", String(64), primary_key=True),
    Column("due_at", UtcDateTime, nullable=False),
    Column("expected_version", Integer, nullable=False),
    Column("correlation_id", String(64), nullable=False),
    Column("placed_event_id", String(36), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
    Column("claimed_by", String(200), nullable=True),
    Column("claimed_until", UtcDateTime, nullable=True),
    Column("outcome", String(80), nullable=True),
    Column("settled_at", UtcDateTime, nullable=True),
    # The timer's question, "which unsettled rows are due", is a range scan of this index.
    Index("ix_order_expiries_settled_at_due_at", "settled_at", "due_at"),
    Index("ix_order_expiries_correlation_id", "correlation_id"),
)

webhook_summaries = Table(
    "webhook_summaries",
    read_metadata,
    Column("id", String(64), primary_key=True),
    Column("url", String(2000), nullable=False),
    Column("events", JSON, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("disabled_reason", String(500), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("disabled_at", UtcDateTime, nullable=True),
    # The log position of the registration: unique and increasing, the list's key.
    Column("created_position", Position, nullable=False, unique=True),
    Column("version", Integer, nullable=False),
    Column("last_position", Position, nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    read_metadata,
    # One row per (webhook, event): the fan-out inserts it once, whatever the redeliveries,
    # with the body every attempt sends; the courier claims it when due and records each try.
    Column("id", String(32), primary_key=True),
    Column("webhook_id", String(64), nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("event_type", String(40), nullable=False),
    Column("position", Position, nullable=False),
    Column("correlation_id", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # When the next attempt is due; null once delivered, given up or cancelled.
    Column("due_at", UtcDateTime, nullable=True),
    Column("claimed_by", String(64), nullable=True),
    Column("claimed_until", UtcDateTime, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", String(500), nullable=True),
    Column("finished_at", UtcDateTime, nullable=True),
    UniqueConstraint("webhook_id", "event_id"),
    # The courier's question, "what is due", is a range scan of due_at; a webhook's
    # deliveries are paged newest first by position.
    Index("ix_webhook_deliveries_due_at", "due_at"),
    Index("ix_webhook_deliveries_webhook_id_position", "webhook_id", "position"),
    Index("ix_webhook_deliveries_correlation_id", "correlation_id"),
    # Which webhooks have a delivery under way, asked at every claim.
    Index("ix_webhook_deliveries_claimed_until", "claimed_until"),
)

webhook_attempts = Table(
    "webhook_attempts",
    read_metadata,
    Column("id", Position, primary_key=True, autoincrement=True),
    Column("delivery_id", String(32), nullable=False),
    Column("webhook_id", String(64), nullable=False),
    Column("number", Integer, nullable=False),
    Column("attempted_at", UtcDateTime, nullable=False),
    Column("succeeded", Boolean, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", String(500), nullable=True),
    # A short excerpt of what the endpoint answered, cleaned of control characters.
    Column("response_excerpt", String(200), nullable=True),
    Column("duration_ms", Integer, nullable=False),
    Column("next_retry_at", UtcDateTime, nullable=True),
    Index("ix_webhook_attempts_delivery_id_number", "delivery_id", "number"),
    # A webhook's failures in a row: the attempts after its last success.
    Index("ix_webhook_attempts_webhook_id_succeeded_id", "webhook_id", "succeeded", "id"),
    Index("ix_webhook_attempts_webhook_id_id", "webhook_id", "id"),
)
