"""A database that stops answering (connections open and silent) fails requests within the
database timeout, as SERVICE_UNAVAILABLE with HTTP 503, and the readiness probe answers
within a second; once the database answers again, so does the service."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from orderdesk.settings import Settings
from tests.databases import postgres_database_url
from tests.frozen_proxy import frozen_proxy
from tests.graphql_client import TEST_SECRET, GraphQLClient
from tests.served import serve
from tests.ws_client import new_product

PRODUCT = "query($id: ID!) { product(id: $id) { id stock } }"


async def test_a_frozen_database_is_answered_503_in_time_and_the_service_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with postgres_database_url() as url:
        parsed = make_url(url)
        with frozen_proxy(parsed.host or "127.0.0.1", parsed.port or 5432) as proxy:
            proxied = parsed.set(host="127.0.0.1", port=proxy.port)
            settings = Settings(
                database_url=proxied.render_as_string(hide_password=False),
                jwt_secret=SecretStr(TEST_SECRET),
                poll_interval=0.2,
                database_timeout=1.0,
                query_cache=False,
            )
            with serve(settings) as served:
                async with httpx.AsyncClient(timeout=30) as http:
                    client = GraphQLClient(http, served)
                    product = await new_product(client, "ANV-1")
                    ready_url = served.http_url.replace("/graphql", "/health/ready")
                    caplog.set_level(logging.WARNING)

                    proxy.freeze()
                    loop = asyncio.get_running_loop()
                    started = loop.time()
                    response = await client.post(PRODUCT, {"id": product})
                    assert loop.time() - started < 3.5
                    assert response.status_code == 503
                    assert response.headers["retry-after"] == "1"
                    (error,) = response.json()["errors"]
                    assert error["extensions"] == {"code": "SERVICE_UNAVAILABLE"}
                    assert "SELECT" not in error["message"]

                    started = loop.time()
                    ready = await http.get(ready_url)
                    assert loop.time() - started < 1.8
                    assert ready.status_code == 503

                    proxy.thaw()
                    for _ in range(100):  # the pool drops the connections that timed out
                        if (await client.post(PRODUCT, {"id": product})).status_code == 200:
                            break
                        await asyncio.sleep(0.2)
                    shown = await client.execute(PRODUCT, {"id": product})
                    assert shown["product"]["id"] == product
    assert not [r for r in caplog.records if "internal error" in r.getMessage()]
