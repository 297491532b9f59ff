"""The cost estimate of documents against the real schema, its refusal before execution, and
the schema check that leaves no list field without a bound."""

from __future__ import annotations

import time
from typing import Any

import graphql
import pytest
from graphql import parse

from domain.orders import MAX_LINES
from handlers.paging import DEFAULT_PAGE_SIZE
from schema.cost import MAX_FIELD_ISSUES, MAX_INPUT_DEPTH, QueryCosts, UnboundedListField
from schema.root import build_schema

COSTS = QueryCosts(build_schema()._schema)

# A node of a page: the `node` field and its `id` (each field costs 1).
NODE_ID = 2


def cost(document: str, variables: dict[str, Any] | None = None, name: str | None = None) -> int:
    return COSTS.estimate(parse(document), name, variables).cost


# ---------------------------------------------------------------- page sizes


def test_a_literal_first_multiplies_the_edges_of_its_connection() -> None:
    # products + edges + 7 x (node + id)
    assert cost("{ products(first: 7) { edges { node { id } } } }") == 1 + 1 + 7 * NODE_ID


def test_what_a_connection_holds_once_is_not_multiplied() -> None:
    document = "{ products(first: 7) { totalCount pageInfo { hasNextPage } edges { cursor } } }"
    # products, totalCount, pageInfo + hasNextPage, edges + 7 cursors
    assert cost(document) == 1 + 1 + 2 + (1 + 7)


def test_without_first_a_connection_costs_the_default_page() -> None:
    assert cost("{ products { edges { node { id } } } }") == 2 + DEFAULT_PAGE_SIZE * NODE_ID
    assert cost("{ orders { edges { node { id } } } }") == 2 + DEFAULT_PAGE_SIZE * NODE_ID


def test_a_first_from_a_variable_is_the_request_s_value_and_marks_the_estimate() -> None:
    document = parse("query($n: Int!) { products(first: $n) { edges { node { id } } } }")
    three = COSTS.estimate(document, None, {"n": 3})
    assert three.cost == 2 + 3 * NODE_ID
    assert three.depends_on_variables
    assert COSTS.estimate(document, None, {"n": 90}).cost == 2 + 90 * NODE_ID
    literal = COSTS.estimate(parse("{ products(first: 3) { edges { node { id } } } }"))
    assert not literal.depends_on_variables


def test_a_first_given_as_an_integral_float_costs_what_graphql_core_coerces_it_to() -> None:
    # {"first": 100.0} is coerced to the Int 100: it must not cost the default page.
    query = "query($n: Int) { products(first: $n) { edges { node { id } } } }"
    assert cost(query, {"n": 90.0}) == cost(query, {"n": 90})
    assert cost(query, {"n": 2.5}) == cost(query, {"n": DEFAULT_PAGE_SIZE})


def test_a_missing_variable_costs_its_default_then_the_argument_s_default() -> None:
    with_default = "query($n: Int = 4) { products(first: $n) { edges { node { id } } } }"
    assert cost(with_default) == 2 + 4 * NODE_ID
    assert cost(with_default, {"n": 6}) == 2 + 6 * NODE_ID
    without = "query($n: Int) { products(first: $n) { edges { node { id } } } }"
    assert cost(without) == 2 + DEFAULT_PAGE_SIZE * NODE_ID
    # Not an int: coercing the variables refuses it before execution; it costs the default.
    assert cost(without, {"n": "lots"}) == 2 + DEFAULT_PAGE_SIZE * NODE_ID


def test_nested_connections_multiply() -> None:
    document = """{ customers(first: 10) { edges { node {
        orders(first: 5) { edges { node { id } } }
    } } } }"""
    orders = 1 + 1 + 5 * NODE_ID
    assert cost(document) == 1 + 1 + 10 * (1 + orders)


# ---------------------------------------------------------------- lists, aliases, fragments


def test_an_order_s_lines_count_as_many_as_an_order_may_have() -> None:
    document = '{ order(id: "T3JkZXI6MQ==") { lines { productName quantity } } }'
    assert cost(document) == 1 + 1 + MAX_LINES * 2


def test_lines_under_a_page_of_orders_multiply_by_both() -> None:
    document = "{ orders(first: 20) { edges { node { lines { productName } } } } }"
    lines = 1 + MAX_LINES * 1
    assert cost(document) == 1 + 1 + 20 * (1 + lines)


def test_aliases_cost_each_time() -> None:
    one = "orders(first: 100) { edges { node { lines { productName } } } }"
    assert cost(f"{{ a: {one} b: {one} c: {one} }}") == 3 * cost(f"{{ {one} }}")


def test_the_reported_amplification_costs_far_above_the_default_limit() -> None:
    inner = "orders(first: 100) { edges { node { lines { productName } } } }"
    one = f"me {{ orders(first: 100) {{ edges {{ node {{ customer {{ {inner} }} }} }} }} }}"
    document = "{ " + " ".join(f"a{i}: {one}" for i in range(5)) + " }"
    lines = 1 + MAX_LINES
    inner_cost = 1 + 1 + 100 * (1 + lines)
    per_alias = 1 + 1 + 1 + 100 * (1 + 1 + inner_cost)
    assert cost(document) == 5 * per_alias
    assert cost(document) > 50 * 50_000


def test_named_and_inline_fragments_count_what_they_select() -> None:
    spread = """fragment Page on ProductConnection { edges { node { ...Named } } }
        fragment Named on Product { id name }
        { products(first: 4) { ...Page } }"""
    # The fragment on the connection keeps the page size of the field that returned it.
    assert cost(spread) == 1 + 1 + 4 * (1 + 2)
    inline = "{ products(first: 4) { ... on ProductConnection { edges { node { id } } } } }"
    assert cost(inline) == 1 + 1 + 4 * NODE_ID


def test_an_abstract_field_costs_its_costliest_possible_type() -> None:
    document = """{ node(id: "T3JkZXI6MQ==") {
        id
        ... on Order { lines { quantity } }
        ... on Customer { orders(first: 3) { edges { node { id } } } }
    } }"""
    as_order = 1 + (1 + MAX_LINES)
    as_customer = 1 + (1 + 1 + 3 * NODE_ID)
    assert as_order > as_customer
    assert cost(document) == 1 + as_order


def test_a_mutation_result_costs_its_costliest_member() -> None:
    document = """mutation { placeOrder(input: {
            lines: [], shippingAddress: {street: "", city: "", postalCode: "", country: ""}
        }) {
        __typename
        ... on ValidationError { fields { path message } }
        ... on PlaceOrderSuccess { order { lines { quantity } } }
    } }"""
    fields = 1 + MAX_FIELD_ISSUES * ((1 + MAX_INPUT_DEPTH) + 1)
    assert cost(document) == 1 + 1 + fields


def test_the_operation_asked_for_is_the_one_estimated() -> None:
    document = """query Small { products(first: 1) { edges { node { id } } } }
        query Large { products(first: 50) { edges { node { id } } } }"""
    assert cost(document, name="Small") == 2 + 1 * NODE_ID
    assert cost(document, name="Large") == 2 + 50 * NODE_ID
    assert cost(document, name="Missing") == 0


def test_fragments_spread_twice_at_every_level_are_priced_once_each() -> None:
    levels = 40
    fragments = ["fragment F0 on Product { id }"] + [
        f"fragment F{n} on Product {{ ...F{n - 1} ...F{n - 1} }}" for n in range(1, levels)
    ]
    document = parse(
        " ".join(fragments)
        + f" {{ products(first: 1) {{ edges {{ node {{ ...F{levels - 1} }} }} }} }}"
    )
    started = time.perf_counter()
    estimate = COSTS.estimate(document)
    assert time.perf_counter() - started < 0.5
    assert estimate.cost == 1 + 1 + (1 + 2 ** (levels - 1))


# ---------------------------------------------------------------- every list has a bound


def test_the_schema_check_refuses_a_list_field_without_a_bound() -> None:
    schema = graphql.build_schema("type Query { tags: [String!]! }")
    with pytest.raises(UnboundedListField, match=r"Query\.tags"):
        QueryCosts(schema)
    assert QueryCosts(schema, {"Query.tags": 5}).estimate(parse("{ tags }")).cost == 1 + 5


def test_the_schema_check_refuses_a_connection_without_a_default_first() -> None:
    schema = graphql.build_schema("""
        type Query { things(first: Int): ThingConnection! }
        type ThingConnection { edges: [ThingEdge!]! }
        type ThingEdge { cursor: String! }
    """)
    with pytest.raises(UnboundedListField, match=r"Query\.things"):
        QueryCosts(schema, {})


def test_the_schema_check_refuses_a_bound_that_names_no_list() -> None:
    schema = graphql.build_schema("type Query { name: String }")
    with pytest.raises(UnboundedListField, match=r"Query\.name"):
        QueryCosts(schema, {"Query.name": 3})


# ---------------------------------------------------------------- refused before execution

EXPENSIVE = "{ a: products(first: 100) { edges { node { id name } } } b: __typename }"


async def test_a_document_above_the_limit_is_refused_with_its_cost() -> None:
    schema = build_schema(max_cost=100)
    for _ in range(2):  # the second estimate comes from the cache
        result = await schema.execute(EXPENSIVE)
        assert result.data is None
        assert result.errors is not None
        [error] = result.errors
        assert error.extensions == {"code": "QUERY_TOO_COMPLEX", "cost": 303, "maxCost": 100}
        assert "303" in error.message


async def test_no_limit_is_today_s_behaviour() -> None:
    result = await build_schema().execute(EXPENSIVE)
    # It executes (and fails for want of a request context, which these tests do not give).
    assert not any("QUERY_TOO_COMPLEX" in str(e.extensions) for e in result.errors or [])


async def test_the_same_text_is_estimated_with_each_request_s_variables() -> None:
    schema = build_schema(max_cost=100)
    document = "query($n: Int!) { products(first: $n) { edges { node { id } } } }"

    def refused(result: Any) -> bool:
        return any(
            (e.extensions or {}).get("code") == "QUERY_TOO_COMPLEX" for e in result.errors or []
        )

    assert not refused(await schema.execute(document, {"n": 10}))
    assert refused(await schema.execute(document, {"n": 60}))
    assert not refused(await schema.execute(document, {"n": 10}))


async def test_each_operation_of_one_text_is_estimated_apart() -> None:
    schema = build_schema(max_cost=100)
    document = """query Small { products(first: 1) { edges { node { id } } } }
        query Large { products(first: 99) { edges { node { id } } } }"""
    codes = []
    for name in ("Small", "Large", "Small", "Large"):
        result = await schema.execute(document, operation_name=name)
        codes.append([(e.extensions or {}).get("code") for e in result.errors or []])
    assert "QUERY_TOO_COMPLEX" not in codes[0] + codes[2]
    assert codes[1] == codes[3] == ["QUERY_TOO_COMPLEX"]
