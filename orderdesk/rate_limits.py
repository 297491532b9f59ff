"""Rate limits: budgets of requests per client address and per caller, counted in this
process or in Redis for every process, and the middleware that spends the address budget on
every request and websocket connect (and names the address whose budgets are spent deeper
in, where no request is at hand: `admit_persisted_query`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import redis.asyncio as redis
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from limits.errors import StorageError
from prometheus_client import CollectorRegistry, Counter
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from handlers.rate_limit import whole_seconds
from orderdesk.settings import Settings
from persistence.database import is_sqlite

if TYPE_CHECKING:
    from orderdesk.bootstrap import Services

logger = logging.getLogger("orderdesk.rate_limits")

STORE_TIMEOUT = 0.5
"""Seconds one Redis call may take; every request waits on it, so it is short."""
STORE_RETRY_INTERVAL = 5.0
"""After the counters fail to answer, requests go uncounted this long before the next try,
so that an outage costs one request a timeout now and then, not every request."""
SWEEP_INTERVAL = 10.0
"""Seconds between sweeps of the counters whose window has ended, in the process."""
REDIS_PREFIX = "orderdesk:rate-limits"
EXEMPT_PATHS = frozenset({"/health/live", "/health/ready", "/metrics"})
"""Probes and scrapers call these on a timer from one address; they must never be refused."""
WEBSOCKET_RATE_LIMITED = 4429
SMALLEST_WAIT = 0.001
"""A refusal's wait is never 0, which would read as false (admitted)."""
# Sign-in codes, per client address and per address asked for: the code's own limit (five
# wrong attempts void it) bounds one code; these bound the codes and the guesses, so that
# a million codes take years to try, and nobody's inbox is flooded.
SIGN_IN_CODES_PER_ADDRESS = "30/hour;5/minute"
SIGN_IN_CODES_PER_EMAIL = "5/hour"
SIGN_IN_ATTEMPTS_PER_ADDRESS = "60/hour;10/minute"
SIGN_IN_ATTEMPTS_PER_EMAIL = "15/hour"


@dataclass(frozen=True, slots=True)
class Budget:
    """A named budget (the name is in its counters' keys and in the metrics) and its limits,
    shortest window first: a burst the per-second limit refuses stops there and does not eat
    into the per-minute one."""

    name: str
    limits: tuple[RateLimitItem, ...]

    @classmethod
    def parse(cls, name: str, notation: str) -> Budget:
        """From limits' notation: "20/minute", "600/minute;50/second"."""
        items = sorted(parse_many(notation), key=lambda item: item.get_expiry())
        if not items:
            raise ValueError(f"the {name} rate limit {notation!r} names no limit")
        return cls(name, tuple(items))


class LocalCounters(MemoryStorage):
    """limits' memory storage for the fixed window, with expired counters swept on a timer.

    The library's storage starts a sweep of every counter after nearly each hit, as soon as
    the event loop turns: with 1,000 client addresses counted that added ~120 µs to each
    request, ~1 ms with 10,000. Here a hit only counts; `sweep` (every SWEEP_INTERVAL s)
    drops the counters whose window has ended, and `get` still drops a stale one it reads.
    """

    async def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        # No lock, unlike the library's: nothing here suspends, so no other task can run
        # between the read and the write.
        count = await self.get(key) + amount
        self.storage[key] = count
        if count == amount:
            self.expirations[key] = time.time() + expiry
        return count

    def sweep(self) -> None:
        now = time.time()
        for key in [key for key, ends in self.expirations.items() if ends <= now]:
            self.storage.pop(key, None)
            self.expirations.pop(key, None)


class RateLimits:
    """The service's budgets and their counters.

    Each method counts (or, `auth_blocked`, looks) and answers None when the caller may go
    ahead, or the seconds until its budget has room again, for `Retry-After`.

    Fixed windows: a counter per key and limit, one Redis round trip per limit. A window
    lets a client spend up to twice a limit across its boundary; pairing the minute with a
    per-second limit bounds that burst. Moving windows are exact but keep an entry per
    request (600 per address a minute), and cost up to four times as much in the process.

    When the counters do not answer (Redis down), requests are admitted uncounted: a rate
    limit exists to keep the service up, and refusing everyone, or answering 500, would take
    it down with Redis. Each outage is logged once, and every uncounted request counted in
    `orderdesk_rate_limit_unchecked_total`.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        per_address: str,
        per_identity: str,
        registrations: str,
        failed_auth: str,
        persisted_queries: str = Settings.model_fields["rate_limit_persisted_queries"].default,
        sign_in_codes: tuple[str, str] = (SIGN_IN_CODES_PER_ADDRESS, SIGN_IN_CODES_PER_EMAIL),
        sign_in_attempts: tuple[str, str] = (
            SIGN_IN_ATTEMPTS_PER_ADDRESS,
            SIGN_IN_ATTEMPTS_PER_EMAIL,
        ),
        metrics: CollectorRegistry | None = None,
        where: str = "in this process",
        connections: redis.ConnectionPool | None = None,
    ) -> None:
        self.storage = storage
        self.limiter = FixedWindowRateLimiter(storage)
        self.per_address = Budget.parse("address", per_address)
        self.per_identity = Budget.parse("identity", per_identity)
        self.registrations = Budget.parse("registration", registrations)
        self.failed_auths = Budget.parse("failed_auth", failed_auth)
        self.persisted_queries = Budget.parse("persisted_query", persisted_queries)
        self.sign_in_codes = Budget.parse("sign_in_code", sign_in_codes[0])
        self.sign_in_codes_to = Budget.parse("sign_in_code_email", sign_in_codes[1])
        self.sign_in_attempts = Budget.parse("sign_in", sign_in_attempts[0])
        self.sign_in_attempts_as = Budget.parse("sign_in_email", sign_in_attempts[1])
        self.where = where
        self._connections = connections
        self._down = False
        self._retry_at = 0.0
        self._sweeper: asyncio.Task[None] | None = None
        registry = metrics or CollectorRegistry()
        self._refused = Counter(
            "orderdesk_rate_limited",
            "Requests refused by a rate limit, by budget (address, identity, registration, "
            "failed_auth, sign_in_code, sign_in; sign_in_code_email, sign_in_email: by the "
            "email address a code is for; persisted_query: a new persisted query text run but "
            "not stored).",
            ["budget"],
            registry=registry,
        )
        self._unchecked = Counter(
            "orderdesk_rate_limit_unchecked",
            "Requests admitted uncounted because the rate limit counters did not answer.",
            registry=registry,
        )

    async def open(self) -> None:
        if isinstance(self.storage, LocalCounters):
            self._sweeper = asyncio.create_task(self._sweep(self.storage))
        elif not await self.storage.check():
            self._store_failed("no answer to PING")

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self._connections is not None:
            await self._connections.aclose()

    async def admit_address(self, address: str, *, cost: int = 1) -> float | None:
        """Every HTTP request and every websocket connect, by client address; a batch of N
        operations costs N (the view spends the N - 1 beyond the request's own)."""
        return await self._count(self.per_address, address, spend=True, cost=cost)

    async def admit_identity(self, subject: str, *, cost: int = 1) -> float | None:
        """Every request of a signed-in caller, by its subject (a batch: one per operation)."""
        return await self._count(self.per_identity, subject, spend=True, cost=cost)

    async def admit_registration(self, address: str) -> float | None:
        """Each registerCustomer, by client address."""
        return await self._count(self.registrations, address, spend=True)

    async def admit_sign_in_code(self, address: str) -> float | None:
        """Each requestSignInCode, by client address."""
        return await self._count(self.sign_in_codes, address, spend=True)

    async def admit_sign_in_code_to(self, email: str) -> float | None:
        """Each requestSignInCode, by the email address it asks a code for (a digest)."""
        return await self._count(self.sign_in_codes_to, email, spend=True)

    async def admit_sign_in(self, address: str) -> float | None:
        """Each signIn, by client address."""
        return await self._count(self.sign_in_attempts, address, spend=True)

    async def admit_sign_in_as(self, email: str) -> float | None:
        """Each signIn, by the email address it signs in to (a digest)."""
        return await self._count(self.sign_in_attempts_as, email, spend=True)

    async def admit_persisted_query(self, address: str) -> float | None:
        """Each new automatic persisted query text to be stored, by client address."""
        return await self._count(self.persisted_queries, address, spend=True)

    async def failed_auth(self, address: str) -> float | None:
        """Record one refused bearer token; the wait if that was one over the budget."""
        return await self._count(self.failed_auths, address, spend=True)

    async def auth_blocked(self, address: str) -> float | None:
        """The wait if this address has used up its budget of refused tokens. Asked before
        any token is verified, so a stranger guessing tokens is cut off, right or wrong."""
        return await self._count(self.failed_auths, address, spend=False)

    async def _count(self, budget: Budget, key: str, *, spend: bool, cost: int = 1) -> float | None:
        if self._down and time.monotonic() < self._retry_at:
            self._unchecked.inc()
            return None
        try:
            wait = await (self._spend(budget, key, cost) if spend else self._look(budget, key))
        except (StorageError, OSError) as error:
            self._store_failed(repr(getattr(error, "storage_error", error)))
            self._unchecked.inc()
            return None
        if self._down:
            self._down = False
            logger.info("rate limits: the counters %s answer again", self.where)
        if wait is not None:
            self._refused.labels(budget.name).inc()
        return wait

    async def _spend(self, budget: Budget, key: str, cost: int = 1) -> float | None:
        for item in budget.limits:
            if not await self.limiter.hit(item, budget.name, key, cost=cost):
                return await self._wait(item, budget, key)
        return None

    async def _look(self, budget: Budget, key: str) -> float | None:
        for item in budget.limits:
            if not await self.limiter.test(item, budget.name, key):
                return await self._wait(item, budget, key)
        return None

    async def _wait(self, item: RateLimitItem, budget: Budget, key: str) -> float:
        stats = await self.limiter.get_window_stats(item, budget.name, key)
        return max(stats.reset_time - time.time(), SMALLEST_WAIT)

    def _store_failed(self, error: str) -> None:
        if not self._down:
            logger.warning(
                "rate limits: the counters %s do not answer (%s); requests are admitted "
                "uncounted until they do",
                self.where,
                error,
            )
        self._down = True
        self._retry_at = time.monotonic() + STORE_RETRY_INTERVAL

    @staticmethod
    async def _sweep(counters: LocalCounters) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            counters.sweep()


def rate_limits_for(
    settings: Settings, *, metrics: CollectorRegistry | None = None
) -> RateLimits | None:
    """The rate limits these settings ask for, or None when they are off.

    Counted in Redis when rate_limit_url, or else broker_url, is a redis:// URL: every
    process then spends the same budgets. Otherwise in the process, which is right for one
    process; with N processes a client gets N times each budget.
    """
    if not settings.rate_limits:
        return None
    url = settings.rate_limit_url
    if url is None and _is_redis(settings.broker_url):
        url = settings.broker_url
    storage: Storage
    connections: redis.ConnectionPool | None = None
    if url is None:
        if not is_sqlite(settings.database_url):
            # Not a warning: the budgets still hold, only multiplied, and may be right so.
            logger.info(
                "rate limits are counted in each process: with several processes on "
                "PostgreSQL a client gets each budget once per process; "
                "ORDERDESK_RATE_LIMIT_URL (redis://...) shares them"
            )
        storage, where = LocalCounters(), "in this process"
    elif _is_redis(url):
        connections = redis.ConnectionPool.from_url(
            url, socket_timeout=STORE_TIMEOUT, socket_connect_timeout=STORE_TIMEOUT
        )
        # The pool is ours, not the storage's, so that `close` closes it (limits has no close).
        options: dict[str, Any] = {"connection_pool": connections}
        storage = RedisStorage(
            f"async+{url}",
            implementation="redispy",
            wrap_exceptions=True,
            key_prefix=REDIS_PREFIX,
            **options,
        )
        parts = urlsplit(url)
        where = f"in Redis at {parts.hostname}:{parts.port or 6379}{parts.path}"
    else:
        raise ValueError(f"ORDERDESK_RATE_LIMIT_URL must be a redis:// URL, not {url!r}")
    return RateLimits(
        storage,
        per_address=settings.rate_limit_per_address,
        per_identity=settings.rate_limit_per_identity,
        registrations=settings.rate_limit_registrations,
        failed_auth=settings.rate_limit_failed_auth,
        persisted_queries=settings.rate_limit_persisted_queries,
        metrics=metrics,
        where=where,
        connections=connections,
    )


def _is_redis(url: str | None) -> bool:
    return url is not None and url.startswith(("redis://", "rediss://"))


_counted_client: ContextVar[tuple[RateLimits, str] | None] = ContextVar(
    "orderdesk_counted_client", default=None
)
"""The budgets and client address of the request or websocket being served, set by the
middleware for everything it runs (tasks started within inherit it)."""


def count_as(
    limits: RateLimits | None, address: str | None
) -> Token[tuple[RateLimits, str] | None]:
    """From now on in this task (until the token is reset), `admit_persisted_query` spends
    this address's budget; with no limits or no address, nothing is counted (as the
    middleware counts nothing then)."""
    return _counted_client.set(None if limits is None or address is None else (limits, address))


async def admit_persisted_query() -> float | None:
    """Spend one of the current client's budget of new persisted query texts: None when the
    text may be stored, else the seconds until it may.

    Asked by the store itself, which alone knows whether a text is new, where the request's
    context is not at hand. Over budget, the store does not keep the text, but the text has
    run: refusing it (RATE_LIMITED) would fail the query of every honest client behind a
    busy NAT, since Apollo's PersistedQueryLink sends hash and text only after being told
    PERSISTED_QUERY_NOT_FOUND and shows any other error to the application. Not storing costs
    that client a round trip next time; a stranger gains nothing a plain text would not give.
    """
    client = _counted_client.get()
    if client is None:
        return None
    limits, address = client
    return await limits.admit_persisted_query(address)


class RateLimitMiddleware:
    """Spends the client address's budget on every HTTP request and websocket connect.

    Over budget, an HTTP request is answered 429 with `Retry-After` and a GraphQL-shaped
    error (`RATE_LIMITED`); a websocket is accepted and closed at once with 4429, since a
    browser shows a websocket's close code but not the status of a refused handshake. The
    budgets are the running service's (`app.state.services`, set by the lifespan); with
    rate limits off, or no client address (a unix socket without a proxy), nothing is
    counted. uvicorn has already put the trusted proxy's X-Forwarded-For in `client`.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        services: Services = scope["app"].state.services
        limits = services.rate_limits
        address = client_address(scope)
        wait = None
        if limits is not None and address is not None:
            wait = await limits.admit_address(address)
        if wait is None:
            token = count_as(limits, address)
            try:
                await self.app(scope, receive, send)
            finally:
                _counted_client.reset(token)
        elif kind == "http":
            await too_many_requests(wait)(scope, receive, send)
        else:
            await refuse_socket(WebSocket(scope, receive, send), wait)


def client_address(scope: Scope) -> str | None:
    """The peer's address (uvicorn has already taken a trusted proxy's X-Forwarded-For),
    or None where the server cannot tell (a unix socket): then no budget or cap per address
    counts it, rather than lumping every such client into one."""
    client = scope.get("client")
    return str(client[0]) if client else None


def refusal_reason(wait: float) -> str:
    return f"Too many requests: retry after {whole_seconds(wait)} s"


def too_many_requests(wait: float) -> JSONResponse:
    seconds = whole_seconds(wait)
    error = {
        "message": refusal_reason(wait),
        "extensions": {"code": "RATE_LIMITED", "retryAfter": seconds},
    }
    return JSONResponse({"errors": [error]}, status_code=429, headers={"Retry-After": str(seconds)})


async def refuse_socket(socket: WebSocket, wait: float) -> None:
    # With the client's own subprotocol: a browser fails a handshake answered without one,
    # and would then never see the close code.
    offered = socket.scope.get("subprotocols") or [None]
    await socket.accept(subprotocol=offered[0])
    await socket.close(WEBSOCKET_RATE_LIMITED, refusal_reason(wait))
