"""A small GraphQL client for tests: plain HTTP, so tests see what any client sees."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from persistence.tables import event_log
from tests.served import Served

JSON = dict[str, Any]


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient, served: Served) -> None:
        self.http = http
        self.served = served

    async def post(
        self, query: str, variables: JSON | None = None, *, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        body: JSON = {"query": query}
        if variables is not None:
            body["variables"] = variables
        return await self.http.post(self.served.http_url, json=body, headers=headers)

    async def execute(self, query: str, variables: JSON | None = None) -> JSON:
        """Run an operation that must succeed without GraphQL errors; return its data."""
        response = await self.post(query, variables)
        assert response.status_code == 200, response.text
        payload: JSON = response.json()
        assert "errors" not in payload, payload["errors"]
        data: JSON = payload["data"]
        return data

    async def event_count(self) -> int:
        """How many events the log holds: what a refused input must leave unchanged."""
        engine = create_async_engine(self.served.settings.database_url)
        try:
            async with engine.connect() as connection:
                return int(
                    (await connection.scalar(select(func.count()).select_from(event_log))) or 0
                )
        finally:
            await engine.dispose()
