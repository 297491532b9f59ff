"""One process applies each projection, the others follow its checkpoint: two apps on one
SQLite file (what two workers of `orderdesk serve` are, save the process), the wake-ups
between them, and the hand-over when the one applying stops, dies or freezes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import create_async_engine

from orderdesk.bootstrap import bootstrap
from orderdesk.settings import Settings
from persistence.reaction_checkpoints import ROW_PREFIX
from persistence.tables import projection_checkpoints
from tests.databases import postgres_database_url, sqlite_settings
from tests.graphql_client import TEST_SECRET, GraphQLClient
from tests.served import Served, serve
from tests.ws_client import new_product, open_socket, place_order, register

PROJECTION_ROWS = projection_checkpoints.c.name.not_like(f"{ROW_PREFIX}%")
POLL = 30.0
"""Long enough that what happens within seconds cannot have come by polling."""


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return sqlite_settings(tmp_path, poll_interval=POLL, query_cache=False)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


@pytest.fixture
def two(settings: Settings) -> Iterator[tuple[Served, Served]]:
    with ExitStack() as stack:
        first = stack.enter_context(serve(settings))
        second = stack.enter_context(serve(settings))
        yield first, second


def leaders(served: Served) -> set[str | None]:
    return {status.leader for status in served.services.projector.status()}


async def stored_leaders(settings: Settings) -> set[str | None]:
    engine = create_async_engine(settings.read_models_url)
    try:
        async with engine.connect() as connection:
            # The projections' rows; the reaction handlers' beside them have leases of their own.
            return set(
                await connection.scalars(
                    select(projection_checkpoints.c.leader).where(PROJECTION_ROWS)
                )
            )
    finally:
        await engine.dispose()


async def set_leader(settings: Settings, leader: str) -> None:
    engine = create_async_engine(settings.read_models_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                update(projection_checkpoints).where(PROJECTION_ROWS).values(leader=leader)
            )
    finally:
        await engine.dispose()


async def until(condition: Callable[[], Awaitable[bool]], within: float) -> float:
    """Seconds until `condition()` holds; fails past `within`."""
    started = time.monotonic()
    while not await condition():
        assert time.monotonic() - started < within, "not within the time allowed"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_one_app_applies_every_projection_and_the_other_follows_promptly(
    two: tuple[Served, Served], settings: Settings, http: httpx.AsyncClient
) -> None:
    leader, follower = two
    (me,) = leaders(leader)
    assert me is not None
    assert await stored_leaders(settings) == {me}
    assert leaders(follower) == {me}

    writer = GraphQLClient(http, follower)
    product = await new_product(writer, "LEASE-1")
    _, token = await register(writer, "Ada")
    customer = writer.as_customer(token)
    async with open_socket(leader.ws_url) as socket_:
        await socket_.init()
        await socket_.subscribe("orders")
        started = time.monotonic()
        placed = [await place_order(customer, product) for _ in range(10)]
        # Each answered with its own write, read back through the other app's projector.
        assert time.monotonic() - started < 5
        for order in placed:
            event = await socket_.next_data("orders", wait=2)
            assert event["order"]["id"] == order["id"]
    assert await stored_leaders(settings) == {me}


async def test_the_follower_takes_over_at_once_when_the_leader_stops(
    settings: Settings, http: httpx.AsyncClient
) -> None:
    with ExitStack() as leading:
        leader = leading.enter_context(serve(settings))
        with serve(settings) as follower:
            (first,) = leaders(leader)
            assert leaders(follower) == {first}
            leading.close()
            # The stopping leader handed its leases back; a write on the follower finds
            # them free and takes them at once, not at its next poll (30 s away).
            writer = GraphQLClient(http, follower)
            started = time.monotonic()
            await new_product(writer, "LEASE-2")
            assert time.monotonic() - started < 1
            (taken,) = leaders(follower)
            assert taken not in (None, first)
            assert await stored_leaders(settings) == {taken}


def _dead_pid() -> int:
    finished = subprocess.run([sys.executable, "-c", "pass"], check=True)
    assert finished.returncode == 0
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


async def test_a_leader_that_died_on_this_host_is_taken_over_within_a_poll(
    tmp_path: Path,
) -> None:
    settings = sqlite_settings(tmp_path, query_cache=False)  # the suite's short poll
    with serve(settings) as served:
        (me,) = leaders(served)
        assert me is not None
        host = me.split(":")[0]  # this host and pid namespace
        dead = f"{host}:{_dead_pid()}:deadbeef"
        await set_leader(settings, dead)

        async def mine_again() -> bool:
            return await stored_leaders(settings) == {me}

        await until(mine_again, within=2)
        assert leaders(served) == {me}


async def test_a_silent_leader_elsewhere_is_taken_over_after_the_lease_timeout(
    tmp_path: Path, http: httpx.AsyncClient
) -> None:
    settings = sqlite_settings(tmp_path, query_cache=False, projection_lease_timeout=1.0)
    frozen = "another-host:1:frozen"
    with serve(settings) as served:
        (me,) = leaders(served)
        await set_leader(settings, frozen)

        async def seen_frozen() -> bool:
            return leaders(served) == {frozen}

        async def mine_again() -> bool:
            return leaders(served) == {me} and await stored_leaders(settings) == {me}

        # Seen at the next poll, then not taken until its beat has stood still a second.
        await until(seen_frozen, within=2)
        waited = await until(mine_again, within=4)
        assert waited > 0.5
        writer = GraphQLClient(http, served)
        await new_product(writer, "LEASE-3")


@pytest.mark.postgres
async def test_rebuilds_beside_a_busy_leader_never_deadlock_on_postgresql() -> None:
    """A rebuild locks its checkpoints, and a leader renews its leases, in one order (by
    name): a rebuild naming them in another order once deadlocked with a renewal."""
    async with postgres_database_url() as url:
        settings = Settings(
            database_url=url,
            poll_interval=0.002,  # renewals all the time
            jwt_secret=SecretStr(TEST_SECRET),
            query_cache=False,
        )
        server = bootstrap(settings)
        await server.start()
        rebuilder = bootstrap(settings)
        try:
            for _ in range(150):
                await rebuilder.projector.rebuild(["product_catalog", "orders"])
                await rebuilder.projector.stop()  # hands the leases back, as the CLI does
        finally:
            await rebuilder.stop()
            await server.stop()
