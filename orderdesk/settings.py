"""Every setting, read from ORDERDESK_* environment variables by one object."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORDERDESK_", extra="ignore")

    database_url: str = Field(
        "sqlite+aiosqlite:///orderdesk.db",
        description="The write database (and the read models, unless read_database_url is set).",
    )
    read_database_url: str | None = Field(
        None, description="Put the read models and their checkpoints on another database."
    )
    migrate_on_start: bool = True
    poll_interval: float = Field(
        1.0, gt=0, description="Seconds between looks at the log for other processes' events."
    )
    projection_lease_timeout: float = Field(
        3.0,
        gt=0,
        description="Seconds without a beat before another process takes over applying a "
        "projection from one that stopped answering (a dead process of this host, or one "
        "that let go on stopping, is taken over at once).",
    )
    database_timeout: float = Field(
        5.0,
        gt=0,
        description="Seconds to connect, to get a connection from the pool and (PostgreSQL) "
        "for each statement; past it, SERVICE_UNAVAILABLE (HTTP 503).",
    )
    read_your_writes_timeout: float = Field(
        5.0, gt=0, description="How long a mutation waits for the read models to show its write."
    )
    max_query_depth: int = 10
    max_aliases: int = 30
    max_tokens: int = 2_000
    max_body_bytes: int = Field(
        100_000,
        gt=0,
        description="The largest HTTP body, and the largest websocket message: an order of "
        "50 lines is some 6 kB, a query at most max_query_length.",
    )
    max_query_length: int = Field(
        20_000,
        gt=0,
        description="The longest query text, in characters (QUERY_TOO_LONG): lexing a "
        "megabyte of comment holds the event loop for a tenth of a second.",
    )
    max_subscriptions_per_connection: int = 20
    subscriber_queue_size: int = 1_000
    # ---- subscriptions over websockets
    broker_url: str | None = Field(
        None,
        description="Redis (redis://) or PostgreSQL URL through which processes wake each "
        "other's event tails; unset, LISTEN/NOTIFY on the database if it is PostgreSQL.",
    )
    ws_init_timeout: float = Field(
        10.0, gt=0, description="Seconds a websocket may take to send connection_init (4408)."
    )
    ws_ping_interval: float = Field(
        15.0, gt=0, description="Seconds between server pings (graphql-transport-ws) or ka."
    )
    ws_pong_timeout: float = Field(
        10.0, gt=0, description="Seconds a client may take to answer a ping before it is closed."
    )
    ws_send_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds one websocket send may wait on a client that does not read "
        "before the connection is dropped.",
    )
    # ---- the query cache
    query_cache: bool = Field(
        True, description="Answer cacheable queries from the query cache (false: never)."
    )
    cache_url: str | None = Field(
        None,
        description="Redis (redis://) holding the query cache for every process; unset, the "
        "cache lives in the process, which is right for one process on SQLite only.",
    )
    query_cache_rows: int = Field(
        50_000, gt=0, description="Rows the in-process query cache holds at most."
    )
    query_cache_ttl: int = Field(
        300, gt=0, description="Seconds an entry lives in the Redis query cache."
    )
    jwt_secret: SecretStr | None = Field(
        None,
        description="Signs access tokens; unset, a secret is kept in orderdesk.secret "
        "in the working directory.",
    )
    graphiql: bool | None = Field(
        None, description="Serve GraphiQL at /graphql; unset, on except in production."
    )
    log_level: str = "INFO"
    # ---- hardening: what a stranger may ask of one process
    env: Literal["development", "production"] = Field(
        "development",
        description="production turns off introspection and 'Did you mean' suggestions "
        "for all but staff, GraphiQL for everyone, and /metrics without metrics_token; "
        "each has a setting of its own that wins when set.",
    )
    introspection: bool | None = Field(
        None, description="Anyone may introspect the schema; unset, staff only in production."
    )
    suggestions: bool | None = Field(
        None, description="'Did you mean' in validation errors; unset, off in production."
    )
    metrics_token: SecretStr | None = Field(
        None, description="/metrics answers only `Authorization: Bearer <this>` when set."
    )
    public_stock_events: bool = Field(
        True,
        description="Anonymous productEvents include stock reservations and releases; "
        "false: staff only.",
    )
    max_query_cost: int = Field(
        20_000,
        gt=0,
        description="Refuse a document whose estimated cost (fields, times page sizes and "
        "list bounds) is above this, before executing it (QUERY_TOO_COMPLEX).",
    )
    execution_timeout: float = Field(
        10.0, gt=0, description="Seconds one query or mutation may run (EXECUTION_TIMEOUT)."
    )
    max_response_bytes: int = Field(
        10_000_000, gt=0, description="A larger response is refused (RESPONSE_TOO_LARGE)."
    )
    max_replay_events: int = Field(
        10_000,
        gt=0,
        description="How far back `after` may replay one subscription; an older cursor is "
        "refused (REPLAY_TOO_LONG): re-read the current state and subscribe from now.",
    )
    max_sockets_per_address: int = Field(
        50, gt=0, description="Open websockets one client address may hold."
    )
    max_sockets_per_identity: int = Field(
        20, gt=0, description="Open websockets one signed-in caller may hold."
    )
    # ---- rate limits (limits' notation: "20/minute", "100 per second"; several with ';')
    rate_limits: bool = Field(True, description="Apply the rate limits below.")
    rate_limit_url: str | None = Field(
        None,
        description="Redis (redis://) that keeps the counters for every process; unset, the "
        "broker's Redis if broker_url is one, else in the process.",
    )
    rate_limit_per_address: str = Field(
        "600/minute;20/second", description="Requests and websocket connects per client address."
    )
    rate_limit_per_identity: str = Field(
        "1200/minute;20/second", description="Requests per signed-in caller."
    )
    rate_limit_registrations: str = Field(
        "20/minute", description="registerCustomer calls per client address."
    )
    rate_limit_failed_auth: str = Field(
        "10/minute", description="Refused bearer tokens per client address."
    )
    rate_limit_persisted_queries: str = Field(
        "60/minute;10/second",
        description="New automatic persisted query texts stored per client address; past "
        "it a text still runs, but is not stored (its client sends it again next time).",
    )
    # ---- browsers and clients on other origins, persisted documents, batches
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins (JSON list: '[\"http://localhost:5173\"]') whose pages may call "
        "the API over HTTP and open its websockets; empty, same origin only.",
    )
    apq: bool = Field(
        True, description="Automatic persisted queries (Apollo's extensions.persistedQuery)."
    )
    apq_url: str | None = Field(
        None,
        description="Redis (redis://) that keeps the persisted query texts for every process; "
        "unset, the broker's Redis if broker_url is one, else in the process.",
    )
    apq_max_documents: int = Field(
        1_000,
        gt=0,
        description="Persisted query texts the store (Redis or the process) holds at most, "
        "the least recently used dropped first; a text is stored only if it is at most "
        "max_query_length bytes (UTF-8), so the texts take at most 20 MB at the defaults.",
    )
    persisted_only: bool = Field(
        False,
        description="Refuse every document that is not in persisted_manifest (trusted "
        "documents) with PERSISTED_QUERY_NOT_ALLOWED.",
    )
    persisted_manifest: str | None = Field(
        None,
        description="The trusted documents: the JSON that GraphQL Code Generator's client "
        "preset or Apollo's generate-persisted-query-manifest writes.",
    )
    persisted_only_except_staff: bool = Field(
        False, description="With persisted_only, staff may still send any document."
    )
    max_batch: int = Field(
        0,
        ge=0,
        description="Operations one JSON array batch may hold (Apollo's BatchHttpLink); 0, "
        "batches are refused. Each operation counts against the limits on its own.",
    )
    # ---- operations
    log_format: Literal["text", "json"] = Field(
        "text",
        description="json: one JSON object per log line, uvicorn's access log included.",
    )
    slow_message_ms: float = Field(
        500.0,
        gt=0,
        description="A command or query slower than this many milliseconds is logged at WARNING.",
    )
    # ---- reactions: what the service does when something happened (handlers/reactions.py)
    reaction_max_attempts: int = Field(
        5,
        ge=1,
        description="Attempts at one event before a reaction handler is parked (`orderdesk "
        "reactions retry NAME` resumes it).",
    )
    reaction_retry_delay: float = Field(
        0.5,
        gt=0,
        description="Seconds before a failed reaction's first retry; each later one waits "
        "twice as long as the one before.",
    )
    smtp_url: SecretStr | None = Field(
        None,
        description="smtp://user:pass@host:port (STARTTLS when the server offers it; "
        "?starttls=require to insist) or smtps://... (TLS from the start). Unset, emails "
        "are written as .eml files to outbox_dir instead.",
    )
    smtp_timeout: float = Field(
        10.0, gt=0, description="Seconds to connect to the SMTP server and for each reply."
    )
    outbox_dir: str = Field(
        "outbox", description="Where emails are written as .eml files when smtp_url is unset."
    )
    mail_from: str = Field(
        "orderdesk <orderdesk@localhost>", description="The From of every email."
    )
    marketing_email: str | None = Field(
        None,
        description="Told of each new customer who opted in to marketing; unset, no one is.",
    )
    staff_email: str | None = Field(
        None, description="Told when a product's stock falls to low_stock_threshold or below."
    )
    low_stock_threshold: int = Field(
        5, ge=0, description="Stock at or below which staff_email gets one alert per crossing."
    )
    webhook_allow_private: bool = Field(
        False,
        description="Let webhooks reach private, loopback and link-local addresses (tests, "
        "a private network); off, a URL that resolves to one is refused.",
    )
    webhook_connect_timeout: float = Field(
        5.0, gt=0, description="Seconds to connect to a webhook's endpoint."
    )
    webhook_read_timeout: float = Field(
        10.0, gt=0, description="Seconds to wait for a webhook endpoint's answer."
    )
    webhook_retry_for: float = Field(
        86_400.0,
        gt=0,
        description="Seconds a webhook delivery is retried (with exponential backoff) before "
        "it is given up.",
    )
    webhook_retry_delay: float = Field(
        10.0, gt=0, description="Seconds before a failed webhook delivery's first retry."
    )
    webhook_max_failures: int = Field(
        20,
        ge=1,
        description="Failed attempts in a row, across its deliveries, after which a webhook "
        "is disabled.",
    )
    sign_in_code_ttl: float = Field(
        600.0, gt=0, description="Seconds a sign-in code stays valid (ten minutes)."
    )
    pending_order_ttl: str | None = Field(
        None,
        description="Cancel an order still PENDING this long after it was placed (reason "
        "`expired`), e.g. 30m, 2h, 45s or a number of seconds; unset, none is.",
        pattern=r"^\s*\d+(\.\d+)?\s*[smhd]?\s*$",
    )
    # ---- the HTTP server (orderdesk serve)
    header_timeout: float = Field(
        10.0, gt=0, description="Seconds a connection may take to send a request's headers."
    )
    keep_alive_timeout: float = Field(
        5.0, gt=0, description="Seconds an idle keep-alive connection is kept open."
    )
    max_connections: int = Field(
        2_000, gt=0, description="Open connections at once; more are answered 503 and closed."
    )
    forwarded_allow_ips: str | None = Field(
        None,
        description="Proxies (comma-separated IPs) whose X-Forwarded-For names the client; "
        "unset, the peer's address is the client's.",
    )

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def graphiql_on(self) -> bool:
        return not self.production if self.graphiql is None else self.graphiql

    @property
    def introspection_for_all(self) -> bool:
        return not self.production if self.introspection is None else self.introspection

    @property
    def suggestions_on(self) -> bool:
        return not self.production if self.suggestions is None else self.suggestions

    @property
    def pending_order_seconds(self) -> float | None:
        """pending_order_ttl in seconds, or None when orders do not expire."""
        if self.pending_order_ttl is None:
            return None
        text = self.pending_order_ttl.strip()
        unit = text[-1] if text[-1] in _SECONDS else "s"
        return float(text.rstrip(unit).strip()) * _SECONDS[unit]

    @property
    def read_models_url(self) -> str:
        return self.read_database_url or self.database_url


_SECONDS = {"s": 1.0, "m": 60.0, "h": 3_600.0, "d": 86_400.0}
