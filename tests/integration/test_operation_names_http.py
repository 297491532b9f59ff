"""Which operation of a document runs, told alike over plain HTTP and over an event stream:
a document of several operations must name one in `operationName` (the GraphQL spec's
rule), and a name the document does not have is echoed back only in part."""

from __future__ import annotations

import httpx

from orderdesk.operation_choice import SEVERAL_OPERATIONS
from tests.graphql_client import GraphQLClient
from tests.served import Served

TWO = "query A { __typename } mutation B { __typename }"
MODERN = "application/graphql-response+json"
EVENT_STREAM = {"Accept": "text/event-stream"}


async def test_several_operations_without_a_name_are_refused_over_http(
    client: GraphQLClient,
) -> None:
    legacy = await client.post(TWO, headers={"Accept": "application/json"})
    assert legacy.status_code == 200
    assert legacy.json()["data"] is None
    (error,) = legacy.json()["errors"]
    assert (error["message"], error["extensions"]["code"]) == (SEVERAL_OPERATIONS, "BAD_REQUEST")

    strict = await client.post(TWO, headers={"Accept": MODERN})
    assert strict.status_code == 400
    assert "data" not in strict.json()
    assert strict.json()["errors"][0]["message"] == SEVERAL_OPERATIONS

    # Named, the same document runs the operation named (not the first).
    named = await client.http.post(
        client.served.http_url,
        json={"query": TWO, "operationName": "A"},
        headers={"Accept": MODERN},
    )
    assert named.json() == {"data": {"__typename": "Query"}}


async def test_several_operations_without_a_name_are_refused_over_sse(served: Served) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        refused = await http.post(served.http_url, json={"query": TWO}, headers=EVENT_STREAM)
    assert refused.status_code == 400
    assert refused.headers["content-type"] == "application/json"
    (error,) = refused.json()["errors"]
    assert (error["message"], error["extensions"]["code"]) == (SEVERAL_OPERATIONS, "BAD_REQUEST")


async def test_an_unknown_operation_name_is_echoed_in_part(served: Served) -> None:
    name = "B" * 5000
    body = {"query": "query A { __typename }", "operationName": name}
    async with httpx.AsyncClient(timeout=10) as http:
        answers = [
            await http.post(served.http_url, json=body),
            await http.post(served.http_url, json=body, headers=EVENT_STREAM),
            await http.post(served.http_url, json=[body, body]),
        ]
    for answer in answers[:2]:
        assert answer.status_code == 400, answer.text
        (error,) = answer.json()["errors"]
        message = error["message"]
        assert message.startswith('the document has no operation named "BBBB'), message
        assert message.endswith("(5000 characters)"), message
        assert len(message) < 200, message
    # Batches are off here: the batch is refused before any name is looked at.
    assert name not in answers[2].text
