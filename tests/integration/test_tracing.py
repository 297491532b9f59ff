"""Traces of the served app, as an OTLP collector would receive them (an in-memory exporter
here): one placeOrder through the real HTTP endpoint is a request span, the PlaceOrder
message's span under it, its SQL statements under that, and the projector's batch for its
events, all carrying the request's correlation id; and with tracing off, nothing is
installed at all."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from websockets.typing import Subprotocol

from handlers.tracing import CORRELATION_ID
from orderdesk import tracing
from orderdesk.settings import Settings
from tests.graphql_client import JSON, GraphQLClient
from tests.served import serve
from tests.ws_client import LEGACY_WS, TRANSPORT_WS, new_product, open_socket, register

PLACE = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
    __typename ... on Error { message } ... on PlaceOrderSuccess { order { id status } } } }"""
WATCH = "subscription Watch { productEvents { position type } }"
PRODUCTS = "query Catalogue { products(first: 5) { totalCount } }"
ADDRESS = {"street": "1 Main St", "city": "Springfield", "postalCode": "12345", "country": "US"}


def placing(product_id: str, quantity: int) -> JSON:
    lines = [{"productId": product_id, "quantity": quantity}]
    return {"input": {"lines": lines, "shippingAddress": ADDRESS}}


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install_tracer_provider(provider)
    try:
        yield exporter
    finally:
        tracing.uninstall_tracer_provider()
        provider.shutdown()


def span_id(span: ReadableSpan) -> int:
    context = span.get_span_context()
    assert context is not None
    return context.span_id


def trace_id(span: ReadableSpan) -> int:
    context = span.get_span_context()
    assert context is not None
    return context.trace_id


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    parent_id = span_id(parent)
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent_id]


def attribute(span: ReadableSpan, name: str) -> object:
    return (span.attributes or {}).get(name)


async def test_a_placed_order_is_one_tree_of_spans_tied_by_its_request_id(
    settings: Settings, exporter: InMemorySpanExporter
) -> None:
    with serve(settings) as served:
        async with httpx.AsyncClient(timeout=30) as http:
            client = GraphQLClient(http, served)
            product = await new_product(client, "ANV-1", stock=5)
            _, token = await register(client, "Ada")
            exporter.clear()

            response = await client.as_customer(token).post(
                PLACE, placing(product, 2), headers={"X-Request-ID": "trace-test-1"}
            )

    assert response.status_code == 200, response.text
    assert response.json()["data"]["placeOrder"]["__typename"] == "PlaceOrderSuccess"
    request_id = response.headers["x-request-id"]
    assert request_id == "trace-test-1"
    spans = list(exporter.get_finished_spans())

    (request,) = [s for s in spans if s.kind is SpanKind.SERVER]
    assert request.name == "POST /graphql"
    assert request.parent is None
    assert attribute(request, CORRELATION_ID) == request_id
    # The name operators search their traces by (README): the constant must not drift.
    assert attribute(request, "orderdesk.correlation_id") == request_id
    assert attribute(request, "http.response.status_code") == 200

    (message,) = [s for s in children(spans, request) if s.name == "PlaceOrder"]
    assert attribute(message, "orderdesk.outcome") == "ok"
    assert attribute(message, "orderdesk.message.kind") == "command"
    assert attribute(message, CORRELATION_ID) == request_id
    assert trace_id(message) == trace_id(request)

    statements = [s for s in children(spans, message) if s.kind is SpanKind.CLIENT]
    texts = [str(attribute(s, "db.statement")) for s in statements]
    assert any(t.startswith("INSERT INTO orders") for t in texts), texts
    assert any(t.startswith("INSERT INTO event_log") for t in texts), texts
    assert {attribute(s, CORRELATION_ID) for s in statements} == {request_id}

    batches = [s for s in spans if s.name.startswith("projection batch ")]
    mine = [b for b in batches if request_id in str(attribute(b, "orderdesk.correlation_ids"))]
    assert {attribute(b, "orderdesk.projection") for b in mine} >= {"orders"}
    assert all(attribute(b, "orderdesk.outcome") == "applied" for b in mine)
    # The batch's statements are its children.
    assert any(s.kind is SpanKind.CLIENT for b in mine for s in children(spans, b))

    # Nothing a caller sent beyond the operation: no token, no variables' values.
    everything = repr([(s.name, dict(s.attributes or {})) for s in spans])
    assert token not in everything
    assert "Main St" not in everything
    assert "Springfield" not in everything


async def test_a_refused_message_says_which_behavior_refused_it(
    settings: Settings, exporter: InMemorySpanExporter
) -> None:
    with serve(settings) as served:
        async with httpx.AsyncClient(timeout=30) as http:
            client = GraphQLClient(http, served)
            product = await new_product(client, "ANV-1", stock=5)
            exporter.clear()

            anonymous = await client.anonymous().post(PLACE, placing(product, 1))
            _, token = await register(client, "Ada")
            exporter.clear()
            too_many = await client.as_customer(token).post(PLACE, placing(product, 9))

    assert anonymous.json()["data"]["placeOrder"]["__typename"] == "NotAuthorizedError"
    assert too_many.json()["data"]["placeOrder"]["__typename"] == "OutOfStockError"
    (refused,) = [s for s in exporter.get_finished_spans() if s.name == "PlaceOrder"]
    assert attribute(refused, "orderdesk.outcome") == "refused"
    assert attribute(refused, "orderdesk.refused_by") == "handler"
    assert attribute(refused, "orderdesk.error.type") == "OutOfStock"


async def test_an_unauthorised_message_is_refused_by_the_access_behavior(
    settings: Settings, exporter: InMemorySpanExporter
) -> None:
    with serve(settings) as served:
        async with httpx.AsyncClient(timeout=30) as http:
            client = GraphQLClient(http, served)
            product = await new_product(client, "ANV-1", stock=5)
            exporter.clear()
            response = await client.anonymous().post(PLACE, placing(product, 1))

    assert response.json()["data"]["placeOrder"]["__typename"] == "NotAuthorizedError"
    (refused,) = [s for s in exporter.get_finished_spans() if s.name == "PlaceOrder"]
    assert attribute(refused, "orderdesk.outcome") == "refused"
    assert str(attribute(refused, "orderdesk.refused_by")).startswith("handlers.access.")
    assert attribute(refused, "orderdesk.error.type") == "NotAuthorized"
    assert attribute(refused, CORRELATION_ID) == response.headers["x-request-id"]


async def test_with_tracing_off_no_provider_is_installed_and_sql_is_not_instrumented(
    settings: Settings,
) -> None:
    assert tracing.tracer() is None
    with serve(settings) as served:
        async with httpx.AsyncClient(timeout=30) as http:
            client = GraphQLClient(http, served)
            await new_product(client, "ANV-1", stock=5)
        services = served.services
        engines = [services.write_engine, services.log_engine, services.read_engine]
        engines += [services.read_model_engine, services.scan_engine]

        assert not isinstance(trace.get_tracer_provider(), TracerProvider)
        for engine in engines:
            assert not tracing.engine_instrumented(engine)
            listeners = list(engine.sync_engine.dispatch.before_cursor_execute)
            assert not [f for f in listeners if "opentelemetry" in str(f.__module__)]


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_operations_over_a_websocket_are_spans_of_their_own(
    settings: Settings, exporter: InMemorySpanExporter, protocol: Subprotocol
) -> None:
    with serve(settings) as served:
        async with httpx.AsyncClient(timeout=30) as http:
            await new_product(GraphQLClient(http, served), "ANV-1", stock=5)
        exporter.clear()
        async with open_socket(served.ws_url, protocol) as socket:
            await socket.init()
            await socket.subscribe("w", WATCH)
            await socket.subscribe("q", PRODUCTS)
            page = await socket.next_data("q", "products")
            assert page["totalCount"] == 1
    # After the socket: a query's span ends once its last message is sent.
    spans = list(exporter.get_finished_spans())

    (query,) = [s for s in spans if s.name == "query Catalogue"]
    assert query.kind is SpanKind.SERVER
    assert attribute(query, "graphql.operation.type") == "query"
    assert attribute(query, "orderdesk.transport") == protocol
    request_id = attribute(query, CORRELATION_ID)
    assert isinstance(request_id, str)
    messages = children(spans, query)
    assert messages
    assert {attribute(m, "orderdesk.message.kind") for m in messages} == {"query"}
    assert {attribute(m, CORRELATION_ID) for m in messages} == {request_id}

    (started,) = [s for s in spans if s.name == "subscription Watch"]
    assert attribute(started, "graphql.operation.type") == "subscription"
    assert attribute(started, CORRELATION_ID) == request_id  # the socket's id
