"""The ASGI app: GraphQL over HTTP and websockets at /graphql, and health checks."""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from mediator import Registry
from orderdesk import tracing
from orderdesk.bootstrap import Services, bootstrap
from orderdesk.event_streams import EventStreams
from orderdesk.graphiql import ASSETS, ASSETS_PATH
from orderdesk.graphql_view import GraphQLView
from orderdesk.observed_requests import ObservedRequests
from orderdesk.open_sockets import OpenSockets
from orderdesk.origins import origin_middleware
from orderdesk.persisted_documents import PersistedDocuments
from orderdesk.rate_limits import RateLimitMiddleware
from orderdesk.request_ids import RequestIds
from orderdesk.security_headers import SecurityHeaders
from orderdesk.settings import Settings
from orderdesk.shared_subscriptions import SharedSubscriptions
from orderdesk.trusted_documents import trusted_documents_for
from orderdesk.websocket_protocols import SocketLimits
from persistence.projector import Projection
from schema.root import build_schema

logger = logging.getLogger("orderdesk")

READINESS_TIMEOUT = 1.0
"""Seconds the readiness probe waits for the database before it answers 503."""
READINESS_INTERVAL = 1.0
"""Seconds a database that answered the readiness probe is taken to be up."""


def _retrieved(task: asyncio.Task[None]) -> None:
    # A question that failed after its probe answered: its failure was told (or will be,
    # by the next probe); retrieved here so that asyncio does not log it as lost.
    if not task.cancelled():
        task.exception()


def tune_garbage_collector() -> None:
    """Keep full collections rare and short; they pause every socket at once.

    With a thousand subscribers, full collections paused fan-out for 100-200 ms
    (benchmarks/subscriptions.py). What start-up made (modules, the schema, SQLAlchemy's
    metadata: most objects in the process) lives as long as the process, so it is frozen
    out of the collector's reach, after one last collection so no garbage is frozen; and a
    collection is started after 10,000 allocations instead of 700, so the cycles a burst
    of events leaves are collected young and cheaply.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def create_app(
    settings: Settings | None = None,
    *,
    extra_projections: Sequence[Projection] = (),
    extra_reactions: Sequence[Callable[[Registry], None]] = (),
) -> Starlette:
    """The app factory (`uvicorn --factory orderdesk.app:create_app`); `extra_projections`
    and `extra_reactions` are handed to bootstrap (tests add read models and reaction
    handlers through them)."""
    settings = settings or Settings()
    tracing.configure_from_environment()
    schema = build_schema(
        max_depth=settings.max_query_depth,
        max_aliases=settings.max_aliases,
        max_tokens=settings.max_tokens,
        max_cost=settings.max_query_cost,
        introspection_for_all=settings.introspection_for_all,
        suggestions=settings.suggestions_on,
    )
    view = GraphQLView(
        schema,
        graphql_ide="graphiql" if settings.graphiql_on else None,
        max_body_bytes=settings.max_body_bytes,
        max_query_length=settings.max_query_length,
        max_response_bytes=settings.max_response_bytes,
        execution_timeout=settings.execution_timeout,
        open_sockets=OpenSockets(
            per_address=settings.max_sockets_per_address,
            per_identity=settings.max_sockets_per_identity,
        ),
        socket_limits=SocketLimits(
            init_timeout=settings.ws_init_timeout,
            ping_interval=settings.ws_ping_interval,
            pong_timeout=settings.ws_pong_timeout,
            send_timeout=settings.ws_send_timeout,
        ),
        shared_subscriptions=SharedSubscriptions(
            queue_size=settings.subscriber_queue_size, parse=schema.parse
        ),
        connection_init_wait_timeout=timedelta(seconds=settings.ws_init_timeout),
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
        keep_alive=True,
        keep_alive_interval=settings.ws_ping_interval,
        # Which pages may open a websocket is orderdesk/origins.py's rule, for every path.
        allowed_origins=["*"],
        max_batch=settings.max_batch,
        # The manifest is read here, so that a missing or malformed one stops the start.
        persisted_documents=PersistedDocuments(
            trusted=trusted_documents_for(settings),
            persisted_only=settings.persisted_only,
            staff_excepted=settings.persisted_only_except_staff,
        ),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = bootstrap(
            settings, extra_projections=extra_projections, extra_reactions=extra_reactions
        )
        try:
            # Inside the try: a start that fails half-way still closes what it opened.
            await services.start()
            app.state.services = services
            if view.shared_subscriptions is not None:
                view.shared_subscriptions.fanned_out = services.operations.shared_fanned_out
            tune_garbage_collector()
            yield
        finally:
            await services.stop()

    async def live(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    database_seen_at: float | None = None
    asking: asyncio.Task[None] | None = None

    async def ask_database(engine: AsyncEngine) -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def ready(request: Request) -> JSONResponse:
        nonlocal database_seen_at, asking
        services: Services = request.app.state.services
        parked = [s.name for s in services.projector.status() if s.parked_error]
        now = time.monotonic()
        # The probe is open to anyone and never rate limited: the database is asked at
        # most once a second however often it is called, by one question at a time.
        if database_seen_at is None or now - database_seen_at > READINESS_INTERVAL:
            if asking is None or asking.done():
                asking = asyncio.create_task(ask_database(services.write_engine))
                asking.add_done_callback(_retrieved)
            # Answered within a second whatever the database does (a probe that hangs is
            # taken for a dead process); a question still open goes on in the background,
            # bounded by the database timeout, and the next probe waits for it.
            done, _ = await asyncio.wait({asking}, timeout=READINESS_TIMEOUT)
            failure = None if not done else asking.exception()
            if not done or failure is not None:
                database_seen_at = None
                logger.warning("readiness: the database does not answer: %r", failure)
                down = {"status": "unavailable", "database": "down"}
                return JSONResponse(down, status_code=503)
            database_seen_at = now
        reactions_parked = [s.name for s in services.reactor.status() if s.parked_error]
        body = {
            "status": "degraded" if parked or reactions_parked else "ok",
            "projectionsParked": parked,
            "reactionsParked": reactions_parked,
            "projectedPosition": services.projector.position,
        }
        # A parked reaction (emails, webhooks) is for an operator to see, not a reason to
        # take this process out of the load balancer: it still answers every request right.
        return JSONResponse(body, status_code=503 if parked else 200)

    metrics_token = settings.metrics_token.get_secret_value() if settings.metrics_token else None

    async def metrics(request: Request) -> Response:
        if metrics_token is not None:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {metrics_token}".encode()):
                return JSONResponse(
                    {"error": "the metrics need `Authorization: Bearer <metrics token>`"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        elif settings.production:
            # Counters by operation tell a stranger what the shop does and how much.
            return JSONResponse(
                {"error": "not found: set ORDERDESK_METRICS_TOKEN to read /metrics"},
                status_code=404,
            )
        services: Services = request.app.state.services
        return Response(generate_latest(services.metrics), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/graphql", EventStreams(view)),  # SSE requests; the rest to the view
            WebSocketRoute("/graphql", view),
            *(
                [Mount(ASSETS_PATH, StaticFiles(directory=ASSETS), name="graphiql")]
                if settings.graphiql_on
                else []
            ),
            Route("/health/live", live),
            Route("/health/ready", ready),
            Route("/metrics", metrics),
        ],
        # Request ids outermost, so that every answer carries one; CORS outside the rate
        # limits, so that a page can read a 429's Retry-After; the rate limits inside
        # SecurityHeaders, so that a 429 carries them too.
        middleware=[
            Middleware(RequestIds),
            Middleware(ObservedRequests),  # counted by route and status; traced when on
            *origin_middleware(settings.cors_origins),
            Middleware(SecurityHeaders),
            Middleware(RateLimitMiddleware),
        ],
        lifespan=lifespan,
    )
