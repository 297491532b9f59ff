"""graphql-http's audit of request errors: a document that does not parse or validate (or
whose variables do not coerce) never started executing, so an
application/graphql-response+json client gets 400 and no `data` entry at all; a client that
asks only for application/json keeps `"data": null` with 200, as the spec's compatibility
rules have it."""

from __future__ import annotations

import pytest

from tests.graphql_client import GraphQLClient

GRAPHQL_RESPONSE = "application/graphql-response+json"


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        ("{ products { totalCount ", None, "GRAPHQL_PARSE_FAILED"),
        ("{ products { nonsense } }", None, "GRAPHQL_VALIDATION_FAILED"),
        ("query($first: Int!) { products(first: $first) { totalCount } }", {}, "BAD_USER_INPUT"),
    ],
)
async def test_a_request_error_has_no_data_entry_for_graphql_response_clients(
    client: GraphQLClient, query: str, variables: dict[str, object] | None, code: str
) -> None:
    for accept in (GRAPHQL_RESPONSE, f"{GRAPHQL_RESPONSE}, application/json;q=0.9"):
        strict = await client.post(query, variables, headers={"Accept": accept})
        assert strict.status_code == 400
        assert strict.headers["content-type"].startswith(GRAPHQL_RESPONSE)
        body = strict.json()
        assert "data" not in body, body
        assert body["errors"][0]["extensions"]["code"] == code

    legacy = await client.post(query, variables, headers={"Accept": "application/json"})
    assert legacy.status_code == 200
    assert legacy.headers["content-type"].startswith("application/json")
    assert legacy.json()["data"] is None
    assert legacy.json()["errors"][0]["extensions"]["code"] == code


async def test_an_answer_that_executed_keeps_its_data_entry(client: GraphQLClient) -> None:
    # A field error happens during execution: the data entry stays, as the spec requires.
    response = await client.post(
        '{ product(id: "not-a-global-id") { sku } }', headers={"Accept": GRAPHQL_RESPONSE}
    )
    body = response.json()
    assert "data" in body, body
    assert response.status_code == 200
