"""A small GraphQL client for tests: plain HTTP, so tests see what any client sees."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from handlers.access import Identity, Role
from orderdesk.tokens import Tokens
from persistence.tables import event_log
from tests.served import Served

JSON = dict[str, Any]
TEST_SECRET = "test-secret-for-the-test-suite-only-0123456789"
TOKENS = Tokens(TEST_SECRET)
STAFF_TOKEN = TOKENS.issue(Identity("staff-1", Role.STAFF))


class GraphQLClient:
    """Speaks as staff unless made `as_customer(token)` or `anonymous()`."""

    def __init__(
        self, http: httpx.AsyncClient, served: Served, token: str | None = STAFF_TOKEN
    ) -> None:
        self.http = http
        self.served = served
        self.token = token

    def as_customer(self, token: str) -> GraphQLClient:
        return GraphQLClient(self.http, self.served, token)

    def anonymous(self) -> GraphQLClient:
        return GraphQLClient(self.http, self.served, None)

    async def post(
        self, query: str, variables: JSON | None = None, *, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        body: JSON = {"query": query}
        if variables is not None:
            body["variables"] = variables
        sent = dict(headers or {})
        if self.token is not None:
            sent.setdefault("Authorization", f"Bearer {self.token}")
        return await self.http.post(self.served.http_url, json=body, headers=sent)

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
