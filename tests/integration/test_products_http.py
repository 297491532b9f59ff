"""The product catalog through the real HTTP endpoint, on a real SQLite database."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from handlers.paging import encode_cursor
from tests.error_fields import error_fields
from tests.graphql_client import JSON, GraphQLClient

PRODUCT_FIELDS = "id sku name description price { amount currency } stock version createdAt"
# Each mutation's own errors: its result union lists no others.
CREATE_ERRORS = error_fields("ValidationError")
RESULT = error_fields("ValidationError", "NotFoundError", "ConflictError")
DELETE_ERRORS = error_fields("NotFoundError", "ConflictError")
CREATE = f"""mutation($input: CreateProductInput!) {{
    createProduct(input: $input) {{
        {CREATE_ERRORS}
        ... on CreateProductSuccess {{ product {{ {PRODUCT_FIELDS} }} }}
    }}
}}"""
UPDATE = f"""mutation($input: UpdateProductInput!) {{
    updateProduct(input: $input) {{
        {RESULT}
        ... on UpdateProductSuccess {{ product {{ {PRODUCT_FIELDS} }} }}
    }}
}}"""
RESTOCK = f"""mutation($input: RestockProductInput!) {{
    restockProduct(input: $input) {{
        {RESULT}
        ... on RestockProductSuccess {{ product {{ {PRODUCT_FIELDS} }} }}
    }}
}}"""
DELETE = f"""mutation($input: DeleteProductInput!) {{
    deleteProduct(input: $input) {{ {DELETE_ERRORS} ... on DeleteProductSuccess {{ deletedId }} }}
}}"""
PRODUCT = f"query($id: ID!) {{ product(id: $id) {{ {PRODUCT_FIELDS} }} }}"
NODE = "query($id: ID!) { node(id: $id) { __typename id ... on Product { sku } } }"
PRODUCTS = """query($first: Int!, $after: String, $search: String, $inStock: Boolean,
                    $sort: ProductSort!) {
    products(first: $first, after: $after, search: $search, inStock: $inStock, sort: $sort) {
        totalCount
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
        edges { cursor node { sku price { amount } stock } }
    }
}"""


async def create(client: GraphQLClient, **fields: Any) -> JSON:
    values: JSON = {"sku": "ANV-1", "name": "Anvil", "price": "19.50", "stock": 3}
    values.update(fields)
    result: JSON = (await client.execute(CREATE, {"input": values}))["createProduct"]
    assert result["__typename"] == "CreateProductSuccess", result
    product: JSON = result["product"]
    return product


async def test_a_created_product_is_readable_at_once(client: GraphQLClient) -> None:
    product = await create(client, description="Heavy.")
    assert product["sku"] == "ANV-1"
    assert product["price"] == {"amount": "19.50", "currency": "USD"}
    assert (product["stock"], product["version"]) == (3, 1)
    assert product["createdAt"].endswith("+00:00")

    read = await client.execute(PRODUCT, {"id": product["id"]})
    assert read["product"] == product
    node = await client.execute(NODE, {"id": product["id"]})
    assert node["node"] == {"__typename": "Product", "id": product["id"], "sku": "ANV-1"}
    listed = await client.execute(PRODUCTS, {"first": 10, "sort": "NAME_ASC"})
    assert [e["node"]["sku"] for e in listed["products"]["edges"]] == ["ANV-1"]


async def test_update_restock_and_delete_with_versions(client: GraphQLClient) -> None:
    product = await create(client)
    updated = await client.execute(
        UPDATE, {"input": {"id": product["id"], "expectedVersion": 1, "price": "25"}}
    )
    assert updated["updateProduct"]["product"]["price"]["amount"] == "25.00"
    assert updated["updateProduct"]["product"]["version"] == 2

    restocked = await client.execute(
        RESTOCK, {"input": {"id": product["id"], "quantity": 7, "expectedVersion": 2}}
    )
    assert restocked["restockProduct"]["product"]["stock"] == 10

    deleted = await client.execute(DELETE, {"input": {"id": product["id"], "expectedVersion": 3}})
    assert deleted["deleteProduct"] == {
        "__typename": "DeleteProductSuccess",
        "deletedId": product["id"],
    }
    assert (await client.execute(PRODUCT, {"id": product["id"]}))["product"] is None
    assert (await client.execute(NODE, {"id": product["id"]}))["node"] is None
    assert (await client.execute(PRODUCTS, {"first": 5, "sort": "NEWEST"}))["products"][
        "totalCount"
    ] == 0
    assert await client.event_count() == 4


async def test_invalid_input_reports_every_field_and_writes_nothing(
    client: GraphQLClient,
) -> None:
    result = (
        await client.execute(
            CREATE,
            {
                "input": {
                    "sku": "has spaces",
                    "name": " ",
                    "price": "-1",
                    "currency": "dollars",
                    "stock": -5,
                }
            },
        )
    )["createProduct"]
    assert result["__typename"] == "ValidationError"
    assert {tuple(f["path"]) for f in result["fields"]} == {
        ("sku",),
        ("name",),
        ("price",),
        ("currency",),
        ("stock",),
    }
    assert await client.event_count() == 0


async def test_a_duplicate_sku_is_refused(client: GraphQLClient) -> None:
    await create(client)
    result = (await client.execute(CREATE, {"input": {"sku": "ANV-1", "name": "x", "price": "1"}}))[
        "createProduct"
    ]
    assert result["__typename"] == "ValidationError"
    assert result["fields"] == [{"path": ["sku"], "message": "is already used by another product"}]
    assert await client.event_count() == 1


async def test_concurrent_creates_of_one_sku_make_one_product(client: GraphQLClient) -> None:
    results = await asyncio.gather(
        *(
            client.execute(CREATE, {"input": {"sku": "RACE", "name": f"n{i}", "price": "1"}})
            for i in range(8)
        )
    )
    kinds = sorted(r["createProduct"]["__typename"] for r in results)
    assert kinds == ["CreateProductSuccess"] + ["ValidationError"] * 7
    assert await client.event_count() == 1


async def test_a_stale_version_is_a_conflict_and_writes_nothing(client: GraphQLClient) -> None:
    product = await create(client)
    await client.execute(RESTOCK, {"input": {"id": product["id"], "quantity": 1}})
    result = (
        await client.execute(
            UPDATE, {"input": {"id": product["id"], "expectedVersion": 1, "name": "Old"}}
        )
    )["updateProduct"]
    assert result["__typename"] == "ConflictError"
    assert (result["expectedVersion"], result["actualVersion"]) == (1, 2)
    assert (await client.execute(PRODUCT, {"id": product["id"]}))["product"]["name"] == "Anvil"
    assert await client.event_count() == 2


@pytest.mark.parametrize(
    "product_id",
    [
        "UHJvZHVjdDpub3BlCg==",  # Product:nope — well-formed, no such product
        "Q3VzdG9tZXI6MQ==",  # Customer:1 — another type's id
    ],
)
async def test_unknown_ids_are_not_found(client: GraphQLClient, product_id: str) -> None:
    for mutation, name, extra in (
        (UPDATE, "updateProduct", {"name": "x"}),
        (RESTOCK, "restockProduct", {"quantity": 1}),
        (DELETE, "deleteProduct", {}),
    ):
        result = (await client.execute(mutation, {"input": {"id": product_id, **extra}}))[name]
        assert result["__typename"] == "NotFoundError", result
    assert (await client.execute(PRODUCT, {"id": product_id}))["product"] is None
    assert await client.event_count() == 0


async def test_a_malformed_global_id_is_bad_user_input(client: GraphQLClient) -> None:
    response = await client.post(PRODUCT, {"id": "not base64!"})
    errors = response.json()["errors"]
    assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert await client.event_count() == 0


async def test_non_positive_restock_is_refused(client: GraphQLClient) -> None:
    product = await create(client)
    for quantity in (0, -3):
        result = (
            await client.execute(RESTOCK, {"input": {"id": product["id"], "quantity": quantity}})
        )["restockProduct"]
        assert result["__typename"] == "ValidationError"
        assert result["fields"][0]["path"] == ["quantity"]
    assert await client.event_count() == 1


async def seed_catalog(client: GraphQLClient) -> None:
    for sku, name, price, stock in [
        ("B-1", "Bolt", "0.25", 100),
        ("A-2", "Anvil", "99.00", 0),
        ("H-3", "Hammer", "12.50", 4),
        ("N-4", "Nail", "0.10", 0),
        ("S-5", "Saw", "30.00", 2),
    ]:
        await create(client, sku=sku, name=name, price=price, stock=stock)


async def walk(client: GraphQLClient, page_size: int, **arguments: Any) -> list[str]:
    skus: list[str] = []
    after = None
    while True:
        page = (await client.execute(PRODUCTS, {"first": page_size, "after": after, **arguments}))[
            "products"
        ]
        skus += [edge["node"]["sku"] for edge in page["edges"]]
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        if not page["pageInfo"]["hasNextPage"]:
            return skus
        after = page["pageInfo"]["endCursor"]
        assert after == page["edges"][-1]["cursor"]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("NAME_ASC", ["A-2", "B-1", "H-3", "N-4", "S-5"]),
        ("PRICE_ASC", ["N-4", "B-1", "H-3", "S-5", "A-2"]),
        ("PRICE_DESC", ["A-2", "S-5", "H-3", "B-1", "N-4"]),
        ("NEWEST", ["S-5", "N-4", "H-3", "A-2", "B-1"]),
    ],
)
async def test_every_sort_pages_through_each_product_once(
    client: GraphQLClient, sort: str, expected: list[str]
) -> None:
    await seed_catalog(client)
    for page_size in (1, 2, 5):
        assert await walk(client, page_size, sort=sort) == expected


async def test_ties_in_the_sort_key_page_without_loss_or_repeat(client: GraphQLClient) -> None:
    skus = [f"T-{n}" for n in range(10)]
    for sku in skus:
        await create(client, sku=sku, name="Same", price="5")
    for sort in ("NAME_ASC", "PRICE_ASC", "PRICE_DESC"):
        walked = await walk(client, 3, sort=sort)
        assert sorted(walked) == skus
        assert walked == await walk(client, 4, sort=sort)


async def test_search_and_stock_filters_with_total_count(client: GraphQLClient) -> None:
    await seed_catalog(client)
    in_stock = (await client.execute(PRODUCTS, {"first": 2, "inStock": True, "sort": "NAME_ASC"}))[
        "products"
    ]
    assert in_stock["totalCount"] == 3
    assert [e["node"]["sku"] for e in in_stock["edges"]] == ["B-1", "H-3"]
    assert await walk(client, 2, inStock=False, sort="NAME_ASC") == ["A-2", "N-4"]
    assert await walk(client, 2, search="AN", sort="NAME_ASC") == ["A-2"]
    assert await walk(client, 2, search="n-4", sort="NAME_ASC") == ["N-4"]
    # LIKE wildcards in a search are taken literally.
    assert await walk(client, 2, search="%", sort="NAME_ASC") == []


@pytest.mark.parametrize("first", [101, -1])
async def test_page_size_beyond_the_cap_is_a_clear_error(client: GraphQLClient, first: int) -> None:
    response = await client.post(PRODUCTS, {"first": first, "sort": "NAME_ASC"})
    assert response.status_code == 200
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "between 0 and 100" in error["message"]


async def test_a_cursor_from_another_sort_is_refused(client: GraphQLClient) -> None:
    await seed_catalog(client)
    page = (await client.execute(PRODUCTS, {"first": 1, "sort": "NAME_ASC"}))["products"]
    for after, sort in ((page["pageInfo"]["endCursor"], "PRICE_ASC"), ("garbage", "NAME_ASC")):
        response = await client.post(PRODUCTS, {"first": 1, "after": after, "sort": sort})
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert error["extensions"]["fields"][0]["path"] == ["after"]


@pytest.mark.parametrize(
    ("sort", "key"),
    [
        ("PRICE_ASC", ["NaN", "x"]),
        ("PRICE_ASC", ["Infinity", "x"]),
        ("PRICE_DESC", ["1e30", "x"]),
        ("PRICE_ASC", ["1.234567", "x"]),
        ("NEWEST", [10**20]),
        ("NEWEST", [-1]),
    ],
)
async def test_forged_cursors_are_bad_user_input(
    client: GraphQLClient, sort: str, key: list[str | int]
) -> None:
    forged = encode_cursor(sort, key)
    response = await client.anonymous().post(PRODUCTS, {"first": 1, "after": forged, "sort": sort})
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", response.text


async def test_an_overlong_or_deeply_nested_cursor_is_bad_user_input(client: GraphQLClient) -> None:
    deep = base64.urlsafe_b64encode(b"[" * 12_000).decode()
    for after in (deep, "A" * 5_000):
        response = await client.post(PRODUCTS, {"first": 1, "after": after, "sort": "NEWEST"})
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
