"""Persisted documents over real websockets of a served app, on both subprotocols: a
persisted-only server runs its manifest's documents (by text, hash or documentId) and refuses
every other query, subscription and mutation in the protocol's `error`, the socket staying
open; staff excepted when the setting says so; APQ hashes found in the store; and the errors a
client sees over a socket are the ones it sees over HTTP."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from websockets.typing import Subprotocol

from orderdesk.settings import Settings
from tests.graphql_client import JSON, STAFF_TOKEN, GraphQLClient
from tests.served import Served, serve
from tests.ws_client import LEGACY_WS, PRODUCT_EVENTS, TRANSPORT_WS, Socket, open_socket

PROTOCOLS = [TRANSPORT_WS, LEGACY_WS]
PRODUCTS = "query Products { products(first: 5) { totalCount } }"
CREATE = """mutation Create($sku: String!) { createProduct(input: {sku: $sku, name: "Anvil",
    price: "1.00", stock: 1}) { __typename } }"""
UNLISTED_QUERY = "query Unlisted { products(first: 1) { edges { node { sku } } } }"
UNLISTED_SUBSCRIPTION = "subscription { productEvents { position } }"
UNLISTED_MUTATION = """mutation { createProduct(input: {sku: "SNEAK-1", name: "Sneak",
    price: "1.00", stock: 1}) { __typename } }"""
NOT_ALLOWED = "PERSISTED_QUERY_NOT_ALLOWED"


def sha256(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def persisted(document: str) -> JSON:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256(document)}}


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = tmp_path / "persisted-documents.json"
    path.write_text(json.dumps({sha256(d): d for d in (PRODUCTS, CREATE, PRODUCT_EVENTS)}))
    return path


def persisted_only(settings: Settings, manifest: Path, **more: object) -> Settings:
    return settings.model_copy(
        update={"persisted_only": True, "persisted_manifest": str(manifest), **more}
    )


@pytest.fixture
def trusted_only(settings: Settings, manifest: Path) -> Iterator[Served]:
    with serve(persisted_only(settings, manifest)) as running:
        yield running


async def start(socket: Socket, op_id: str, payload: JSON) -> None:
    await socket.send(
        {"id": op_id, "type": "start" if socket.legacy else "subscribe", "payload": payload}
    )


async def refused(socket: Socket, op_id: str) -> JSON:
    """The next message must be the protocol's `error` for `op_id`; its one GraphQL error."""
    message = await socket.receive()
    assert message["type"] == "error", message
    assert message["id"] == op_id, message
    if socket.legacy:
        error: JSON = message["payload"]
        return error
    (error,) = message["payload"]
    return dict(error)


async def result(socket: Socket, op_id: str) -> JSON:
    """The one result of a query or mutation `op_id`, then its `complete`."""
    message = await socket.receive()
    assert message["type"] == ("data" if socket.legacy else "next"), message
    assert message["id"] == op_id, message
    assert await socket.receive() == {"type": "complete", "id": op_id}
    payload: JSON = message["payload"]
    return payload


async def still_open(socket: Socket) -> None:
    await start(socket, "open?", {"query": PRODUCTS})
    assert await result(socket, "open?") == {"data": {"products": {"totalCount": 0}}}


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_every_unlisted_document_is_refused_and_the_socket_stays_open(
    trusted_only: Served, protocol: Subprotocol
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        client = GraphQLClient(http, trusted_only)
        before = await client.event_count()
        async with open_socket(trusted_only.ws_url, protocol) as socket:
            await socket.init(STAFF_TOKEN)
            unlisted: list[JSON] = [
                {"query": UNLISTED_QUERY},
                {"query": UNLISTED_SUBSCRIPTION},
                {"query": UNLISTED_MUTATION},
                {"query": UNLISTED_MUTATION, "extensions": persisted(UNLISTED_MUTATION)},
                {"extensions": persisted(UNLISTED_MUTATION)},
                {"documentId": sha256(UNLISTED_MUTATION)},
            ]
            for n, payload in enumerate(unlisted):
                await start(socket, f"op{n}", payload)
                error = await refused(socket, f"op{n}")
                assert error["extensions"]["code"] == NOT_ALLOWED, payload
                assert "only trusted documents are served" in error["message"]
            await still_open(socket)
        # The mutation changed nothing: no event was written, no product is listed.
        assert await client.event_count() == before
        listed = await http.post(trusted_only.http_url, json={"query": PRODUCTS})
        assert listed.json() == {"data": {"products": {"totalCount": 0}}}


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_listed_documents_run_by_text_hash_and_document_id(
    trusted_only: Served, protocol: Subprotocol
) -> None:
    async with open_socket(trusted_only.ws_url, protocol) as socket:
        await socket.init(STAFF_TOKEN)
        await start(socket, "events", {"documentId": f"sha256:{sha256(PRODUCT_EVENTS)}"})
        for payload in (
            {"query": PRODUCTS},
            {"query": PRODUCTS, "extensions": persisted(PRODUCTS)},
            {"extensions": persisted(PRODUCTS)},
            {"documentId": sha256(PRODUCTS)},
        ):
            await start(socket, "q", payload)
            answer = await result(socket, "q")
            assert answer == {"data": {"products": {"totalCount": 0}}}, payload
        created = {"extensions": persisted(CREATE), "variables": {"sku": "ANV-1"}}
        await start(socket, "m", created)
        # The mutation's answer and the subscription's event, in either order.
        seen: dict[str, JSON] = {}
        while "events" not in seen or "complete" not in seen:
            message = await socket.receive()
            key = "complete" if message["type"] == "complete" else message["id"]
            seen[key] = message
        assert seen["m"]["payload"] == {
            "data": {"createProduct": {"__typename": "CreateProductSuccess"}}
        }
        event = seen["events"]["payload"]["data"]["productEvents"]
        assert event["type"] == "CREATED"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_staff_may_send_any_document_when_the_setting_says_so(
    settings: Settings, manifest: Path, protocol: Subprotocol
) -> None:
    with serve(persisted_only(settings, manifest, persisted_only_except_staff=True)) as running:
        async with open_socket(running.ws_url, protocol) as staff:
            await staff.init(STAFF_TOKEN)
            await start(staff, "q", {"query": UNLISTED_QUERY})
            assert await result(staff, "q") == {"data": {"products": {"edges": []}}}
            # Nothing is registered in persisted_only mode: staff's hash alone is not found.
            await start(staff, "h", {"extensions": persisted(UNLISTED_QUERY)})
            assert (await refused(staff, "h"))["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
        async with open_socket(running.ws_url, protocol) as anonymous:
            await anonymous.init(None)
            await start(anonymous, "q", {"query": UNLISTED_QUERY})
            assert (await refused(anonymous, "q"))["extensions"]["code"] == NOT_ALLOWED
            await still_open(anonymous)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_apq_hash_registered_over_http_runs_over_a_socket(
    served: Served, protocol: Subprotocol
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        registered = await http.post(
            served.http_url, json={"query": UNLISTED_QUERY, "extensions": persisted(UNLISTED_QUERY)}
        )
        assert registered.json() == {"data": {"products": {"edges": []}}}
    async with open_socket(served.ws_url, protocol) as socket:
        await socket.init(None)
        await start(socket, "h", {"extensions": persisted(UNLISTED_QUERY)})
        assert await result(socket, "h") == {"data": {"products": {"edges": []}}}
        await start(socket, "unknown", {"extensions": persisted(PRODUCTS)})
        error = await refused(socket, "unknown")
        assert error == {
            "message": "PersistedQueryNotFound",
            "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
        }
        await start(socket, "wrong", {"query": PRODUCTS, "extensions": persisted(CREATE)})
        error = await refused(socket, "wrong")
        assert error["extensions"]["code"] == "PERSISTED_QUERY_HASH_MISMATCH"
        await still_open(socket)


# ---------------------------------------------------------------- the same errors as HTTP


async def _errors_over(socket: Socket, query: str) -> list[JSON]:
    """The GraphQL errors a socket answers `query` with, wherever its protocol puts them."""
    await start(socket, "e", {"query": query})
    message = await socket.receive()
    assert message["id"] == "e", message
    if message["type"] == "error":
        payload = message["payload"]
        return payload if isinstance(payload, list) else [payload]
    assert await socket.receive() == {"type": "complete", "id": "e"}
    errors: list[JSON] = message["payload"]["errors"]
    return errors


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_socket_answers_a_failing_query_with_the_errors_http_gives(
    client: GraphQLClient, protocol: Subprotocol
) -> None:
    served = client.served
    failing = ["{ nope }", "{ products(", '{ node(id: "zzz") { id } }']
    async with open_socket(served.ws_url, protocol) as socket:
        await socket.init(STAFF_TOKEN)
        for query in failing:
            over_http = (await client.post(query)).json()["errors"]
            if query == "{ products(" and not socket.legacy:
                continue  # graphql-transport-ws closes the socket (4400) for a syntax error
            assert await _errors_over(socket, query) == over_http, query
    # An internal error: the read model the query reads is gone.
    engine = create_async_engine(served.settings.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("DROP TABLE customer_summaries"))
    finally:
        await engine.dispose()
    query = "{ customers { totalCount } }"
    over_http = (await client.post(query)).json()["errors"]
    assert over_http[0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    async with open_socket(served.ws_url, protocol) as socket:
        await socket.init(STAFF_TOKEN)
        assert await _errors_over(socket, query) == over_http


async def test_a_syntax_error_closes_graphql_transport_ws_with_the_message_http_gives(
    client: GraphQLClient,
) -> None:
    (over_http,) = (await client.post("{ products(")).json()["errors"]
    assert over_http["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    async with open_socket(client.served.ws_url, TRANSPORT_WS) as socket:
        await socket.init(STAFF_TOKEN)
        await start(socket, "e", {"query": "{ products("})
        assert await socket.closed() == (4400, over_http["message"])


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_rate_limited_mutation_has_the_error_http_gives(
    settings: Settings, protocol: Subprotocol
) -> None:
    limited = settings.model_copy(
        update={
            "rate_limits": True,
            "rate_limit_per_address": "1000/minute",
            "rate_limit_per_identity": "1000/minute",
            "rate_limit_failed_auth": "1000/minute",
            "rate_limit_registrations": "1/minute",
        }
    )
    register = """mutation { registerCustomer(input: {name: "Ada", email: "%s@example.com"}) {
        __typename } }"""
    with serve(limited) as running:
        async with httpx.AsyncClient(timeout=30) as http:
            client = GraphQLClient(http, running).anonymous()
            await client.execute(register % "first")
            over_http = (await client.post(register % "second")).json()["errors"]
        assert over_http[0]["extensions"]["code"] == "RATE_LIMITED"
        async with open_socket(running.ws_url, protocol) as socket:
            await socket.init(None)
            assert await _errors_over(socket, register % "third") == over_http
