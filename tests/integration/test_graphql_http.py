"""GraphQL over HTTP as the spec has it: media types, status codes, clear 4xx, limits."""

from __future__ import annotations

import re

import pytest

from tests.graphql_client import GraphQLClient

GRAPHQL_RESPONSE = "application/graphql-response+json"
MODERN = {"Accept": f"{GRAPHQL_RESPONSE}, application/json;q=0.9"}


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        ("{ products { totalCount ", None, "GRAPHQL_PARSE_FAILED"),
        ("{ products { nonsense } }", None, "GRAPHQL_VALIDATION_FAILED"),
        ("query($id: ID!) { product(id: $id) { sku } }", {"id": 5.5}, "BAD_USER_INPUT"),
        ("query($id: ID!) { product(id: $id) { sku } }", {}, "BAD_USER_INPUT"),
    ],
)
async def test_request_errors_are_400_for_graphql_response_clients(
    client: GraphQLClient, query: str, variables: dict[str, object] | None, code: str
) -> None:
    modern = await client.post(query, variables, headers=MODERN)
    assert modern.status_code == 400
    assert modern.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert modern.json()["errors"][0]["extensions"]["code"] == code
    assert "data" not in modern.json() or modern.json()["data"] is None

    legacy = await client.post(query, variables, headers={"Accept": "application/json"})
    assert legacy.status_code == 200
    assert legacy.headers["content-type"].startswith("application/json")
    assert legacy.json()["errors"][0]["extensions"]["code"] == code


async def test_a_successful_query_is_200_in_the_asked_media_type(client: GraphQLClient) -> None:
    response = await client.post("{ products { totalCount } }", headers=MODERN)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE)
    assert response.json() == {"data": {"products": {"totalCount": 0}}}


async def test_malformed_bodies_get_a_json_4xx(client: GraphQLClient) -> None:
    url = client.served.http_url
    not_json = await client.http.post(
        url, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400
    assert not_json.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"

    no_query = await client.http.post(url, json={"variables": {}})
    assert no_query.status_code == 400
    assert "No GraphQL query" in no_query.json()["errors"][0]["message"]

    put = await client.http.put(url, json={"query": "{ __typename }"})
    assert put.status_code == 405


async def test_get_runs_queries_but_never_mutations(client: GraphQLClient) -> None:
    url = client.served.http_url
    query = await client.http.get(url, params={"query": "{ products { totalCount } }"})
    assert query.json() == {"data": {"products": {"totalCount": 0}}}
    mutation = await client.http.get(
        url,
        params={"query": 'mutation { deleteProduct(input: {id: "x"}) { __typename } }'},
    )
    assert mutation.status_code in (400, 405)
    assert await client.event_count() == 0


async def test_an_oversized_body_is_refused_with_413(client: GraphQLClient) -> None:
    limit = client.served.settings.max_body_bytes
    padding = " " * (limit + 1)
    response = await client.post("{ __typename }" + padding)
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_depth_and_alias_limits_hold(client: GraphQLClient) -> None:
    deep = '{ node(id: "x") ' + "{ ... on Product { id " * 12 + "}" * 12 + " }"
    response = await client.post(deep)
    assert "errors" in response.json()
    aliases = "{ " + " ".join(f"a{n}: __typename" for n in range(40)) + " }"
    response = await client.post(aliases, headers=MODERN)
    assert response.status_code == 400
    assert "aliases" in response.json()["errors"][0]["message"].lower()


async def test_request_ids_are_echoed_or_made(client: GraphQLClient) -> None:
    given = await client.post("{ __typename }", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = await client.post("{ __typename }")
    assert len(made.headers["x-request-id"]) == 32
    unsafe = await client.post("{ __typename }", headers={"X-Request-ID": "a b\tc"})
    assert unsafe.headers["x-request-id"] != "a b\tc"


async def test_graphiql_is_served_with_its_assets_and_no_cdn(client: GraphQLClient) -> None:
    page = await client.http.get(client.served.http_url, headers={"Accept": "text/html"})
    assert page.status_code == 200
    scripts = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(scripts) == 7
    base = client.served.http_url.removesuffix("/graphql")
    for asset in scripts:
        assert asset.startswith("/graphiql/static/"), asset
        response = await client.http.get(base + asset)
        assert response.status_code == 200, asset
        assert len(response.content) > (20 if "orderdesk-" in asset else 5_000)


async def test_health_endpoints(client: GraphQLClient) -> None:
    base = client.served.http_url.removesuffix("/graphql")
    assert (await client.http.get(f"{base}/health/live")).json() == {"status": "ok"}
    ready = await client.http.get(f"{base}/health/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ok"


async def test_metrics_count_messages_by_outcome(client: GraphQLClient) -> None:
    await client.post("{ products { totalCount } }")
    await client.post(
        'mutation { createProduct(input: {sku: "bad sku", name: "", price: "1"}) { __typename } }'
    )
    base = client.served.http_url.removesuffix("/graphql")
    text = (await client.http.get(f"{base}/metrics")).text
    assert 'orderdesk_message_seconds_count{message="ListProducts",outcome="ok"} 1.0' in text
    assert 'orderdesk_message_seconds_count{message="CreateProduct",outcome="refused"} 1.0' in text
