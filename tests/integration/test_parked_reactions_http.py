"""A reaction handler that raises, in a served app: it is retried, then parked with its
error, while the other handlers of the same events go on; /health/ready says degraded (and
still 200: the process answers every request right), /metrics counts its failures and shows
it parked, and a retry resumes it from the event it stopped at."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from domain.customers import CustomerRegistered
from handlers.reactions import Committed, committed
from mediator import Context, Registry
from orderdesk.bootstrap import bootstrap
from orderdesk.settings import Settings
from tests.databases import sqlite_settings
from tests.graphql_client import GraphQLClient
from tests.served import Served, serve
from tests.ws_client import register


class Reactions:
    def __init__(self) -> None:
        self.recorded: list[str] = []
        self.broken_calls: list[str] = []
        self.broken = True

    async def record(self, notification: Committed[CustomerRegistered], ctx: Context) -> None:
        self.recorded.append(notification.event.email)

    async def fail(self, notification: Committed[CustomerRegistered], ctx: Context) -> None:
        self.broken_calls.append(notification.event.email)
        if self.broken:
            raise ConnectionRefusedError("the partner's system is down")

    def subscribe(self, registry: Registry) -> None:
        registry.subscribe(committed(CustomerRegistered), self.record, name="test.recorder")
        registry.subscribe(committed(CustomerRegistered), self.fail, name="test.broken")


@pytest.fixture
def reactions() -> Reactions:
    return Reactions()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return sqlite_settings(tmp_path, reaction_max_attempts=3, reaction_retry_delay=0.02)


@pytest.fixture
def served(settings: Settings, reactions: Reactions) -> Iterator[Served]:
    with serve(settings, extra_reactions=[reactions.subscribe]) as running:
        yield running


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < within, "not within the time allowed"
        await asyncio.sleep(0.02)


def metric(text: str, name: str, handler: str) -> float:
    found = re.search(rf'^{name}\{{handler="{re.escape(handler)}"\}} (\S+)$', text, re.M)
    assert found is not None, f"{name} for {handler} is not at /metrics"
    return float(found.group(1))


async def test_a_raising_handler_is_parked_while_the_others_go_on(
    served: Served, client: GraphQLClient, reactions: Reactions
) -> None:
    await register(client, "Ada")
    await until(lambda: reactions.recorded == ["ada@example.com"])
    await until(lambda: bool(parked(served)))
    status = {s.name: s for s in served.services.reactor.status()}
    assert status["test.broken"].parked_error is not None
    assert (
        "ConnectionRefusedError: the partner's system is down" in status["test.broken"].parked_error
    )
    assert reactions.broken_calls == ["ada@example.com"] * 3, "retried, then parked"

    # The others go on: a second registration reaches the recorder, not the parked one.
    await register(client, "Grace")
    await until(lambda: reactions.recorded == ["ada@example.com", "grace@example.com"])
    assert reactions.broken_calls == ["ada@example.com"] * 3

    base = served.http_url.removesuffix("/graphql")
    ready = await client.http.get(f"{base}/health/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "degraded"
    assert body["reactionsParked"] == ["test.broken"]
    assert body["projectionsParked"] == []
    scraped = (await client.http.get(f"{base}/metrics")).text
    assert metric(scraped, "orderdesk_reaction_parked", "test.broken") == 1
    assert metric(scraped, "orderdesk_reaction_parked", "test.recorder") == 0
    assert metric(scraped, "orderdesk_reaction_failures_total", "test.broken") == 3
    assert metric(scraped, "orderdesk_reaction_delay_seconds_count", "test.recorder") == 2

    # Mended, and retried: it gets the event it stopped at, then the one it missed, once each.
    reactions.broken = False
    # As `orderdesk reactions retry test.broken` does: on the database, from another process.
    outside = bootstrap(served.settings, extra_reactions=[Reactions().subscribe])
    try:
        assert await outside.reactor.retry(["test.broken"]) == ["test.broken"]
    finally:
        await outside.stop()
    await until(lambda: reactions.broken_calls[3:] == ["ada@example.com", "grace@example.com"])
    await until(lambda: not parked(served))
    ready = await client.http.get(f"{base}/health/ready")
    assert ready.json()["status"] == "ok"
    await asyncio.sleep(0.3)
    assert reactions.broken_calls[3:] == ["ada@example.com", "grace@example.com"]
    assert reactions.recorded == ["ada@example.com", "grace@example.com"]


def parked(served: Served) -> list[str]:
    return [s.name for s in served.services.reactor.status() if s.parked_error]
