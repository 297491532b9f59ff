"""The ASGI middleware that counts every HTTP request and websocket, and, when tracing is
on, makes each HTTP request's span (the parent of every span the request causes).

Just inside RequestIds (orderdesk/request_ids.py), whose id is the span's correlation id,
and outside the others, so that what they answer (429s, preflights) is counted too.
Paths are counted by the app's own routes, never as sent: a label per path a stranger
makes up would grow the registry without bound.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import propagate
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, StatusCode, Tracer
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from handlers.tracing import CORRELATION_ID
from orderdesk import tracing
from orderdesk.operational_metrics import OTHER, OperationalMetrics
from orderdesk.request_ids import SCOPE_KEY as REQUEST_ID

SUBPROTOCOLS = frozenset({"graphql-transport-ws", "graphql-ws"})


class _HeaderCarrier(Getter[Scope]):
    """Reads a W3C `traceparent` from ASGI headers, for a caller that sends one."""

    def get(self, carrier: Scope, key: str) -> list[str] | None:
        wanted = key.encode()
        values = [v.decode("latin-1") for k, v in carrier["headers"] if k == wanted]
        return values or None

    def keys(self, carrier: Scope) -> list[str]:
        return [k.decode("latin-1") for k, _ in carrier["headers"]]


HEADERS = _HeaderCarrier()


class ObservedRequests:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Decided once: with tracing off, a request costs a counter and no span object.
        self._tracer: Tracer | None = tracing.tracer()
        self._services: object = None
        self._metrics: OperationalMetrics | None = None
        self._exact: frozenset[str] = frozenset()
        self._prefixes: tuple[str, ...] = ()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if self._tracer is None:
                await self._http(scope, receive, send)
            else:
                await self._traced_http(self._tracer, scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _metrics_of(self, scope: Scope) -> OperationalMetrics | None:
        app = scope.get("app")
        services = getattr(getattr(app, "state", None), "services", None)
        if services is not self._services:
            # Once per start of the app: its metrics, and the routes to count paths by.
            self._services = services
            self._metrics = getattr(services, "operations", None)
            self._learn_routes(getattr(app, "routes", ()))
        return self._metrics

    def _learn_routes(self, routes: Any) -> None:
        exact: set[str] = set()
        prefixes: list[str] = []
        for route in routes:
            if isinstance(route, Mount):
                prefixes.append(route.path.rstrip("/") + "/")
            elif isinstance(route, Route | WebSocketRoute) and "{" not in route.path:
                exact.add(route.path)
        self._exact = frozenset(exact)
        self._prefixes = tuple(prefixes)

    def route_of(self, path: str) -> str:
        if path in self._exact:
            return path
        for prefix in self._prefixes:
            if path.startswith(prefix):
                return prefix + "*"
        return OTHER

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics = self._metrics_of(scope)
        if metrics is None:
            await self.app(scope, receive, send)
            return
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            metrics.http_request(scope["method"], self.route_of(scope["path"]), status)

    async def _traced_http(
        self, tracer: Tracer, scope: Scope, receive: Receive, send: Send
    ) -> None:
        metrics = self._metrics_of(scope)
        method = scope["method"]
        route = self.route_of(scope["path"])
        status = 500
        parent = propagate.extract(scope, getter=HEADERS)
        # Never the query string or the headers: either may carry a token.
        attributes: dict[str, str] = {"http.request.method": method, "http.route": route}
        request_id = scope.get(REQUEST_ID)
        if request_id is not None:
            attributes[CORRELATION_ID] = request_id
        with tracer.start_as_current_span(
            f"{method} {route}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:

            async def sending(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(StatusCode.ERROR)
                await send(message)

            try:
                await self.app(scope, receive, sending)
            except Exception as error:
                span.set_status(StatusCode.ERROR, type(error).__name__)
                span.set_attribute("error.type", type(error).__name__)
                raise
            finally:
                if metrics is not None:
                    metrics.http_request(method, route, status)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics = self._metrics_of(scope)
        if metrics is None:
            await self.app(scope, receive, send)
            return
        accepted: str | None = None

        async def sending(message: Message) -> None:
            nonlocal accepted
            if message["type"] == "websocket.accept" and accepted is None:
                given = message.get("subprotocol")
                accepted = given if given in SUBPROTOCOLS else "none" if given is None else OTHER
                metrics.socket_opened(accepted)
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if accepted is not None:
                metrics.socket_closed(accepted)
