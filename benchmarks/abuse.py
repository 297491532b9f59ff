"""Whether the served app stays responsive while it is attacked: a probe's latency under each
stall attack against its latency at rest, measured in the same run.

Run: ``python -m benchmarks.abuse`` from the repository root (or ``python benchmarks/abuse.py``),
with ``--duration 5`` (seconds of each attack, and of the probe at rest), ``--only NAME``
(repeatable), ``--slow-connections 2000`` and ``--database-url
postgresql+asyncpg://postgres@127.0.0.1:5432/orderdesk_abuse`` (a database to create, attack
and drop, instead of SQLite). The whole run takes about two and a half minutes.

The app is served as ``orderdesk serve`` serves it (benchmarks/http.py starts it), in a
temporary directory on a SQLite file of its own, with every setting at its default except
ORDERDESK_FORWARDED_ALLOW_IPS=127.0.0.1: as behind a reverse proxy, each client names its
address in X-Forwarded-For, so limits per address apply to the attackers and not to the
probe. The store is seeded through the API by a first server process with rate limits off:
2,000 products, 300 customers, 1,000 orders of 50 lines, and one loyal customer with 40
orders of its own, whose token the customer attacks use; that makes an event log of some
55,000 events, nearly all of them product events, which is what ``productEvents(after:
"0")`` replays. The attacks then run against a fresh process on that database.

The attacks, in the order they run: nested-me and nested-customers (amplifying nested
queries), costly-orders (the heaviest orders page within max_query_cost), replay-one-socket
and replay-many-sockets (subscription replays), slow-headers (half-sent headers), big-ws-frame
and big-http-body (documents that are mostly a comment), bad-tokens and registration-flood,
long-search and deep-variables (oversized inputs). Each runs for ``--duration`` seconds
(slow-headers until header_timeout has passed too) from addresses of its own, over several
connections; the output says what each one sends.

The probe is a process of its own that sends ``product(id) { id name stock }`` one request
after another, at most PROBE_RATE a second, over one keep-alive connection, its
X-Forwarded-For taking turns over PROBE_ADDRESSES addresses (other customers, each well
under the limits per address). It runs at rest first, then through every attack. A probe
request belongs to every period it overlaps, so one that began before a stall and ended
after it counts in full. Between attacks the run waits until the server answers promptly
again and says how long that took: what an attack leaves running, such as a query whose
client has gone, is not measured under the next one.

Reading the output: one row per attack with the probe's p50 and p99 during it, its p99 over
the p50 at rest, the probe requests that failed (anything but the product: a refusal, a
timeout, a dropped connection), and PASS when p99 is at most TARGET times the rest p50 and
no probe request failed, MISS otherwise. Below the table, what each attacker saw: HTTP
statuses with the error codes and result types in their bodies, websocket closes by code
and the protocol's messages, so that a reader can tell which defence answered
(QUERY_TOO_COMPLEX, RATE_LIMITED, REPLAY_TOO_LONG, closes with 4429 or 1009, ...) or that
none did. The machine is shared and the attackers run beside the server on it, so compare
the ratios of one run; a MISS says that the server stalled, the attacker's lines say why.
Only the run's own errors exit non-zero; a missed target does not.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import itertools
import json
import random
import re
import resource
import string
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

# Run as a script, Python puts benchmarks/ first on sys.path, where benchmarks/http.py would
# shadow the standard library's `http` (which httpx imports); the root goes there.
REPO = Path(__file__).resolve().parent.parent
sys.path[0] = str(REPO)

import graphql  # noqa: E402
import httpx  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402
from websockets.asyncio.client import ClientConnection, connect  # noqa: E402
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus  # noqa: E402
from websockets.typing import Subprotocol  # noqa: E402

from benchmarks.http import (  # noqa: E402
    PLACE_ORDER,
    REGISTER_CUSTOMER,
    Mutations,
    Seeded,
    Server,
    Store,
    app_env,
    app_server_argv,
    body_of,
    check_once,
    create_database,
    drop_database,
    fail,
    free_port,
    headers_for,
    order_input,
    percentiles,
    seed_and_report,
    served,
    stop,
    tail,
)
from handlers.access import Identity, Role  # noqa: E402
from orderdesk.settings import Settings  # noqa: E402
from orderdesk.tokens import Tokens  # noqa: E402
from schema.cost import QueryCosts  # noqa: E402
from schema.root import build_schema  # noqa: E402

STORE = Store(products=2_000, customers=300, orders=1_000, lines_per_order=50)
LOYAL_ORDERS = 40  # what `me { orders { customer { orders ... } } }` multiplies by itself
TARGET = 5.0
PROBE = "query Probe($id: ID!) { product(id: $id) { id name stock } }"
PROBE_RATE = 100
PROBE_ADDRESSES = 30  # 200 requests a minute each: under any limit per address meant for people
PROBE_TIMEOUT = 30.0
PROBE_WARMUP = 1.0
ATTACK_TIMEOUT = 60.0
WAIT = 10.0
PROMPT = 0.05  # a /health/live answer this fast, several times running, means settled
SETTLE_LIMIT = 60.0
SETTLE_PAUSE = 1.0
RECONNECT_PAUSE = 0.2
FD_RESERVE = 512  # descriptors kept for everything but the slow connections
FORWARDED = "X-Forwarded-For"
TRANSPORT_WS = Subprotocol("graphql-transport-ws")


def default(name: str) -> float:
    """A setting's default: the attacked server runs with the defaults."""
    return float(Settings.model_fields[name].default)


MAX_QUERY_COST = int(default("max_query_cost"))
MAX_BODY_BYTES = int(default("max_body_bytes"))
MAX_SUBSCRIPTIONS = int(default("max_subscriptions_per_connection"))
MAX_SOCKETS_PER_ADDRESS = int(default("max_sockets_per_address"))
HEADER_TIMEOUT = default("header_timeout")


# ---------------------------------------------------------------- the documents


def nested_me_query(aliases: int) -> str:
    inner = (
        "me { orders(first: 100) { edges { node { customer {"
        " orders(first: 100) { edges { node { lines { productName } } } } } } } } }"
    )
    return "{ " + " ".join(f"a{k}: {inner}" for k in range(aliases)) + " }"


NESTED_ME = nested_me_query(5)
NESTED_CUSTOMERS = (
    "{ customers(first: 100) { edges { node { name email orders(first: 100) { edges { node {"
    " status total { amount currency } lines { quantity"
    " product { id sku name stock price { amount currency } } } } } } } } } }"
)
# placedBefore differs from request to request, as an attacker would vary it, so that no
# answer comes from the query cache.
COSTLY_ORDERS = (
    "query Costly($before: DateTime) { orders(first: @FIRST@, placedBefore: $before) {"
    " edges { node { id status placedAt total { amount currency }"
    " customer { id name email orderCount } lines { productName quantity"
    " unitPrice { amount currency } product { id name sku stock price { amount currency } } }"
    " } } } }"
)
PRODUCT_REPLAY = (
    "subscription Replay($after: String) { productEvents(after: $after) {"
    " position type product { id stock } } }"
)
# An unknown field, so that the server answers each frame at once with a validation error:
# what is measured is reading the frame, not a subscription.
BIG_FRAME_QUERY = "subscription { productEvents { noSuchField } }"
SEARCH = (
    "query Search($search: String) { products(first: 20, search: $search) {"
    " totalCount edges { node { id name } } } }"
)
ME = "{ me { id name } }"


COSTS = QueryCosts(build_schema()._schema)


def estimated_cost(query: str) -> int:
    """The server's own estimate (schema/cost.py), which max_query_cost bounds."""
    return COSTS.estimate(graphql.parse(query)).cost


def heaviest_orders_query() -> tuple[str, int]:
    """The orders page of COSTLY_ORDERS with the most orders whose estimated cost is still
    within the default max_query_cost, and that page size."""
    fitting = [
        (query, first)
        for first in range(1, 101)
        if estimated_cost(query := COSTLY_ORDERS.replace("@FIRST@", str(first))) <= MAX_QUERY_COST
    ]
    if not fitting:
        fail(f"no orders page fits within a cost of {MAX_QUERY_COST}")
    return fitting[-1]


COSTLY_QUERY, COSTLY_FIRST = heaviest_orders_query()


# ---------------------------------------------------------------- the probe


@dataclass(frozen=True)
class Sample:
    began: float
    seconds: float
    outcome: str

    @property
    def ended(self) -> float:
        return self.began + self.seconds


def probe_addresses() -> list[str]:
    return [f"192.168.0.{k + 1}" for k in range(PROBE_ADDRESSES)]


def run_probe(url: str, product_id: str, samples: Path) -> None:
    """Probe until stdin closes, then write every sample (time.monotonic(), which is the
    same clock in every process here) to `samples`; `samples` with `.ready` appended
    appears once the first request is due."""
    stopped = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.read()
        stopped.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    body = body_of(PROBE, {"id": product_id})
    addresses = itertools.cycle(probe_addresses())
    lines = []
    with httpx.Client(base_url=url, timeout=PROBE_TIMEOUT) as client:
        ready_path(samples).touch()
        due = time.monotonic()
        while not stopped.wait(max(0.0, due - time.monotonic())):
            began = time.monotonic()
            due = began + 1 / PROBE_RATE
            outcome = probe_once(client, body, next(addresses), product_id)
            lines.append(f"{began:.6f} {time.monotonic() - began:.6f} {outcome}\n")
    samples.write_text("".join(lines))


def ready_path(samples: Path) -> Path:
    return samples.with_name(samples.name + ".ready")


def probe_once(client: httpx.Client, body: bytes, address: str, product_id: str) -> str:
    """What became of one probe request, in one word: ok, or what went wrong."""
    headers = {**headers_for(None), FORWARDED: address}
    try:
        response = client.post("/graphql", content=body, headers=headers)
    except httpx.TimeoutException:
        return "timeout"
    except httpx.HTTPError as error:
        return type(error).__name__
    if response.status_code != 200:
        return f"HTTP-{response.status_code}"
    try:
        payload = response.json()
        if payload["data"]["product"]["id"] == product_id and not payload.get("errors"):
            return "ok"
    except (ValueError, KeyError, TypeError):
        pass
    return "+".join(codes_in(response.content)) or "unexpected"


class Probe:
    """The probe process: started at rest, stopped after the last attack."""

    def __init__(self, url: str, product_id: str, directory: Path) -> None:
        self.samples_path = directory / "probe-samples.txt"
        self._log = directory / "probe.log"
        with self._log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "benchmarks.abuse", "--probe", url),
                    *("--probe-product", product_id, "--probe-samples", str(self.samples_path)),
                ],
                cwd=REPO,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group, which stop() ends whatever happens
            )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + PROBE_TIMEOUT
        while not ready_path(self.samples_path).exists():
            self.check_alive()
            if time.monotonic() > deadline:
                fail(f"the probe did not start within {PROBE_TIMEOUT} s")
            time.sleep(0.05)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            fail(f"the probe exited with {self.process.returncode}:\n{tail(self._log)}")

    def finish(self) -> list[Sample]:
        self.check_alive()
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(PROBE_TIMEOUT + WAIT)
        except subprocess.TimeoutExpired:
            fail("the probe did not stop")
        if self.process.returncode != 0:
            fail(f"the probe exited with {self.process.returncode}:\n{tail(self._log)}")
        samples = []
        for line in self.samples_path.read_text().splitlines():
            began, seconds, outcome = line.split()
            samples.append(Sample(float(began), float(seconds), outcome))
        return samples

    def kill(self) -> None:
        stop(self.process)


# ---------------------------------------------------------------- what the attackers see


def codes_in(body: bytes) -> list[str]:
    """The distinct `extensions.code`s and result types (`...Success`, `...Error`) in a body:
    searched for, since a body may be tens of megabytes that parsing would make the
    attacker spend its share of the machine on."""
    codes = re.findall(rb'"code":\s*"([A-Z_]+)"', body)
    types = re.findall(rb'"__typename":\s*"(\w+(?:Success|Error))"', body)
    return sorted({match.decode() for match in codes + types})


def codes_of(errors: object) -> str:
    if not isinstance(errors, list):
        return "?"
    codes = {
        str((error.get("extensions") or {}).get("code", "no code"))
        for error in errors
        if isinstance(error, dict)
    }
    return "+".join(sorted(codes))


@dataclass
class Arena:
    """What an attack needs, and what its attacker saw."""

    server: Server
    seeded: Seeded
    loyal_token: str
    number: int
    slow_connections: int
    seen: Counter[str] = field(default_factory=Counter)
    received: int = 0

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}/graphql"

    def addresses(self, count: int) -> list[str]:
        return [f"10.{self.number}.{k // 250}.{k % 250 + 1}" for k in range(count)]

    def saw(self, what: str) -> None:
        self.seen[what] += 1

    async def post(self, client: httpx.AsyncClient, body: bytes, headers: dict[str, str]) -> None:
        try:
            response = await client.post("/graphql", content=body, headers=headers)
        except asyncio.CancelledError:
            self.saw("unanswered when the attack ended")
            raise
        except httpx.TimeoutException:
            self.saw("timeout")
        except httpx.HTTPError as error:
            self.saw(type(error).__name__)
            await asyncio.sleep(RECONNECT_PAUSE)
        else:
            self.received += len(response.content)
            self.saw(" ".join([f"HTTP {response.status_code}", *codes_in(response.content)]))


# ---------------------------------------------------------------- HTTP attacks


async def flood(
    arena: Arena,
    body: Callable[[int], bytes],
    *,
    connections: int,
    addresses: int,
    token: str | None = None,
) -> None:
    """`connections` clients over `addresses` addresses, each sending request after request,
    the nth request's body `body(n)`."""
    numbers = itertools.count()
    spread = arena.addresses(addresses)

    async def client(address: str) -> None:
        headers = {**headers_for(token), FORWARDED: address}
        async with httpx.AsyncClient(
            base_url=arena.server.url,
            timeout=ATTACK_TIMEOUT,
            limits=httpx.Limits(max_connections=1),
        ) as http:
            while True:
                await arena.post(http, body(next(numbers)), headers)

    async with asyncio.TaskGroup() as group:
        for k in range(connections):
            group.create_task(client(spread[k % len(spread)]))


async def nested_me(arena: Arena) -> None:
    fixed = body_of(NESTED_ME)
    await flood(arena, lambda _: fixed, connections=2, addresses=2, token=arena.loyal_token)


async def nested_customers(arena: Arena) -> None:
    fixed = body_of(NESTED_CUSTOMERS)
    await flood(arena, lambda _: fixed, connections=4, addresses=4, token=arena.seeded.staff_token)


async def costly_orders(arena: Arena) -> None:
    later = datetime.now(UTC) + timedelta(days=1)

    def body(n: int) -> bytes:
        return body_of(COSTLY_QUERY, {"before": (later - timedelta(microseconds=n)).isoformat()})

    await flood(arena, body, connections=8, addresses=8, token=arena.seeded.staff_token)


def commented_query(size: int, query: str) -> str:
    """`query` after a comment that makes its JSON request `size` bytes."""
    framing = len(body_of("#\n" + query))
    return "#" + "x" * (size - framing) + "\n" + query


async def big_http_body(arena: Arena) -> None:
    fixed = body_of(commented_query(MAX_BODY_BYTES, "{ __typename }"))
    await flood(arena, lambda _: fixed, connections=8, addresses=8)


async def bad_tokens(arena: Arena) -> None:
    forged = Tokens("not-the-server-secret-0123456789-0123456789").issue(
        Identity("intruder", Role.STAFF), lifetime=timedelta(days=1)
    )
    fixed = body_of(ME)
    await flood(arena, lambda _: fixed, connections=8, addresses=1, token=forged)


async def registration_flood(arena: Arena) -> None:
    prefix = uuid.uuid4().hex[:8]

    def body(n: int) -> bytes:
        values = {"name": f"Zz Flood {n}", "email": f"flood-{prefix}-{n}@example.com"}
        return body_of(REGISTER_CUSTOMER, {"input": values})

    await flood(arena, body, connections=8, addresses=1)


async def long_search(arena: Arena) -> None:
    letters = "".join(random.choices(string.ascii_lowercase, k=50_000))
    wildcards = "%_" * 25_000  # LIKE's own wildcards, in case they reach it unescaped

    def body(n: int) -> bytes:
        # Each search differs from the last, so that none is answered from the query cache.
        base = letters if n % 2 else wildcards
        return body_of(SEARCH, {"search": f"{n}{base[len(str(n)) :]}"})

    await flood(arena, body, connections=8, addresses=8)


def nested_variables_body(depth: int, *, objects: bool) -> bytes:
    value = '{"a":' * depth + "1" + "}" * depth if objects else "[" * depth + "]" * depth
    return f'{{"query":{json.dumps(SEARCH)},"variables":{{"search":{value}}}}}'.encode()


async def deep_variables(arena: Arena) -> None:
    # A list far deeper than a recursive JSON parser goes, and objects just within its reach
    # (Python's own stops near 1,000), for whatever walks them next.
    bodies = (
        nested_variables_body(100_000, objects=False),
        nested_variables_body(800, objects=True),
    )
    await flood(arena, lambda n: bodies[n % 2], connections=8, addresses=8)


# ---------------------------------------------------------------- connections


def descriptor_budget() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(0, soft - FD_RESERVE)


async def slow_headers(arena: Arena) -> None:
    """Connections that send half a request's headers and wait; each reconnects when the
    server lets it go, to hold its place."""
    count = min(arena.slow_connections, descriptor_budget())
    if count < arena.slow_connections:
        arena.saw(f"(only {count} connections: ulimit -n)")

    async def hold(address: str) -> None:
        partial = (
            "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"{FORWARDED}: {address}\r\nContent-Type: application/js"
        ).encode()
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", arena.server.port)
            except OSError as error:
                arena.saw(f"connect {errno.errorcode.get(error.errno or 0, type(error).__name__)}")
                await asyncio.sleep(RECONNECT_PAUSE)
                continue
            try:
                writer.write(partial)
                arena.saw("opened")
                answer = await reader.read(1024)
                status = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
                if not answer:
                    arena.saw("closed by the server")
                else:
                    arena.saw(f"answered HTTP {status[1].decode()}" if status else "answered")
            except OSError as error:
                arena.saw(type(error).__name__)
            finally:
                writer.close()
            await asyncio.sleep(RECONNECT_PAUSE)

    spread = arena.addresses(max(1, count // 100))
    async with asyncio.TaskGroup() as group:
        for k in range(count):
            group.create_task(hold(spread[k % len(spread)]))


# ---------------------------------------------------------------- websockets


class Subscriber(Protocol):
    """One graphql-transport-ws socket's operations: started after connection_ack, and told
    of every message but pings, which the session answers."""

    async def start(self, connection: ClientConnection) -> None: ...

    async def on_message(self, connection: ClientConnection, message: dict[str, Any]) -> None: ...


async def send(connection: ClientConnection, message: dict[str, Any]) -> None:
    await connection.send(json.dumps(message))


async def subscribe(
    connection: ClientConnection, op_id: str, query: str, variables: dict[str, Any]
) -> None:
    payload = {"query": query, "variables": variables}
    await send(connection, {"id": op_id, "type": "subscribe", "payload": payload})


def message_label(message: dict[str, Any]) -> str:
    kind = str(message.get("type"))
    payload = message.get("payload")
    if kind == "next" and isinstance(payload, dict) and payload.get("errors"):
        return f"next with {codes_of(payload['errors'])}"
    if kind == "error":
        return f"error {codes_of(payload)}"
    return kind


async def socket_session(
    arena: Arena, address: str, subscriber: Subscriber, token: str | None = None
) -> None:
    """A websocket from `address`, opened again whenever the server closes it; the state it
    is in when the attack ends is counted too."""
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    while True:
        state = "connecting"
        try:
            async with connect(
                arena.ws_url,
                subprotocols=[TRANSPORT_WS],
                additional_headers={FORWARDED: address},
                compression=None,  # sent as they are: the server must read every byte
                open_timeout=WAIT,
                close_timeout=1,
                max_size=None,
            ) as connection:
                state = "unacknowledged"
                try:
                    await send(connection, {"type": "connection_init", "payload": auth})
                    async for frame in connection:
                        arena.received += len(frame)
                        message = json.loads(frame)
                        kind = message.get("type") if isinstance(message, dict) else None
                        if kind == "ping":
                            await send(connection, {"type": "pong"})
                        elif kind == "connection_ack" and state != "acknowledged":
                            state = "acknowledged"
                            await subscriber.start(connection)
                        elif isinstance(message, dict):
                            arena.saw(message_label(message))
                            await subscriber.on_message(connection, message)
                        else:
                            arena.saw("a message that is not an object")
                except ConnectionClosed:
                    pass
                code = connection.close_code
                arena.saw("dropped" if code is None else f"closed {code}")
        except asyncio.CancelledError:
            arena.saw(f"{state} when the attack ended")
            raise
        except InvalidStatus as refused:
            arena.saw(f"handshake refused HTTP {refused.response.status_code}")
        except (InvalidHandshake, OSError, TimeoutError) as error:
            arena.saw(type(error).__name__)
        await asyncio.sleep(RECONNECT_PAUSE)


class Replays(Subscriber):
    """Each of `afters` as the `after` of a productEvents subscription; one that ends (an
    error, complete) is subscribed again."""

    def __init__(self, afters: Sequence[str]) -> None:
        self._afters = afters
        self._of: dict[str, str] = {}
        self._ids = itertools.count()

    async def _subscribe(self, connection: ClientConnection, after: str) -> None:
        op_id = str(next(self._ids))
        self._of[op_id] = after
        await subscribe(connection, op_id, PRODUCT_REPLAY, {"after": after})

    async def start(self, connection: ClientConnection) -> None:
        self._of.clear()
        for after in self._afters:
            await self._subscribe(connection, after)

    async def on_message(self, connection: ClientConnection, message: dict[str, Any]) -> None:
        if message.get("type") in ("error", "complete"):
            after = self._of.pop(str(message.get("id")), None)
            if after is not None:
                await self._subscribe(connection, after)


async def replay_one_socket(arena: Arena) -> None:
    (address,) = arena.addresses(1)
    await socket_session(arena, address, Replays(["0"] * MAX_SUBSCRIPTIONS))


async def replay_many_sockets(arena: Arena) -> None:
    """More sockets than one address may open, from two, each with five replays from
    positions of their own, so that no two subscriptions can share an execution."""
    per_socket = 5
    sockets = 2 * (MAX_SOCKETS_PER_ADDRESS + 10)
    addresses = arena.addresses(2)
    async with asyncio.TaskGroup() as group:
        for s in range(sockets):
            afters = [str(s * per_socket + k) for k in range(per_socket)]
            group.create_task(socket_session(arena, addresses[s % 2], Replays(afters)))


class BigFrames(Subscriber):
    """A subscribe message of `size` bytes, mostly a comment; another once it is answered."""

    def __init__(self, size: int) -> None:
        empty = {"id": "0", "type": "subscribe", "payload": {"query": "#\n" + BIG_FRAME_QUERY}}
        comment = "x" * (size - len(json.dumps(empty)))
        self._query = f"#{comment}\n{BIG_FRAME_QUERY}"
        self._ids = itertools.count()

    async def _send(self, connection: ClientConnection) -> None:
        op_id = str(next(self._ids))
        await send(
            connection, {"id": op_id, "type": "subscribe", "payload": {"query": self._query}}
        )

    async def start(self, connection: ClientConnection) -> None:
        await self._send(connection)

    async def on_message(self, connection: ClientConnection, message: dict[str, Any]) -> None:
        if message.get("type") in ("error", "next", "complete"):
            await self._send(connection)


async def big_ws_frame(arena: Arena) -> None:
    frames = BigFrames(15_000_000)
    async with asyncio.TaskGroup() as group:
        for address in arena.addresses(4):
            group.create_task(socket_session(arena, address, frames))


# ---------------------------------------------------------------- the attacks


@dataclass(frozen=True)
class Attack:
    name: str
    what: str
    run: Callable[[Arena], Coroutine[Any, Any, None]]
    at_least: float = 0.0
    """Seconds it runs, if longer than --duration: time for a defence that waits to act."""


def cost(query: str) -> str:
    return f"estimated cost {estimated_cost(query):,} (max_query_cost {MAX_QUERY_COST:,})"


ATTACKS = [
    Attack(
        "nested-me",
        "5 aliases of me { orders(first: 100) { ... customer { orders(first: 100) { ... "
        f"lines {{ productName }} }} }} }} }}, as a customer with {LOYAL_ORDERS} orders of "
        f"{STORE.lines_per_order} lines; {cost(NESTED_ME)}; 2 connections from 2 addresses",
        nested_me,
    ),
    Attack(
        "nested-customers",
        "staff customers(first: 100) { ... orders(first: 100) { ... lines { product { ... } } } }"
        f"; {cost(NESTED_CUSTOMERS)}; 4 connections from 4 addresses",
        nested_customers,
    ),
    Attack(
        "costly-orders",
        f"staff orders(first: {COSTLY_FIRST}) with customers, lines and their products, the "
        f"largest page within the limit, placedBefore varied against the query cache; "
        f"{cost(COSTLY_QUERY)}; 8 connections from 8 addresses",
        costly_orders,
    ),
    Attack(
        "replay-one-socket",
        f'one socket with {MAX_SUBSCRIPTIONS} x productEvents(after: "0"), each subscribed '
        "again when it ends",
        replay_one_socket,
    ),
    Attack(
        "replay-many-sockets",
        f"{2 * (MAX_SOCKETS_PER_ADDRESS + 10)} sockets from 2 addresses, each with 5 "
        "productEvents replays from distinct early positions",
        replay_many_sockets,
    ),
    Attack(
        "slow-headers",
        "--slow-connections (2,000 by default) that send half a request's headers and wait, "
        f"reconnecting when dropped, for header_timeout + 2 s ({HEADER_TIMEOUT + 2:g} s)",
        slow_headers,
        at_least=HEADER_TIMEOUT + 2,
    ),
    Attack(
        "big-ws-frame",
        "a 15,000,000-byte subscribe message that is a comment before an invalid "
        "subscription, sent again when answered; 4 sockets from 4 addresses",
        big_ws_frame,
    ),
    Attack(
        "big-http-body",
        f"a {MAX_BODY_BYTES:,}-byte POST body (max_body_bytes) that is a comment before "
        "{ __typename }; 8 connections from 8 addresses",
        big_http_body,
    ),
    Attack(
        "bad-tokens",
        f"{ME} with a bearer token signed by another secret; 8 connections from 1 address",
        bad_tokens,
    ),
    Attack(
        "registration-flood",
        "registerCustomer with a new email each time; 8 connections from 1 address",
        registration_flood,
    ),
    Attack(
        "long-search",
        "products(search:) with 50,000 characters, letters or LIKE wildcards, new each time; "
        "8 connections from 8 addresses",
        long_search,
    ),
    Attack(
        "deep-variables",
        "variables nested 100,000 lists deep, or 800 objects deep; 8 connections from 8 addresses",
        deep_variables,
    ),
]


# ---------------------------------------------------------------- running them


@dataclass(frozen=True)
class Period:
    name: str
    began: float
    ended: float


@dataclass(frozen=True)
class Outcome:
    attack: Attack
    period: Period
    seen: Counter[str]
    received: int
    settled_after: float


async def for_a_while(seconds: float, work: Awaitable[None]) -> None:
    """Run `work` for `seconds`, then cancel it (with every connection it has open)."""
    with suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await work


async def settle(url: str, address: str) -> float:
    """Seconds until the server answers /health/live promptly five times running (at most
    SETTLE_LIMIT), then a pause: what one attack left behind is not measured under the next."""
    began = time.monotonic()
    prompt = 0
    async with httpx.AsyncClient(base_url=url, timeout=SETTLE_LIMIT) as client:
        while prompt < 5 and time.monotonic() - began < SETTLE_LIMIT:
            asked = time.monotonic()
            try:
                await client.get("/health/live", headers={FORWARDED: address})
                prompt = prompt + 1 if time.monotonic() - asked < PROMPT else 0
            except httpx.HTTPError:
                prompt = 0
            await asyncio.sleep(0.1)
    settled = time.monotonic() - began
    await asyncio.sleep(SETTLE_PAUSE)
    return settled


async def run_attacks(
    server: Server,
    seeded: Seeded,
    loyal_token: str,
    attacks: Sequence[Attack],
    duration: float,
    slow_connections: int,
) -> list[Outcome]:
    outcomes = []
    for attack in attacks:
        number = ATTACKS.index(attack) + 1
        settle_address = f"172.16.{number}.1"
        arena = Arena(server, seeded, loyal_token, number, slow_connections)
        began = time.monotonic()
        await for_a_while(max(duration, attack.at_least), attack.run(arena))
        ended = time.monotonic()
        settled_after = await settle(server.url, settle_address)
        outcomes.append(
            Outcome(
                attack, Period(attack.name, began, ended), arena.seen, arena.received, settled_after
            )
        )
        print(f"  attacked: {attack.name}", flush=True)
        if server.process.poll() is not None:
            print(f"  ! the server exited with {server.process.returncode} during {attack.name}")
            break
    return outcomes


# ---------------------------------------------------------------- seeding


async def add_loyal_customer(url: str, seeded: Seeded) -> str:
    """A customer with LOYAL_ORDERS orders, whose name sorts before every seeded one (so it
    is on the staff's first page of customers); its token."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        send_mutation = Mutations(client).send
        values = {"name": "Abbott Loyal", "email": "loyal@example.com"}
        registered = await send_mutation(REGISTER_CUSTOMER, values, None, "RegisterCustomerSuccess")
        token: str = registered["accessToken"]
        await asyncio.gather(
            *(
                send_mutation(
                    PLACE_ORDER,
                    order_input(n, seeded.product_ids, STORE.lines_per_order),
                    token,
                    "PlaceOrderSuccess",
                )
                for n in range(LOYAL_ORDERS)
            )
        )
    return token


async def log_size(database_url: str) -> tuple[int, int]:
    """Events in the log, and how many of them are product events."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            total = (await connection.execute(text("SELECT count(*) FROM event_log"))).scalar_one()
            products = (
                await connection.execute(
                    text("SELECT count(*) FROM event_log WHERE stream_type = 'Product'")
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    return int(total), int(products)


# ---------------------------------------------------------------- printing


def within(samples: Sequence[Sample], period: Period) -> list[Sample]:
    return [s for s in samples if s.began < period.ended and s.ended > period.began]


def summary(samples: Sequence[Sample]) -> tuple[float, float, int]:
    """p50 and p99 in milliseconds, and how many failed."""
    if not samples:
        return float("nan"), float("nan"), 0
    seconds = [s.seconds for s in samples]
    p50, p99 = percentiles(seconds if len(seconds) > 1 else seconds * 2)
    return p50, p99, sum(s.outcome != "ok" for s in samples)


def counted(seen: Counter[str]) -> str:
    return ", ".join(f"{what}: {count:,}" for what, count in seen.most_common()) or "nothing"


def print_results(rest: Period, samples: Sequence[Sample], outcomes: Sequence[Outcome]) -> None:
    at_rest = within(samples, rest)
    rest_p50, rest_p99, rest_failed = summary(at_rest)
    print(
        f"\nprobe {PROBE!r}, at most {PROBE_RATE}/s; target: p99 under each attack <= "
        f"{TARGET:g}x p50 at rest, and no probe request failing"
    )
    print(
        f"  {'attack':<21} {'probe p50 ms':>12} {'p99 ms':>9} {'p99/rest p50':>13} "
        f"{'requests':>9} {'failed':>7}  verdict"
    )
    print(
        f"  {'at rest':<21} {rest_p50:>12.2f} {rest_p99:>9.2f} {'':>13} "
        f"{len(at_rest):>9,} {rest_failed:>7,}"
    )
    for outcome in outcomes:
        during = within(samples, outcome.period)
        p50, p99, failed = summary(during)
        ratio = p99 / rest_p50
        verdict = "PASS" if ratio <= TARGET and failed == 0 else "MISS"
        print(
            f"  {outcome.attack.name:<21} {p50:>12.2f} {p99:>9.2f} {ratio:>12.1f}x "
            f"{len(during):>9,} {failed:>7,}  {verdict}"
        )
    print("\nwhat each attacker saw")
    for outcome in outcomes:
        failures = Counter(s.outcome for s in within(samples, outcome.period) if s.outcome != "ok")
        print(f"  {outcome.attack.name}: {outcome.attack.what}")
        print(f"    saw: {counted(outcome.seen)}")
        print(
            f"    received {outcome.received / 1e6:,.1f} MB; the server answered promptly "
            f"again {outcome.settled_after:.1f} s after the attack"
            + (f"; the probe's failures: {counted(failures)}" if failures else "")
        )


# ---------------------------------------------------------------- the run


def run(
    directory: Path,
    database_url: str,
    attacks: Sequence[Attack],
    duration: float,
    slow_connections: int,
) -> None:
    port = free_port()
    with served(
        "orderdesk, seeding",
        app_server_argv(port),
        port,
        cwd=directory,
        env={**app_env(database_url), "ORDERDESK_RATE_LIMITS": "false"},
        logs=directory,
        ready_path="/health/ready",
    ) as server:
        seeded = seed_and_report(server.url, STORE)
        loyal_token = asyncio.run(add_loyal_customer(server.url, seeded))
    events, product_events = asyncio.run(log_size(database_url))
    print(f"  the event log holds {events:,} events, {product_events:,} of them product events")
    # Every setting at its default, whatever else benchmarks/http.py sets for its own runs.
    env = {
        name: value
        for name, value in app_env(database_url).items()
        if name in ("ORDERDESK_DATABASE_URL", "ORDERDESK_JWT_SECRET")
    }
    env["ORDERDESK_FORWARDED_ALLOW_IPS"] = "127.0.0.1"
    port = free_port()
    with served(
        "orderdesk, attacked",
        app_server_argv(port),
        port,
        cwd=directory,
        env=env,
        logs=directory,
        ready_path="/health/ready",
    ) as server:
        product_id = seeded.product_ids[0]
        check_once(server.url, body_of(PROBE, {"id": product_id}), None, "the probe's query")
        probe = Probe(server.url, product_id, directory)
        try:
            probe.wait_ready()
            time.sleep(PROBE_WARMUP)
            rest = Period("at rest", time.monotonic(), time.monotonic() + duration)
            time.sleep(duration)
            outcomes = asyncio.run(
                run_attacks(server, seeded, loyal_token, attacks, duration, slow_connections)
            )
            samples = probe.finish()
        finally:
            probe.kill()
        died = server.process.poll()
        print_results(rest, samples, outcomes)
        if died is not None:
            fail(f"the server exited with {died}:\n{tail(server.log)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join((__doc__ or "").split("\n\n")[0].split()))
    names = [attack.name for attack in ATTACKS]
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of each attack")
    parser.add_argument(
        "--only", action="append", choices=names, metavar="NAME", help=", ".join(names)
    )
    parser.add_argument(
        "--slow-connections", type=int, default=2_000, help="connections of slow-headers"
    )
    parser.add_argument(
        "--database-url", metavar="URL", help="a PostgreSQL database to create, use and drop"
    )
    parser.add_argument("--probe", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--probe-product", help=argparse.SUPPRESS)
    parser.add_argument("--probe-samples", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.probe:
        run_probe(arguments.probe, arguments.probe_product, arguments.probe_samples)
        return
    attacks = [a for a in ATTACKS if not arguments.only or a.name in arguments.only]
    if arguments.database_url and not arguments.database_url.startswith("postgresql"):
        parser.error("--database-url takes a PostgreSQL URL; SQLite is the default")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="orderdesk-abuse-") as directory:
        if arguments.database_url:
            asyncio.run(create_database(arguments.database_url))
        try:
            database_url = arguments.database_url or (
                f"sqlite+aiosqlite:///{Path(directory) / 'abuse.db'}"
            )
            run(
                Path(directory),
                database_url,
                attacks,
                arguments.duration,
                arguments.slow_connections,
            )
        finally:
            if arguments.database_url:
                asyncio.run(drop_database(arguments.database_url))
    print(f"\nthe whole run took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
