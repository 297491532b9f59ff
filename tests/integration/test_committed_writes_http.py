"""A committed write is always answered as one: when reading its result back fails, the
mutation says READ_MODEL_LAGGING with the entity's id and version, never an internal error
that a client would retry (adding the stock twice)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.databases import sqlite_settings
from tests.graphql_client import GraphQLClient
from tests.read_side import catalog_reads_failing
from tests.served import Served, serve
from tests.ws_client import new_product

RESTOCK = """mutation($id: ID!) { restockProduct(input: {id: $id, quantity: 5}) {
    __typename ... on RestockProductSuccess { product { id stock version } } } }"""
STOCK = "query($id: ID!) { product(id: $id) { stock version } }"


@pytest.fixture
def uncached(tmp_path: Path) -> Iterator[Served]:
    # Without the query cache, every read back reaches the read models' engine.
    settings = sqlite_settings(
        tmp_path,
        query_cache=False,
    )
    with serve(settings) as running:
        yield running


async def test_a_write_whose_result_cannot_be_read_back_is_answered_as_committed(
    uncached: Served,
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        client = GraphQLClient(http, uncached)
        product = await new_product(client, "ANV-1", stock=1)
        before = await client.event_count()
        with catalog_reads_failing(uncached):
            body = (await client.post(RESTOCK, {"id": product})).json()
        assert body["data"] is None
        (error,) = body["errors"]
        assert error["extensions"] == {"code": "READ_MODEL_LAGGING", "id": product, "version": 2}
        assert "saved at version 2" in error["message"]
        assert await client.event_count() == before + 1
        # Read again, it shows the one restock: nothing to retry.
        shown = await client.execute(STOCK, {"id": product})
        assert shown["product"] == {"stock": 6, "version": 2}
