"""What /metrics shows an operator of the served app after real traffic: requests by route
and status, websockets and subscriptions while they are open and after, events fanned out,
the projections' and the event tail's lag, and the read-your-writes waits."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.graphql_client import GraphQLClient
from tests.served import Served
from tests.ws_client import (
    LEGACY_WS,
    PRODUCT_EVENTS,
    TRANSPORT_WS,
    new_product,
    open_socket,
    place_order,
    register,
)

SHAREABLE = "subscription { productEvents { position type product { id stock } } }"
"""Without `after`: subscriptions alike share one execution (orderdesk/shared_subscriptions.py)."""
RESTOCK = """mutation($input: RestockProductInput!) { restockProduct(input: $input) {
    __typename } }"""


async def scrape(
    http: httpx.AsyncClient, served: Served
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await http.get(served.http_url.replace("/graphql", "/metrics"))
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def settled(
    http: httpx.AsyncClient, served: Served, name: str, expected: float, **labels: str
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The metrics once `name{labels}` reads `expected` (a socket closes asynchronously)."""
    for _ in range(100):
        samples = await scrape(http, served)
        if value(samples, name, **labels) == expected:
            return samples
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name}{labels} is {value(samples, name, **labels)}, not {expected}")


async def test_requests_are_counted_by_route_and_status_never_by_raw_path(
    served: Served, client: GraphQLClient
) -> None:
    http = client.http
    for _ in range(3):
        await client.execute("{ __typename }")
    assert (await http.get(served.http_url.replace("/graphql", "/health/live"))).status_code == 200
    missing = served.http_url.replace("/graphql", "/no/such/path-1234")
    assert (await http.get(missing)).status_code == 404
    malformed = await http.post(
        served.http_url, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 400

    samples = await scrape(http, served)
    total = "orderdesk_http_requests_total"
    assert value(samples, total, method="POST", route="/graphql", status="200") == 3
    assert value(samples, total, method="POST", route="/graphql", status="400") == 1
    assert value(samples, total, method="GET", route="/health/live", status="200") == 1
    assert value(samples, total, method="GET", route="other", status="404") == 1
    response = await http.get(served.http_url.replace("/graphql", "/metrics"))
    assert "path-1234" not in response.text


async def test_websockets_subscriptions_and_fan_out_are_counted_while_open_and_after(
    served: Served, client: GraphQLClient
) -> None:
    http = client.http
    product = await new_product(client, "ANV-1", stock=10)
    opened = "orderdesk_websockets_opened_total"
    open_now = "orderdesk_websockets_open"
    active = "orderdesk_subscriptions_active"
    fanned = "orderdesk_events_fanned_out_total"

    async with (
        open_socket(served.ws_url, TRANSPORT_WS) as current,
        open_socket(served.ws_url, LEGACY_WS) as legacy,
    ):
        await current.init()
        await legacy.init()
        await current.subscribe("p", SHAREABLE)
        await legacy.subscribe("p", PRODUCT_EVENTS)
        samples = await settled(http, served, active, 1, transport="graphql-ws")
        assert value(samples, active, transport="graphql-transport-ws") == 1
        assert value(samples, open_now, subprotocol="graphql-transport-ws") == 1
        assert value(samples, open_now, subprotocol="graphql-ws") == 1
        assert value(samples, opened, subprotocol="graphql-transport-ws") == 1
        before = value(samples, fanned, stage="tail") or 0

        restocked = await client.execute(RESTOCK, {"input": {"id": product, "quantity": 5}})
        assert restocked["restockProduct"]["__typename"] == "RestockProductSuccess"
        for socket in (current, legacy):
            event = await socket.next_data("p", "productEvents")
            assert event["type"] == "RESTOCKED"

        samples = await scrape(http, served)
        # The tail handed the event to both streams; the shared one's execution to its one
        # socket.
        assert (value(samples, fanned, stage="tail") or 0) - before == 2
        assert value(samples, fanned, stage="shared") == 1

    samples = await settled(http, served, open_now, 0, subprotocol="graphql-transport-ws")
    samples = await settled(http, served, active, 0, transport="graphql-transport-ws")
    assert value(samples, open_now, subprotocol="graphql-ws") == 0
    assert value(samples, active, transport="graphql-ws") == 0
    assert value(samples, opened, subprotocol="graphql-transport-ws") == 1


async def test_lags_and_read_your_writes_waits_are_shown(
    served: Served, client: GraphQLClient
) -> None:
    product = await new_product(client, "ANV-1", stock=10)
    _, token = await register(client, "Ada")
    await place_order(client.as_customer(token), product, 2)

    samples = await scrape(client.http, served)
    waits = value(samples, "orderdesk_read_your_writes_wait_seconds_count")
    assert waits is not None
    assert waits >= 3  # createProduct, registerCustomer, placeOrder
    assert value(samples, "orderdesk_read_your_writes_timeouts_total") == 0
    for projection in ("product_catalog", "customer_summaries", "orders"):
        # The mutation waited for every running projection: none is behind.
        assert value(samples, "orderdesk_projection_lag_positions", projection=projection) == 0
        assert value(samples, "orderdesk_projection_lag_seconds", projection=projection) == 0
    # The tail has fanned out all the read models applied (no subscriber waits on it).
    assert value(samples, "orderdesk_event_tail_lag_positions") == 0
    assert value(samples, "orderdesk_event_tail_lag_seconds") == 0
