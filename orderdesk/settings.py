"""Every setting, read from ORDERDESK_* environment variables by one object."""

from __future__ import annotations

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
    read_your_writes_timeout: float = Field(
        5.0, gt=0, description="How long a mutation waits for the read models to show its write."
    )
    max_query_depth: int = 10
    max_aliases: int = 30
    max_tokens: int = 2_000
    max_body_bytes: int = 1_000_000
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
    graphiql: bool = True
    log_level: str = "INFO"

    @property
    def read_models_url(self) -> str:
        return self.read_database_url or self.database_url
