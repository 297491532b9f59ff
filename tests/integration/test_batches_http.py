"""Batches (a JSON array of operations, as Apollo's BatchHttpLink sends) through a served
app: off unless max_batch says, answered in order, each operation counted against the limits
on its own (rate limits included), mutations applied in order before the queries after
them, a batch with a bad element refused before any of it runs, and a batch bounded in time
as a whole."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orderdesk.settings import Settings
from tests.databases import sqlite_settings
from tests.graphql_client import JSON, STAFF_TOKEN, GraphQLClient
from tests.node_clients import run_node
from tests.read_side import SLOW_READ_MODEL
from tests.served import Served, serve

STAFF = {"Authorization": f"Bearer {STAFF_TOKEN}"}
COUNT = "{ products { totalCount } }"
CREATE = """mutation($sku: String!) { createProduct(input: {sku: $sku, name: "Anvil",
    price: "1.00", stock: 1}) { __typename } }"""
SEARCH = "query($search: String) { products(search: $search) { totalCount } }"
MODERN = "application/graphql-response+json, application/json;q=0.9"


@pytest.fixture
def batching(settings: Settings) -> Iterator[Served]:
    with serve(settings.model_copy(update={"max_batch": 5})) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def send(
    served: Served, http: httpx.AsyncClient, body: Any, *, accept: str = "application/json"
) -> httpx.Response:
    return await http.post(served.http_url, json=body, headers={"accept": accept, **STAFF})


def refusal(response: httpx.Response, code: str) -> JSON:
    assert response.status_code == 400, response.text
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == code, error
    return dict(error)


async def test_batches_are_refused_unless_turned_on(
    served: Served, http: httpx.AsyncClient
) -> None:
    refused = await send(served, http, [{"query": COUNT}, {"query": COUNT}])
    error = refusal(refused, "BATCH_NOT_ALLOWED")
    assert "does not accept batches" in error["message"]


async def test_a_batch_is_answered_in_order(batching: Served, http: httpx.AsyncClient) -> None:
    response = await send(
        batching,
        http,
        [
            {"query": COUNT},
            {"query": "{ __typename }"},
            {
                "query": "query Other { __typename } query Named { products { totalCount } }",
                "operationName": "Named",
            },
            {"query": "{ products { nonsense } }"},
        ],
        accept=MODERN,
    )
    # One status cannot speak for four answers: 200, each answer with its own errors.
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/graphql-response+json")
    answers = response.json()
    assert answers[:3] == [
        {"data": {"products": {"totalCount": 0}}},
        {"data": {"__typename": "Query"}},
        {"data": {"products": {"totalCount": 0}}},
    ]
    # A document that does not validate is a request error of its own: no data entry.
    assert answers[3]["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "data" not in answers[3]


async def test_a_batch_over_the_cap_is_refused(batching: Served, http: httpx.AsyncClient) -> None:
    refused = await send(batching, http, [{"query": "{ __typename }"}] * 6)
    error = refusal(refused, "BATCH_TOO_LARGE")
    assert error["extensions"]["maxBatch"] == 5
    assert "at most 5" in error["message"]
    assert (await send(batching, http, [{"query": "{ __typename }"}] * 5)).status_code == 200


async def test_a_mutation_then_a_query_in_one_batch_reads_the_write(
    batching: Served, http: httpx.AsyncClient
) -> None:
    response = await send(
        batching,
        http,
        [
            {"query": CREATE, "variables": {"sku": "BAT-1"}},
            {"query": CREATE, "variables": {"sku": "BAT-1"}},
            {"query": SEARCH, "variables": {"search": "Anvil"}},
        ],
    )
    first, second, after = response.json()
    assert first == {"data": {"createProduct": {"__typename": "CreateProductSuccess"}}}
    # In order: the second create of the same SKU is the one refused.
    assert second["data"]["createProduct"]["__typename"] != "CreateProductSuccess", second
    assert after == {"data": {"products": {"totalCount": 1}}}


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("{ __typename }", "not a JSON object"),
        ({"query": COUNT, "variables": [1]}, "`variables` must be an object"),
        ({"query": 42}, "`query` must be a string"),
        ({"variables": {}}, "has no query"),
        ({"query": "subscription { productEvents { position } }"}, "is a subscription"),
        (
            {
                "query": COUNT,
                "extensions": {"persistedQuery": {"version": 1, "sha256Hash": "a" * 64}},
            },
            "is not the SHA-256 of the query",
        ),
    ],
)
async def test_a_batch_with_a_bad_element_runs_none_of_it(
    batching: Served, http: httpx.AsyncClient, bad: object, says: str
) -> None:
    client = GraphQLClient(http, batching)
    events = await client.event_count()
    refused = await send(batching, http, [{"query": CREATE, "variables": {"sku": "NO-1"}}, bad])
    assert refused.status_code == 400, refused.text
    assert says in refused.json()["errors"][0]["message"]
    assert await client.event_count() == events


async def test_each_answer_of_a_batch_has_its_own_size_cap(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    with serve(settings.model_copy(update={"max_batch": 3, "max_response_bytes": 2_000})) as small:
        response = await send(
            small,
            http,
            [{"query": "{ __typename }"}, {"query": "{ __schema { types { name description } } }"}],
        )
    small_answer, big_answer = response.json()
    assert small_answer == {"data": {"__typename": "Query"}}
    assert big_answer["errors"][0]["extensions"]["code"] == "RESPONSE_TOO_LARGE"


async def test_a_persisted_hash_in_a_batch_is_answered_in_its_own_place(
    batching: Served, http: httpx.AsyncClient
) -> None:
    sha = hashlib.sha256(COUNT.encode()).hexdigest()
    hashed = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha}}}
    first = await send(batching, http, [{"query": "{ __typename }"}, hashed])
    assert first.json()[0] == {"data": {"__typename": "Query"}}
    assert first.json()[1]["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    await send(batching, http, [{"query": COUNT, **hashed}])
    again = await send(batching, http, [hashed, hashed])
    assert again.json() == [{"data": {"products": {"totalCount": 0}}}] * 2


async def test_each_operation_of_a_batch_spends_the_rate_limit(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    limited = settings.model_copy(
        update={
            "max_batch": 5,
            "rate_limits": True,
            "rate_limit_per_address": "5/minute",
            "rate_limit_per_identity": "1000/minute",
        }
    )
    with serve(limited) as running:
        three = [{"query": "{ __typename }"}] * 3
        assert (await send(running, http, three)).status_code == 200
        # Two requests, but six operations against a budget of five.
        refused = await send(running, http, three)
        assert refused.status_code == 429, refused.text
        assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert int(refused.headers["retry-after"]) >= 1


async def test_each_operation_of_a_batch_spends_the_caller_s_budget(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    limited = settings.model_copy(
        update={
            "max_batch": 5,
            "rate_limits": True,
            "rate_limit_per_address": "1000/minute",
            "rate_limit_per_identity": "4/minute",
        }
    )
    with serve(limited) as running:
        assert (await send(running, http, [{"query": "{ __typename }"}] * 4)).status_code == 200
        assert (await send(running, http, {"query": "{ __typename }"})).status_code == 429


async def test_apollo_batch_http_link_gets_its_answers(batching: Served) -> None:
    for mode in ("batch", "apq-batch"):
        outcome = run_node("apollo_links.mjs", batching.http_url, mode, STAFF_TOKEN)
        assert isinstance(outcome, dict)
        assert outcome["results"] == [
            {
                "products": {
                    "__typename": "ProductConnection",
                    "totalCount": 0 if mode == "batch" else 1,
                }
            },
            {
                "products": {
                    "__typename": "ProductConnection",
                    "totalCount": 0 if mode == "batch" else 1,
                }
            },
            {"__typename": "Query"},
        ], outcome
        assert outcome["created"] == {"createProduct": {"__typename": "CreateProductSuccess"}}, (
            outcome
        )
        assert outcome["after"]["products"]["totalCount"] == (1 if mode == "batch" else 2)
        # The three queries went together, as one array.
        first = outcome["sent"][0]
        assert len(first["batch"]) == 3, outcome["sent"]
        if mode == "apq-batch":
            # Hash-only first (not found), then each text was sent again with its hash.
            assert not any(operation["hasQuery"] for operation in first["batch"])
            assert any(
                operation.get("hasQuery")
                for entry in outcome["sent"][1:]
                for operation in entry.get("batch", [entry])
            )


async def test_a_batch_as_a_whole_has_a_deadline(tmp_path: Path, http: httpx.AsyncClient) -> None:
    # Each createProduct waits 3 s for the slow read model: each is stopped at its own
    # deadline (0.5 s), and the batch at its own (twice that): what had not started by then
    # is answered in its place, unapplied, instead of running on for 0.5 s each.
    settings = sqlite_settings(tmp_path, execution_timeout=0.5, max_batch=5)
    with serve(settings, extra_projections=[SLOW_READ_MODEL]) as slow:
        batch = [{"query": CREATE, "variables": {"sku": f"ANV-{n}"}} for n in range(4)]
        started = time.monotonic()
        response = await send(slow, http, [*batch, {"query": COUNT}])
        took = time.monotonic() - started
    assert response.status_code == 200, response.text
    answers = response.json()
    assert len(answers) == 5
    errors = [answer["errors"][0] for answer in answers]
    assert {error["extensions"]["code"] for error in errors} == {"EXECUTION_TIMEOUT"}
    assert errors[0]["extensions"]["seconds"] == 0.5
    for error in errors[2:]:
        assert "was not started" in error["message"], error
        assert error["extensions"]["seconds"] == 1.0
    assert took < 1.8, f"the batch took {took:.1f} s"
