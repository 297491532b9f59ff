"""What a stranger may send over HTTP, against the served app: every malformed request gets a
4xx with a code and leaves no traceback in the log; an operation is held to its deadline and
its answer to a size; production mode hides what a stranger has no use for."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from handlers.access import Identity, Role
from tests.databases import sqlite_settings
from tests.graphql_client import STAFF_TOKEN, TOKENS, GraphQLClient
from tests.read_side import SLOW_READ_MODEL
from tests.served import Served, serve

JSON_BODY = {"content-type": "application/json"}
STAFF = Identity("staff-1", Role.STAFF)
SEARCH = "query($search: String) { products(search: $search) { totalCount } }"


def _nested(depth: int) -> bytes:
    return b'{"query": "{ __typename }", "variables": {"a": ' + b"[" * depth + b"]" * depth + b"}}"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"42", 400, "must be a JSON object"),
        (b"null", 400, "must be a JSON object"),
        (b'"x"', 400, "must be a JSON object"),
        (b"true", 400, "must be a JSON object"),
        (b"[]", 400, "must be a JSON object"),
        (b'{"query": "{ __typename }"}\xff', 400, "not UTF-8"),
        (b"\xff\xfe{}", 400, "not UTF-8"),
        (_nested(5_000), 400, "nested deeper than"),
        (_nested(40), 400, "nested deeper than"),
        (b'{"query": "subscription { productEvents { position } }"}', 400, "websockets"),
        (json.dumps({"query": "#" + "x" * 30_000 + "\n{ __typename }"}).encode(), 400, "exceeds"),
        (
            json.dumps({"query": SEARCH, "variables": {"search": "x" * 20_001}}).encode(),
            400,
            "a string in the request exceeds 20000 characters",
        ),
        (
            json.dumps({"query": SEARCH, "variables": {"query": "x" * 20_001}}).encode(),
            400,
            "a string in the request exceeds 20000 characters",
        ),
        (b'{"query": "{ __typename }", "variables": {"a": NaN}}', 400, "JSON does not allow"),
        (b'{"query": "{ __typename }", "variables": {"a": 1' + b"0" * 5_000 + b"}}", 400, "JSON"),
    ],
)
async def test_a_malformed_request_is_a_4xx_with_a_code_and_no_traceback(
    client: GraphQLClient,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    status: int,
    message: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    for accept in ("application/json", "application/graphql-response+json"):
        response = await client.http.post(
            client.served.http_url, content=body, headers={**JSON_BODY, "accept": accept}
        )
        assert response.status_code == status, response.text
        error = response.json()["errors"][0]
        assert message in error["message"]
        # BATCH_NOT_ALLOWED: `[]` is an (empty) batch, and batches are off by default.
        assert error["extensions"]["code"] in {"BAD_REQUEST", "QUERY_TOO_LONG", "BATCH_NOT_ALLOWED"}
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    # And the server is still well.
    assert await client.execute("{ __typename }") == {"__typename": "Query"}


async def test_a_long_query_is_refused_before_it_is_parsed(client: GraphQLClient) -> None:
    query = "{ __typename " + "# padding\n" * 3_000 + "}"
    response = await client.post(query)
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["extensions"] == {"code": "QUERY_TOO_LONG", "maxLength": 20_000}
    get = await client.http.get(client.served.http_url, params={"query": query})
    assert get.status_code == 400
    assert get.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_LONG"


# ---------------------------------------------------------------- the deadline and the size


@pytest.fixture
def bounded(tmp_path: Path) -> Iterator[Served]:
    settings = sqlite_settings(
        tmp_path,
        execution_timeout=0.5,
        max_response_bytes=2_000,
    )
    with serve(settings, extra_projections=[SLOW_READ_MODEL]) as running:
        yield running


CREATE = """mutation($sku: String!) { createProduct(input: {sku: $sku, name: "Anvil",
    price: "1.00", stock: 1}) { __typename } }"""


async def test_an_operation_past_its_deadline_is_stopped_with_a_clear_error(
    bounded: Served,
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        client = GraphQLClient(http, bounded)
        started = asyncio.get_running_loop().time()
        response = await client.post(CREATE, {"sku": "ANV-1"})
        took = asyncio.get_running_loop().time() - started
        assert response.status_code == 200
        body = response.json()
        assert body["data"] is None
        (error,) = body["errors"]
        assert error["extensions"] == {"code": "EXECUTION_TIMEOUT", "seconds": 0.5}
        assert "idempotencyKey" in error["message"]
        assert took < 2.5, "the mutation waited for the read model instead of its deadline"
        strict = await client.post(
            CREATE, {"sku": "ANV-2"}, headers={"accept": "application/graphql-response+json"}
        )
        assert strict.status_code == 504
        # The server is free for the next caller meanwhile.
        assert (await client.post("{ __typename }")).json() == {"data": {"__typename": "Query"}}


async def test_an_answer_larger_than_the_cap_is_replaced_by_an_error(bounded: Served) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        client = GraphQLClient(http, bounded)
        small = await client.post("{ __typename }")
        assert small.json() == {"data": {"__typename": "Query"}}
        big = await client.post("{ __schema { types { name description } } }")
        assert len(big.content) < 2_000
        body = big.json()
        assert body["data"] is None
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "RESPONSE_TOO_LARGE"
        assert error["extensions"]["maxBytes"] == 2_000
        assert error["extensions"]["bytes"] > 2_000


# ---------------------------------------------------------------- tokens


async def test_a_refused_token_is_told_in_our_words_not_the_jwt_librarys(
    client: GraphQLClient,
) -> None:
    forged = STAFF_TOKEN[:-4] + ("AAAA" if not STAFF_TOKEN.endswith("AAAA") else "BBBB")
    for token, said in [
        (forged, "the bearer token is not valid"),
        ("not-a-jwt", "the bearer token is not valid"),
        (TOKENS.issue(STAFF, lifetime=timedelta(seconds=-5)), "the bearer token has expired"),
    ]:
        response = await client.as_customer(token).post("{ __typename }")
        assert response.status_code == 401
        assert response.json()["errors"][0]["message"] == said
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


# ---------------------------------------------------------------- production mode


@pytest.fixture
def production(tmp_path: Path) -> Iterator[Served]:
    settings = sqlite_settings(
        tmp_path,
        env="production",
        metrics_token=SecretStr("metrics-token-for-the-tests"),
    )
    with serve(settings) as running:
        yield running


async def test_production_serves_no_graphiql_and_metrics_only_to_their_token(
    production: Served,
) -> None:
    base = production.http_url.removesuffix("/graphql")
    async with httpx.AsyncClient(timeout=30) as http:
        page = await http.get(production.http_url, headers={"Accept": "text/html"})
        assert page.status_code == 404
        assert page.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        assert (await http.get(f"{base}/metrics")).status_code == 401
        wrong = await http.get(f"{base}/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = await http.get(
            f"{base}/metrics", headers={"Authorization": "Bearer metrics-token-for-the-tests"}
        )
        assert right.status_code == 200
        assert "orderdesk_message_seconds" in right.text


async def test_production_without_a_metrics_token_serves_no_metrics(tmp_path: Path) -> None:
    settings = sqlite_settings(tmp_path, env="production")
    with serve(settings) as running:
        async with httpx.AsyncClient(timeout=30) as http:
            base = running.http_url.removesuffix("/graphql")
            assert (await http.get(f"{base}/metrics")).status_code == 404


async def test_every_response_carries_the_security_headers(client: GraphQLClient) -> None:
    page = await client.http.get(client.served.http_url, headers={"Accept": "text/html"})
    answer = await client.post("{ __typename }")
    for response in (page, answer):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
    page_policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in page_policy
    assert "frame-ancestors 'none'" in page_policy
    assert "<script>" not in page.text, "an inline script would need 'unsafe-inline'"
    assert answer.headers["content-security-policy"].startswith("default-src 'none'")


async def test_graphiql_keeps_no_headers_in_local_storage(client: GraphQLClient) -> None:
    base = client.served.http_url.removesuffix("/graphql")
    script = await client.http.get(f"{base}/graphiql/static/orderdesk-graphiql.js")
    assert script.status_code == 200
    assert "shouldPersistHeaders: false" in script.text
    code = [line for line in script.text.splitlines() if not line.strip().startswith("//")]
    assert not [line for line in code if "localStorage" in line]
