"""Request ids as a caller and an operator meet them: every answer carries X-Request-ID, the
refusals (4xx, 429) and the router's 404 and 405 included; a sane id given is answered back,
any other replaced; and the log lines written for a request, the mediator's and an internal
error's included, carry its id."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orderdesk.app import create_app
from orderdesk.log_lines import RequestIdFilter
from orderdesk.settings import Settings
from tests.databases import sqlite_settings
from tests.graphql_client import GraphQLClient
from tests.served import Served, serve, serve_asgi
from tests.ws_client import open_socket

MADE = re.compile(r"[0-9a-f]{32}")
"""What a request id the server made looks like."""
JSON_BODY = {"content-type": "application/json"}
CREATE_PRODUCT = """mutation($input: CreateProductInput!) {
    createProduct(input: $input) { __typename }
}"""


def assert_made(response: httpx.Response) -> str:
    given: str | None = response.headers.get("x-request-id")
    assert given is not None, (response.status_code, response.headers)
    assert MADE.fullmatch(given), given
    assert response.headers.get_list("x-request-id") == [given]
    return given


@pytest.fixture
def small_body_settings(tmp_path: Path) -> Settings:
    return sqlite_settings(tmp_path, max_body_bytes=1_000)


@pytest.fixture
def small_served(small_body_settings: Settings) -> Iterator[Served]:
    with serve(small_body_settings) as running:
        yield running


async def test_every_answer_carries_a_request_id(small_served: Served) -> None:
    url = small_served.http_url
    base = url.removesuffix("/graphql")
    async with httpx.AsyncClient(timeout=30) as http:
        answers = {
            200: await http.post(url, json={"query": "{ __typename }"}),
            400: await http.post(url, content=b"{", headers=JSON_BODY),
            401: await http.post(
                url, json={"query": "{ __typename }"}, headers={"Authorization": "Bearer nope"}
            ),
            404: await http.get(f"{base}/nowhere"),
            405: await http.put(url, json={"query": "{ __typename }"}),
            413: await http.post(url, content=b" " * 2_000, headers=JSON_BODY),
        }
        unsupported = await http.post(
            url, content=b"{ __typename }", headers={"content-type": "text/plain"}
        )
        router_405 = await http.post(f"{base}/health/live")
        live = await http.get(f"{base}/health/live")
        metrics = await http.get(f"{base}/metrics")
    for status, response in answers.items():
        assert response.status_code == status, response.text
        assert_made(response)
    # Strawberry answers an unsupported media type 400; the spec would have 415.
    assert unsupported.status_code == 400, unsupported.text
    assert "content type" in unsupported.json()["errors"][0]["message"].lower()
    assert_made(unsupported)
    assert router_405.status_code == 405
    assert_made(router_405)
    assert live.status_code == 200
    assert_made(live)
    assert metrics.status_code == 200
    assert_made(metrics)
    ids = {response.headers["x-request-id"] for response in answers.values()}
    assert len(ids) == len(answers), "each request has an id of its own"


async def test_a_rate_limited_answer_carries_a_request_id(tmp_path: Path) -> None:
    settings = sqlite_settings(tmp_path, rate_limits=True, rate_limit_per_address="2/minute")
    with serve(settings) as served:
        async with httpx.AsyncClient(timeout=30) as http:
            for _ in range(2):
                admitted = await http.post(served.http_url, json={"query": "{ __typename }"})
                assert admitted.status_code == 200
            refused = await http.post(
                served.http_url, json={"query": "{ __typename }"}, headers={"X-Request-ID": "r-1"}
            )
    assert refused.status_code == 429, refused.text
    assert refused.headers["retry-after"]
    assert refused.headers["x-request-id"] == "r-1"


@pytest.mark.parametrize(
    "insane", ["a b", "x" * 65, "semi;colon", "new\u00e9", 'quote"d', "", "tab\there"]
)
async def test_a_sane_id_is_answered_back_and_any_other_replaced(
    client: GraphQLClient, insane: str
) -> None:
    sane = "Req-1.2_3:abc"
    echoed = await client.post("{ __typename }", headers={"X-Request-ID": sane})
    assert echoed.headers["x-request-id"] == sane
    replaced = await client.http.post(
        client.served.http_url,
        json={"query": "{ __typename }"},
        headers=[(b"X-Request-ID", insane.encode("latin-1"))],
    )
    assert replaced.status_code == 200
    assert assert_made(replaced) != insane


async def test_a_websocket_handshake_answers_its_request_id(served: Served) -> None:
    async with open_socket(served.ws_url, additional_headers={"X-Request-ID": "ws-7"}) as socket:
        assert socket.connection.response is not None
        assert socket.connection.response.headers["X-Request-ID"] == "ws-7"
        await socket.init()


async def test_the_lines_logged_for_a_request_carry_its_id(
    client: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # In the served app, orderdesk/server.py puts the filter on uvicorn's handlers and the
    # app's; pytest's handler is the one the records reach here.
    caplog.handler.addFilter(RequestIdFilter())
    product = {"sku": "RID-1", "name": "Lamp", "price": "3.50", "stock": 1}
    created = await client.post(
        CREATE_PRODUCT, {"input": product}, headers={"X-Request-ID": "make-lamp"}
    )
    assert created.json()["data"]["createProduct"]["__typename"] == "CreateProductSuccess"
    mediator_lines = [r for r in caplog.records if r.name == "orderdesk.messages"]
    assert mediator_lines, caplog.text
    assert {getattr(r, "request_id", None) for r in mediator_lines} == {"make-lamp"}

    # A fault: the read model the query reads is gone.
    engine = create_async_engine(client.served.settings.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("DROP TABLE customer_summaries"))
    finally:
        await engine.dispose()
    caplog.clear()
    failed = await client.post(
        "{ customers { totalCount } }", headers={"X-Request-ID": "count-customers"}
    )
    assert failed.json()["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert failed.headers["x-request-id"] == "count-customers"
    (internal,) = [
        r for r in caplog.records if r.name == "orderdesk.graphql" and r.levelno == logging.ERROR
    ]
    assert internal.exc_info is not None
    assert getattr(internal, "request_id", None) == "count-customers"
    outside = logging.LogRecord("x", logging.INFO, __file__, 1, "outside", None, None)
    RequestIdFilter().filter(outside)
    assert getattr(outside, "request_id", "unset") is None, "no id outside a request"


async def test_a_failure_outside_graphql_is_a_500_with_its_request_id(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(_request: Request) -> Response:
        raise RuntimeError("a bug in a route")

    app = create_app(settings)
    # A route of the app that fails as a bug would: outside GraphQL, so no error policy of
    # the view answers it.
    app.router.routes.append(Route("/broken", broken))
    caplog.handler.addFilter(RequestIdFilter())
    with serve_asgi(app, settings) as port, caplog.at_level(logging.ERROR):
        async with httpx.AsyncClient(timeout=30) as http:
            answer = await http.get(
                f"http://127.0.0.1:{port}/broken", headers={"X-Request-ID": "it-broke"}
            )
    assert answer.status_code == 500
    assert answer.headers["x-request-id"] == "it-broke"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.json() == {
        "errors": [
            {"message": "Internal server error", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
        ]
    }
    assert "a bug in a route" not in answer.text
    logged = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [getattr(r, "request_id", None) for r in logged] == ["it-broke"], caplog.text
    assert logged[0].exc_info is not None
