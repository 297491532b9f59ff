"""Automatic persisted queries and trusted documents, as Apollo's PersistedQueryLink, GraphQL
Code Generator's client preset and a plain HTTP client meet them through a served app: the
hash round trip over POST and GET, refused hashes storing nothing, stored texts held to every
limit, texts shared by processes through Redis, and a persisted-only server serving its
manifest and nothing else."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import redis.asyncio as redis

from orderdesk.app import create_app
from orderdesk.persisted_queries import REDIS_INDEX, LocalPersistedQueries
from orderdesk.settings import Settings
from orderdesk.trusted_documents import InvalidManifest
from tests.databases import REDIS_ENV, sqlite_url
from tests.graphql_client import JSON, STAFF_TOKEN, GraphQLClient
from tests.node_clients import run_node
from tests.served import Served, serve
from tests.served_processes import serve_process

MODERN = "application/graphql-response+json, application/json;q=0.9"
STAFF = {"Authorization": f"Bearer {STAFF_TOKEN}"}
PRODUCTS = "query Products { products(first: 5) { totalCount } }"
SKUS = "query Skus { products(first: 5) { edges { node { sku } } } }"
UNLISTED = "query Unlisted { products(first: 1) { totalCount } }"
CREATE = """mutation Create($sku: String!) { createProduct(input: {sku: $sku, name: "Anvil",
    price: "1.00", stock: 1}) { __typename } }"""
PAGE_OF_PAGES = """query Pages($first: Int!) { customers(first: $first) { edges { node {
    orders(first: 100) { edges { node { lines { productName } } } } } } } }"""
REDIS_DB = 13
"""A database of its own, emptied before and after (rate limits use 12, the query cache 14, 15)."""


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def persisted(sha: str) -> JSON:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha}}


async def post(
    served: Served,
    http: httpx.AsyncClient,
    body: Any,
    *,
    accept: str = "application/json",
    token: str | None = STAFF_TOKEN,
) -> httpx.Response:
    headers = {"accept": accept}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return await http.post(served.http_url, json=body, headers=headers)


async def get(
    served: Served, http: httpx.AsyncClient, params: dict[str, str], *, accept: str = MODERN
) -> httpx.Response:
    return await http.get(served.http_url, params=params, headers={"accept": accept, **STAFF})


def only_error(response: httpx.Response) -> JSON:
    body: JSON = response.json()
    (error,) = body["errors"]
    assert "data" not in body or body["data"] is None, body
    return dict(error)


def stored(served: Served) -> int:
    store = served.services.persisted_queries
    assert isinstance(store, LocalPersistedQueries)
    return len(store)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


# ---------------------------------------------------------------- automatic persisted queries


async def test_the_apq_round_trip_over_post(served: Served, http: httpx.AsyncClient) -> None:
    sha = sha256(PRODUCTS)
    unknown = await post(served, http, {"extensions": persisted(sha)})
    # What PersistedQueryLink looks for, with 200 for an application/json client.
    assert unknown.status_code == 200, unknown.text
    error = only_error(unknown)
    assert error["message"] == "PersistedQueryNotFound"
    assert error["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    # A graphql-response+json client is told so with 400 and no data entry (a request error).
    strict = await post(served, http, {"extensions": persisted(sha)}, accept=MODERN)
    assert strict.status_code == 400
    assert "data" not in strict.json()
    assert strict.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    assert stored(served) == 0

    registered = await post(served, http, {"query": PRODUCTS, "extensions": persisted(sha)})
    assert registered.json() == {"data": {"products": {"totalCount": 0}}}
    assert stored(served) == 1

    by_hash = await post(served, http, {"extensions": persisted(sha)}, accept=MODERN)
    assert by_hash.status_code == 200
    assert by_hash.json() == {"data": {"products": {"totalCount": 0}}}
    # Upper-case hex names the same text.
    upper = await post(served, http, {"extensions": persisted(sha.upper())})
    assert upper.json() == {"data": {"products": {"totalCount": 0}}}
    assert stored(served) == 1


async def test_the_apq_round_trip_over_get(served: Served, http: httpx.AsyncClient) -> None:
    sha = sha256(SKUS)
    params = {"extensions": json.dumps(persisted(sha)), "operationName": "Skus"}
    # Accept */* as curl sends it: a hash is a query, not a browser asking for GraphiQL.
    unknown = await get(served, http, params, accept="*/*")
    assert unknown.headers["content-type"].startswith("application/json")
    assert only_error(unknown)["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"

    registered = await get(served, http, {**params, "query": SKUS})
    assert registered.status_code == 200, registered.text
    assert registered.json() == {"data": {"products": {"edges": []}}}

    by_hash = await get(served, http, params)
    assert by_hash.status_code == 200, by_hash.text
    assert by_hash.json() == {"data": {"products": {"edges": []}}}


async def test_variables_travel_with_a_hash_over_get(
    served: Served, http: httpx.AsyncClient
) -> None:
    query = "query One($first: Int!) { products(first: $first) { totalCount } }"
    sha = sha256(query)
    await post(
        served, http, {"query": query, "variables": {"first": 1}, "extensions": persisted(sha)}
    )
    params = {"extensions": json.dumps(persisted(sha)), "variables": json.dumps({"first": 2})}
    assert (await get(served, http, params)).json() == {"data": {"products": {"totalCount": 0}}}
    bad = await get(served, http, {**params, "variables": "{not json"})
    assert bad.status_code == 400
    assert "variables parameter is not JSON" in bad.json()["errors"][0]["message"]


async def test_a_persisted_mutation_is_not_run_over_get(
    served: Served, client: GraphQLClient
) -> None:
    sha = sha256(CREATE)
    body = {"query": CREATE, "variables": {"sku": "GET-1"}, "extensions": persisted(sha)}
    assert (await post(served, client.http, body)).json() == {
        "data": {"createProduct": {"__typename": "CreateProductSuccess"}}
    }
    events = await client.event_count()
    params = {
        "extensions": json.dumps(persisted(sha)),
        "variables": json.dumps({"sku": "GET-2"}),
    }
    refused = await get(served, client.http, params)
    assert refused.status_code == 400, refused.text
    assert "mutation" in refused.json()["errors"][0]["message"].lower()
    assert await client.event_count() == events


async def test_a_hash_that_is_not_the_query_s_is_refused_and_nothing_is_stored(
    served: Served, http: httpx.AsyncClient
) -> None:
    claimed = sha256(SKUS)
    for accept in ("application/json", MODERN):
        mismatch = await post(
            served, http, {"query": PRODUCTS, "extensions": persisted(claimed)}, accept=accept
        )
        assert mismatch.status_code == 400, mismatch.text
        error = only_error(mismatch)
        assert error["extensions"]["code"] == "PERSISTED_QUERY_HASH_MISMATCH"
        assert "nothing was stored" in error["message"]
    assert stored(served) == 0
    later = await post(served, http, {"extensions": persisted(claimed)})
    assert only_error(later)["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


@pytest.mark.parametrize(
    ("extension", "code"),
    [
        ({"version": 1, "sha256Hash": "abc"}, "PERSISTED_QUERY_HASH_INVALID"),
        ({"version": 1, "sha256Hash": "g" * 64}, "PERSISTED_QUERY_HASH_INVALID"),
        ({"version": 1, "sha256Hash": 42}, "PERSISTED_QUERY_HASH_INVALID"),
        ({"version": 1}, "PERSISTED_QUERY_HASH_INVALID"),
        ({"version": 2, "sha256Hash": "a" * 64}, "PERSISTED_QUERY_VERSION_NOT_SUPPORTED"),
        ({"sha256Hash": "a" * 64}, "PERSISTED_QUERY_VERSION_NOT_SUPPORTED"),
        ("a" * 64, "BAD_REQUEST"),
    ],
)
async def test_a_malformed_persisted_query_is_a_clear_400(
    served: Served, http: httpx.AsyncClient, extension: object, code: str
) -> None:
    body = {"query": PRODUCTS, "extensions": {"persistedQuery": extension}}
    response = await post(served, http, body)
    assert response.status_code == 400, response.text
    assert only_error(response)["extensions"]["code"] == code
    assert stored(served) == 0


async def test_a_text_that_does_not_validate_is_not_stored(
    served: Served, http: httpx.AsyncClient
) -> None:
    garbage = "{ products { nonsense } }"
    sha = sha256(garbage)
    refused = await post(served, http, {"query": garbage, "extensions": persisted(sha)})
    assert only_error(refused)["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert stored(served) == 0
    later = await post(served, http, {"extensions": persisted(sha)})
    assert only_error(later)["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


async def test_a_stored_document_is_held_to_the_cost_limit_on_every_use(
    served: Served, http: httpx.AsyncClient
) -> None:
    sha = sha256(PAGE_OF_PAGES)
    cheap = await post(
        served,
        http,
        {"query": PAGE_OF_PAGES, "variables": {"first": 1}, "extensions": persisted(sha)},
    )
    assert cheap.json() == {"data": {"customers": {"edges": []}}}, cheap.text
    assert stored(served) == 1
    costly = await post(
        served, http, {"variables": {"first": 100}, "extensions": persisted(sha)}, accept=MODERN
    )
    assert costly.status_code == 400
    assert "data" not in costly.json()
    assert costly.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"


async def test_a_stored_text_is_held_to_the_length_limit_of_the_server_using_it(
    tmp_path: Path, settings: Settings, http: httpx.AsyncClient
) -> None:
    """Texts stored by a roomier server (shared Redis) are measured again where they run."""
    long_query = "query Long { products(first: 1) { totalCount } }" + " " * 3_000
    sha = sha256(long_query)
    with serve(settings.model_copy(update={"max_query_length": 2_000})) as strict:
        store = strict.services.persisted_queries
        assert isinstance(store, LocalPersistedQueries)
        store.max_text = 10_000  # as a roomier process sharing its Redis would have it
        await store.remember(sha, long_query)
        refused = await post(strict, http, {"extensions": persisted(sha)})
        assert refused.status_code == 400
        assert only_error(refused)["extensions"]["code"] == "QUERY_TOO_LONG"


async def test_apq_turned_off_says_so_in_the_code_apollo_falls_back_on(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    with serve(settings.model_copy(update={"apq": False})) as running:
        assert running.services.persisted_queries is None
        sha = sha256(PRODUCTS)
        for body in (
            {"extensions": persisted(sha)},
            {"query": PRODUCTS, "extensions": persisted(sha)},
        ):
            refused = await post(running, http, body)
            assert refused.status_code == 200
            error = only_error(refused)
            assert error["extensions"]["code"] == "PERSISTED_QUERY_NOT_SUPPORTED"
            assert "turned off" in error["message"]
        # Plain texts are served as ever.
        plain = await post(running, http, {"query": PRODUCTS})
        assert plain.json() == {"data": {"products": {"totalCount": 0}}}


async def test_apollo_persisted_query_link_sends_the_hash_alone_once_registered(
    served: Served,
) -> None:
    for mode in ("apq", "apq-get"):
        outcome = run_node("apollo_links.mjs", served.http_url, mode, STAFF_TOKEN)
        assert isinstance(outcome, dict)
        assert (
            outcome["results"]
            == [{"products": {"__typename": "ProductConnection", "totalCount": 0}}] * 2
        ), outcome
        sent = outcome["sent"]
        # First hash-only (not found), then hash and text, then the hash alone.
        assert [entry["hasQuery"] for entry in sent] == [False, True, False], sent
        assert all(entry["hasHash"] for entry in sent), sent
        if mode == "apq-get":
            assert [entry["method"] for entry in sent] == ["GET", "POST", "GET"], sent
    # One text registered by each mode.
    assert stored(served) == 2


# ---------------------------------------------------------------- shared through Redis


def redis_url() -> str:
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"persisted queries shared through Redis need {REDIS_ENV} (set by .ci/run)")
    return urlsplit(url)._replace(path=f"/{REDIS_DB}").geturl()


async def test_a_text_registered_through_one_process_is_found_by_another(
    tmp_path: Path, settings: Settings, http: httpx.AsyncClient
) -> None:
    url = redis_url()
    connection = redis.Redis.from_url(url)
    await connection.flushdb()
    try:
        shared = settings.model_copy(update={"apq_url": url})
        with ExitStack() as stack:
            first = stack.enter_context(serve(shared))
            second = stack.enter_context(serve(shared))
            sha = sha256(PRODUCTS)
            unknown = await post(second, http, {"extensions": persisted(sha)})
            assert only_error(unknown)["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
            registered = await post(first, http, {"query": PRODUCTS, "extensions": persisted(sha)})
            assert registered.json() == {"data": {"products": {"totalCount": 0}}}
            found = await post(second, http, {"extensions": persisted(sha)})
            assert found.json() == {"data": {"products": {"totalCount": 0}}}
        keys = await connection.keys("orderdesk:apq:v1:*")
        assert keys == [f"orderdesk:apq:v1:{sha}".encode()]
        assert 0 < await connection.ttl(keys[0]) <= 86_400
        assert await connection.zrange(REDIS_INDEX, 0, -1) == [sha.encode()]
        # A text planted in Redis under another document's hash is not run.
        await connection.set(f"orderdesk:apq:v1:{sha256(SKUS)}", PRODUCTS)
        with serve(shared) as third:
            planted = await post(third, http, {"extensions": persisted(sha256(SKUS))})
            assert only_error(planted)["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    finally:
        await connection.flushdb()
        await connection.aclose()


async def test_two_served_processes_share_their_persisted_queries_through_redis(
    tmp_path: Path, http: httpx.AsyncClient
) -> None:
    """Two `orderdesk serve` processes (each its own database: the texts are what they
    share): what a client registered through one, the other runs from its hash alone."""
    url = redis_url()
    connection = redis.Redis.from_url(url)
    await connection.flushdb()
    env = {"ORDERDESK_APQ_URL": url}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    try:
        async with (
            serve_process(sqlite_url(tmp_path / "a"), tmp_path / "a.log", env=env) as first,
            serve_process(sqlite_url(tmp_path / "b"), tmp_path / "b.log", env=env) as second,
        ):
            sha = sha256(PRODUCTS)
            unknown = await post(second.served, http, {"extensions": persisted(sha)})
            assert only_error(unknown)["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
            body = {"query": PRODUCTS, "extensions": persisted(sha)}
            registered = await post(first.served, http, body)
            assert registered.json() == {"data": {"products": {"totalCount": 0}}}
            found = await post(second.served, http, {"extensions": persisted(sha)})
            assert found.json() == {"data": {"products": {"totalCount": 0}}}
    finally:
        await connection.flushdb()
        await connection.aclose()


# ---------------------------------------------------------------- trusted documents


def client_preset_manifest(*documents: str) -> JSON:
    """GraphQL Code Generator's client preset `persisted-documents.json`."""
    return {sha256(document): document for document in documents}


def apollo_manifest(*documents: str) -> JSON:
    """What Apollo's generate-persisted-query-manifest writes."""
    return {
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": [
            {"id": sha256(document), "name": f"Op{n}", "type": "query", "body": document}
            for n, document in enumerate(documents)
        ],
    }


@pytest.fixture(params=["client-preset", "apollo"])
def manifest(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    maker = client_preset_manifest if request.param == "client-preset" else apollo_manifest
    path = tmp_path / "persisted-documents.json"
    path.write_text(json.dumps(maker(PRODUCTS, SKUS)))
    return path


@pytest.fixture
def trusted_only(settings: Settings, manifest: Path) -> Iterator[Served]:
    with serve(
        settings.model_copy(update={"persisted_only": True, "persisted_manifest": str(manifest)})
    ) as running:
        yield running


async def test_a_persisted_only_server_serves_its_documents_by_hash_id_and_text(
    trusted_only: Served, http: httpx.AsyncClient
) -> None:
    expected = {"data": {"products": {"totalCount": 0}}}
    sha = sha256(PRODUCTS)
    for body in (
        {"extensions": persisted(sha)},
        {"documentId": sha},
        {"documentId": f"sha256:{sha}"},
        {"query": PRODUCTS},
        {"query": PRODUCTS, "extensions": persisted(sha)},
    ):
        response = await post(trusted_only, http, body, token=None)
        assert response.status_code == 200, (body, response.text)
        assert response.json() == expected, body
    by_get = await get(trusted_only, http, {"documentId": sha256(SKUS)})
    assert by_get.json() == {"data": {"products": {"edges": []}}}, by_get.text


async def test_a_persisted_only_server_refuses_every_other_document(
    trusted_only: Served, http: httpx.AsyncClient
) -> None:
    sha = sha256(UNLISTED)
    for body in (
        {"query": UNLISTED},
        {"query": UNLISTED, "extensions": persisted(sha)},
        {"extensions": persisted(sha)},
        {"documentId": sha},
    ):
        legacy = await post(trusted_only, http, body)
        assert legacy.status_code == 200, legacy.text
        error = only_error(legacy)
        assert error["extensions"]["code"] == "PERSISTED_QUERY_NOT_ALLOWED", body
        assert "only trusted documents are served" in error["message"]
        strict = await post(trusted_only, http, body, accept=MODERN)
        assert strict.status_code == 400
        assert "data" not in strict.json()
    # Nothing was registered: the hash is still refused, the store still empty.
    assert stored(trusted_only) == 0
    conflicting = await post(
        trusted_only, http, {"documentId": sha256(PRODUCTS), "query": PRODUCTS}
    )
    assert conflicting.status_code == 400


async def test_staff_may_send_any_document_when_the_setting_says_so(
    settings: Settings, manifest: Path
) -> None:
    excepted = settings.model_copy(
        update={
            "persisted_only": True,
            "persisted_manifest": str(manifest),
            "persisted_only_except_staff": True,
        }
    )
    async with httpx.AsyncClient(timeout=30) as http:
        with serve(excepted) as running:
            staff = await post(running, http, {"query": UNLISTED})
            assert staff.json() == {"data": {"products": {"totalCount": 0}}}
            # Staff's hash is not found (nothing is registered here): its link sends the text.
            sha = sha256(UNLISTED)
            hashed = await post(running, http, {"extensions": persisted(sha)})
            assert only_error(hashed)["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
            with_text = await post(running, http, {"query": UNLISTED, "extensions": persisted(sha)})
            assert with_text.json() == {"data": {"products": {"totalCount": 0}}}
            assert stored(running) == 0
            anonymous = await post(running, http, {"query": UNLISTED}, token=None)
            assert only_error(anonymous)["extensions"]["code"] == "PERSISTED_QUERY_NOT_ALLOWED"
            listed = await post(running, http, {"query": PRODUCTS}, token=None)
            assert listed.json() == {"data": {"products": {"totalCount": 0}}}
        with serve(
            settings.model_copy(
                update={"persisted_only": True, "persisted_manifest": str(manifest)}
            )
        ) as strict:
            refused = await post(strict, http, {"query": UNLISTED})
            assert only_error(refused)["extensions"]["code"] == "PERSISTED_QUERY_NOT_ALLOWED"


async def test_a_manifest_answers_document_ids_when_not_persisted_only(
    settings: Settings, manifest: Path, http: httpx.AsyncClient
) -> None:
    with serve(settings.model_copy(update={"persisted_manifest": str(manifest)})) as running:
        listed = await post(running, http, {"documentId": sha256(PRODUCTS)})
        assert listed.json() == {"data": {"products": {"totalCount": 0}}}
        unknown = await post(running, http, {"documentId": sha256(UNLISTED)})
        assert only_error(unknown)["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
        assert (await post(running, http, {"query": UNLISTED})).json() == {
            "data": {"products": {"totalCount": 0}}
        }


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "cannot be read"),
        (b"{not json", "is not JSON"),
        (b"[]", "neither"),
        (b"{}", "lists no documents"),
        (b'{"abc": 42}', "is not a document"),
        (
            b'{"format": "apollo-persisted-query-manifest", "version": 2, "operations": []}',
            "version 2",
        ),
        (
            b'{"format": "apollo-persisted-query-manifest", "version": 1, '
            b'"operations": [{"id": "x"}]}',
            "no `body`",
        ),
        (b'{"format": "something-else", "version": 1, "operations": []}', "something-else"),
    ],
)
def test_a_missing_or_malformed_manifest_stops_the_start(
    settings: Settings, tmp_path: Path, content: bytes | None, says: str
) -> None:
    path = tmp_path / "manifest.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InvalidManifest, match=says):
        create_app(
            settings.model_copy(update={"persisted_only": True, "persisted_manifest": str(path)})
        )


def test_persisted_only_without_a_manifest_stops_the_start(settings: Settings) -> None:
    with pytest.raises(InvalidManifest, match="ORDERDESK_PERSISTED_MANIFEST"):
        create_app(settings.model_copy(update={"persisted_only": True}))
