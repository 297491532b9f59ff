"""Throughput and latency of the served app over HTTP, against baselines measured in the same run.

Run: ``python -m benchmarks.http`` from the repository root (or ``python benchmarks/http.py``),
with ``--duration 10 --warmup 2``, ``--only reads|writes``, ``--skip-rss`` and ``--postgres
postgresql+asyncpg://postgres@127.0.0.1:5432/orderdesk_bench``. The load generator is wrk
(``apt-get install wrk``): one thread, 16 connections, the same duration for every target,
after a warm-up that is not counted.

Every server is its own process, served by uvicorn exactly as ``orderdesk serve`` serves
(one worker, uvicorn's default loop and HTTP implementations, which are uvloop and
httptools here, and serve's default log level). The app runs in a temporary directory on a
SQLite file of its own, seeded through its GraphQL API only: 100 products, 20 customers and
400 orders of 3 lines. The baselines, in this file too (``--serve-baseline NAME``), answer
``{hello}``: raw Starlette returning fixed JSON, graphql-core executing a document parsed
and validated once, plain Strawberry, and Strawberry with its parser and validation caches.

Reads: ``{__typename}``, ``product(id)`` (once with ORDERDESK_QUERY_CACHE=false, once with
true), ``products(first: 20)`` and, as staff, ``orders(first: 20)`` with each order's
customer and lines. Each response is checked once (data, no errors) before it is timed.
Writes: ``placeOrder`` (one line, a fresh idempotency key per request) as one customer,
against a bare aiosqlite script doing the same transactions and statements (listed at
BARE_ORDER below) with 16 concurrent tasks. Memory: the app's RSS after 10,000 and after
100,000 ``product(id)`` requests from a fresh start. Prints a table, then each ratio the
performance issue sets as a target with PASS or MISS.

With ``--postgres URL`` the database is created, the app served on it with ``--workers 2``
and the same app targets printed as a second table, without targets; the database is
dropped at the end. The machine is shared and wrk runs beside the servers, so compare
ratios from one run, never absolute figures across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# Run as a script, Python puts benchmarks/ first on sys.path, where this file would shadow
# the standard library's `http` (which httpx and starlette import); the root goes there.
REPO = Path(__file__).resolve().parent.parent
sys.path[0] = str(REPO)

import aiosqlite  # noqa: E402
import asyncpg  # type: ignore[import-untyped]  # noqa: E402
import graphql  # noqa: E402
import httpx  # noqa: E402
import strawberry  # noqa: E402
import uvicorn  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402
from strawberry.asgi import GraphQL  # noqa: E402
from strawberry.extensions import ParserCache, ValidationCache  # noqa: E402

from handlers.access import Identity, Role  # noqa: E402
from orderdesk.settings import Settings  # noqa: E402
from orderdesk.tokens import Tokens  # noqa: E402

SECRET = "benchmark-secret-0123456789-0123456789-0123456789"
CONNECTIONS = 16
PRODUCTS = 100
CUSTOMERS = 20
ORDERS = 400
LINES_PER_ORDER = 3
STOCK = 10_000_000  # enough for the seeded orders and every placeOrder of a run
WRITE_PRODUCTS = 10  # placeOrder and the bare order take turns over the first ten products
SEED_CONCURRENCY = 8
RSS_COUNTS = (10_000, 100_000)
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
ADDRESS = {"street": "1 Main St", "city": "Springfield", "postalCode": "12345", "country": "US"}

HELLO = "{hello}"
TYPENAME = "{__typename}"
PRODUCT = (
    "query Product($id: ID!) { product(id: $id) { id sku name price { amount currency } stock } }"
)
PRODUCTS_PAGE = (
    "{ products(first: 20) { totalCount edges { node {"
    " id sku name price { amount currency } stock } } } }"
)
ORDERS_PAGE = (
    "{ orders(first: 20) { edges { node { status total { amount currency }"
    " customer { name email } lines { quantity product { name sku } } } } } }"
)
CREATE_PRODUCT = """mutation($input: CreateProductInput!) { createProduct(input: $input) {
    __typename ... on CreateProductSuccess { product { id } } } }"""
REGISTER_CUSTOMER = """mutation($input: RegisterCustomerInput!) { registerCustomer(input: $input) {
    __typename ... on RegisterCustomerSuccess { accessToken customer { id } } } }"""
PLACE_ORDER = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
    __typename ... on PlaceOrderSuccess { order { id status total { amount currency } } } } }"""

RAW_BODY = {"data": {"hello": "world"}}


# ---------------------------------------------------------------- the baselines


def raw_app() -> Starlette:
    """Starlette answering fixed JSON: the floor set by uvicorn, Starlette and one route."""

    async def endpoint(_request: Request) -> JSONResponse:
        return JSONResponse(RAW_BODY)

    return Starlette(routes=[Route("/graphql", endpoint, methods=["POST"])])


@strawberry.type
class HelloQuery:
    @strawberry.field
    def hello(self) -> str:
        return "world"


def strawberry_app() -> GraphQL:
    return GraphQL(strawberry.Schema(query=HelloQuery))


def strawberry_cached_app() -> GraphQL:
    # Factories, as the app passes them: the caches live at module level in Strawberry.
    schema = strawberry.Schema(
        query=HelloQuery,
        extensions=[lambda: ParserCache(maxsize=256), lambda: ValidationCache(maxsize=256)],
    )
    return GraphQL(schema)


def graphql_core_app() -> Starlette:
    """graphql-core executing a document parsed and validated once, found by its text as a
    query cache would find it; the JSON body is still read and parsed for every request."""
    schema = graphql.build_schema("type Query { hello: String! }")
    document = graphql.parse(HELLO)
    if graphql.validate(schema, document):
        raise RuntimeError("the baseline document does not validate")
    documents = {HELLO: document}
    root = {"hello": "world"}

    async def endpoint(request: Request) -> JSONResponse:
        payload = await request.json()
        result = graphql.execute(schema, documents[payload["query"]], root_value=root)
        assert isinstance(result, graphql.ExecutionResult)  # no resolver is async
        return JSONResponse({"data": result.data})

    return Starlette(routes=[Route("/graphql", endpoint, methods=["POST"])])


BASELINES: dict[str, Callable[[], Any]] = {
    "raw": raw_app,
    "graphql-core": graphql_core_app,
    "strawberry": strawberry_app,
    "strawberry-cached": strawberry_cached_app,
}


def serve_baseline(name: str, port: int) -> None:
    """Serve a baseline with the options `orderdesk serve` gives uvicorn (orderdesk/cli.py)."""
    uvicorn.run(
        f"benchmarks.http:{BASELINES[name].__name__}",
        factory=True,
        host="127.0.0.1",
        port=port,
        workers=1,
        log_level=Settings().log_level.lower(),
    )


# ---------------------------------------------------------------- server processes


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_kib(self) -> int:
        """VmRSS of the server process (workers=1: uvicorn serves in this very process)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        assert match is not None
        return int(match.group(1))

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            fail(f"{self.name} exited with {self.process.returncode}:\n{tail(self.log)}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def fail(message: str) -> None:
    raise SystemExit(f"benchmark failed: {message}")


@contextmanager
def served(
    name: str,
    argv: Sequence[str],
    port: int,
    *,
    cwd: Path,
    env: dict[str, str],
    logs: Path,
    ready_path: str | None,
) -> Iterator[Server]:
    """A server process, ready: `ready_path` answered 200 (or, when None, any HTTP answer)."""
    log = logs / f"{name.replace(' ', '-')}-{port}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so --workers children go too
        )
    server = Server(name, process, port, log)
    try:
        wait_ready(server, ready_path)
        yield server
    finally:
        stop(process)
        report_log_problems(server)


def wait_ready(server: Server, path: str | None) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        server.check_alive()
        try:
            response = httpx.get(server.url + (path or "/"), timeout=2)
        except httpx.TransportError:
            time.sleep(0.1)
            continue
        if path is None or response.status_code == 200:
            return
        time.sleep(0.1)
    fail(f"{server.name} was not ready within {READY_TIMEOUT} s:\n{tail(server.log)}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate (uvicorn shuts down gracefully on SIGTERM), then kill the group if it hangs."""
    if process.poll() is None:
        process.terminate()
        with suppress(subprocess.TimeoutExpired):
            process.wait(STOP_TIMEOUT)
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # also any worker left behind by --workers
    process.wait()


def report_log_problems(server: Server) -> None:
    """Errors and warnings a server logged, so that a fast figure is never a broken server's.

    A traceback is shown by its last line, the exception; log records by their message.
    """
    problems = []
    in_traceback = False
    for line in server.log.read_text(errors="replace").splitlines():
        if line.startswith("Traceback"):
            in_traceback = True
        elif in_traceback and line and not line[0].isspace():
            in_traceback = line.startswith(("During handling", "The above exception"))
            if not in_traceback:
                problems.append(line)
        elif re.search(r"\b(ERROR|WARNING|CRITICAL)\b", line):
            problems.append(line)
    if problems:
        print(f"  ! {server.name} logged {len(problems)} errors, warnings or exceptions:")
        # Each kind once, with how often: timestamps, timings and request ids would make
        # every line of a flood of one failure distinct.
        kinds = Counter(re.sub(r"[0-9a-f]{12,}|\d+", "#", line) for line in problems)
        firsts = {re.sub(r"[0-9a-f]{12,}|\d+", "#", line): line for line in reversed(problems)}
        for kind, count in kinds.items():
            print(f"    {firsts[kind][:300]}" + (f"  (x{count})" if count > 1 else ""))


def app_server_argv(port: int, workers: int = 1) -> list[str]:
    orderdesk = Path(sys.executable).with_name("orderdesk")
    return [str(orderdesk), "serve", "--port", str(port), "--workers", str(workers)]


# Rate limits on, as in production, so that their cost is in every figure; with budgets of
# the production shape (a minute and a second) that wrk from one address never spends.
NEVER_SPENT = "1000000000/minute;1000000000/second"
RATE_LIMITS = {
    "ORDERDESK_RATE_LIMITS": "true",
    "ORDERDESK_RATE_LIMIT_PER_ADDRESS": NEVER_SPENT,
    "ORDERDESK_RATE_LIMIT_PER_IDENTITY": NEVER_SPENT,
    "ORDERDESK_RATE_LIMIT_REGISTRATIONS": NEVER_SPENT,
    "ORDERDESK_RATE_LIMIT_FAILED_AUTH": NEVER_SPENT,
}


def app_env(database_url: str, **extra: str) -> dict[str, str]:
    return {
        "ORDERDESK_DATABASE_URL": database_url,
        "ORDERDESK_JWT_SECRET": SECRET,
        **RATE_LIMITS,
        **extra,
    }


# ---------------------------------------------------------------- GraphQL over httpx


def body_of(query: str, variables: dict[str, Any] | None = None) -> bytes:
    payload: dict[str, Any] = {"query": query}
    if variables is not None:
        payload["variables"] = variables
    return json.dumps(payload, separators=(",", ":")).encode()


def headers_for(token: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def checked_data(response: httpx.Response, what: str) -> dict[str, Any]:
    """The response's data; anything else (an error status, `errors`, no data) fails loudly."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if (
        response.status_code != 200
        or not isinstance(payload, dict)
        or payload.get("errors")
        or not payload.get("data")
    ):
        fail(f"{what} answered {response.status_code}: {response.text[:2000]}")
    data: dict[str, Any] = payload["data"]
    return data


def check_once(url: str, body: bytes, token: str | None, what: str) -> dict[str, Any]:
    response = httpx.post(url + "/graphql", content=body, headers=headers_for(token), timeout=30)
    return checked_data(response, what)


# ---------------------------------------------------------------- seeding


@dataclass(frozen=True)
class Seeded:
    staff_token: str
    product_ids: list[str]
    customer_tokens: list[str]


@dataclass(frozen=True)
class Store:
    """How much `seed` makes; order n belongs to customer n modulo `customers`."""

    products: int = PRODUCTS
    customers: int = CUSTOMERS
    orders: int = ORDERS
    lines_per_order: int = LINES_PER_ORDER


def staff_token() -> str:
    return Tokens(SECRET).issue(Identity("bench", Role.STAFF), lifetime=timedelta(days=1))


class Mutations:
    """Mutations over one keep-alive client, a few at a time."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client
        self._limit = asyncio.Semaphore(SEED_CONCURRENCY)

    async def send(
        self, query: str, values: dict[str, Any], token: str | None, success: str
    ) -> dict[str, Any]:
        """The mutation's payload, which must be a `success`; anything else fails loudly."""
        async with self._limit:
            response = await self._client.post(
                "/graphql", content=body_of(query, {"input": values}), headers=headers_for(token)
            )
        (payload,) = checked_data(response, success).values()
        if payload.get("__typename") != success:
            fail(f"expected {success}, got {response.text[:2000]}")
        result: dict[str, Any] = payload
        return result


def product_input(n: int) -> dict[str, Any]:
    price = f"{n % 50 + 1}.50"
    return {"sku": f"BENCH-{n:03}", "name": f"Product {n:03}", "price": price, "stock": STOCK}


def customer_input(n: int) -> dict[str, Any]:
    email = f"customer{n:02}@example.com"
    return {"name": f"Customer {n:02}", "email": email, "idempotencyKey": f"register-{n}"}


def order_input(
    n: int, product_ids: list[str], lines_per_order: int = LINES_PER_ORDER
) -> dict[str, Any]:
    lines = [
        {"productId": product_ids[(n + i * 7) % len(product_ids)], "quantity": 1 + (n + i) % 3}
        for i in range(lines_per_order)
    ]
    return {"lines": lines, "shippingAddress": ADDRESS, "idempotencyKey": f"seed-{n}"}


async def seed(url: str, store: Store = Store()) -> Seeded:
    """Products, customers and orders through the GraphQL API, as clients would make them."""
    staff = staff_token()
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        send = Mutations(client).send
        products = await asyncio.gather(
            *(
                send(CREATE_PRODUCT, product_input(n), staff, "CreateProductSuccess")
                for n in range(store.products)
            )
        )
        customers = await asyncio.gather(
            *(
                send(REGISTER_CUSTOMER, customer_input(n), None, "RegisterCustomerSuccess")
                for n in range(store.customers)
            )
        )
        product_ids = [p["product"]["id"] for p in products]
        tokens = [c["accessToken"] for c in customers]
        await asyncio.gather(
            *(
                send(
                    PLACE_ORDER,
                    order_input(n, product_ids, store.lines_per_order),
                    tokens[n % store.customers],
                    "PlaceOrderSuccess",
                )
                for n in range(store.orders)
            )
        )
    return Seeded(staff, product_ids, tokens)


def seed_and_report(url: str, store: Store = Store()) -> Seeded:
    started = time.perf_counter()
    seeded = asyncio.run(seed(url, store))
    print(
        f"  seeded {store.products:,} products, {store.customers:,} customers, "
        f"{store.orders:,} orders of {store.lines_per_order} lines "
        f"in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return seeded


# ---------------------------------------------------------------- wrk


@dataclass(frozen=True)
class WrkStats:
    requests: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    socket_errors: str | None


@dataclass(frozen=True)
class Row:
    target: str
    stats: WrkStats


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def lua_string(text: str) -> str:
    """A Lua long string literal; our bodies never contain its closing bracket."""
    if "]==]" in text:
        raise ValueError("the text closes the Lua long string")
    return f"[==[{text}]==]"


def lua_headers(token: str | None) -> str:
    return "\n".join(
        f"wrk.headers[ {lua_string(name)} ] = {lua_string(value)}"
        for name, value in headers_for(token).items()
    )


COUNT_REACHED = "answered: count reached"


def fixed_request_script(body: bytes, token: str | None, stop_after: int | None = None) -> str:
    """Every request the same POST; with `stop_after`, the thread stops once that many were
    answered and says so on stdout (wrk's main thread would still sleep out --duration)."""
    script = f'wrk.method = "POST"\nwrk.body = {lua_string(body.decode())}\n{lua_headers(token)}\n'
    if stop_after is not None:
        script += (
            "local answered = 0\n"
            "function response(status, headers, body)\n"
            "  answered = answered + 1\n"
            f"  if answered == {stop_after} then\n"
            "    wrk.thread:stop()\n"
            f'    io.stdout:write("{COUNT_REACHED}\\n")\n'
            "    io.stdout:flush()\n"
            "  end\n"
            "end\n"
        )
    return script


def place_order_script(token: str, product_ids: Sequence[str]) -> str:
    """placeOrder with a key of its own per request: a random prefix per script (one per wrk
    run; wrk's Lua has one state per thread, and we run one thread) and a counter."""
    marker_product, marker_key = "@PRODUCT@", "@KEY@"
    template = body_of(
        PLACE_ORDER,
        {
            "input": {
                "lines": [{"productId": marker_product, "quantity": 1}],
                "shippingAddress": ADDRESS,
                "idempotencyKey": marker_key,
            }
        },
    ).decode()
    head, rest = template.split(marker_product)
    middle, end = rest.split(marker_key)
    products = ", ".join(lua_string(p) for p in product_ids)
    return f"""wrk.method = "POST"
{lua_headers(token)}
local head, middle, tail = {lua_string(head)}, {lua_string(middle)}, {lua_string(end)}
local products = {{{products}}}
local prefix = {lua_string(uuid.uuid4().hex)}
local counter = 0
function request()
  counter = counter + 1
  local product = products[counter % #products + 1]
  return wrk.format(nil, nil, nil, head .. product .. middle .. prefix .. "-" .. counter .. tail)
end
"""


class Wrk:
    def __init__(self, directory: Path, duration: float, warmup: float) -> None:
        self.directory = directory
        self.duration = duration
        self.warmup = warmup
        self._scripts = itertools.count()

    def measure(self, url: str, script: str) -> WrkStats:
        """A warm-up that is not counted, then the timed run, each with its own script."""
        if self.warmup > 0:
            self.run(url, script, self.warmup)
        return self.run(url, script, self.duration)

    def run(self, url: str, script: str, seconds: float) -> WrkStats:
        command = self._command(url, script, seconds)
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            fail(f"wrk exited with {completed.returncode}:\n{completed.stdout}{completed.stderr}")
        return parse_wrk(completed.stdout)

    def run_until_counted(self, url: str, script: str) -> WrkStats:
        """Run a `stop_after` script until it reports its count, then interrupt wrk: on
        SIGINT wrk stops waiting for --duration (an hour here, a mere cap) and reports."""
        command = self._command(url, script, seconds=3600)
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
            assert process.stdout is not None
            lines = []
            for line in process.stdout:
                lines.append(line)
                if line.strip() == COUNT_REACHED:
                    process.send_signal(signal.SIGINT)
                    break
            output = "".join(lines) + process.stdout.read()
            if process.wait() != 0:
                fail(f"wrk exited with {process.returncode}:\n{output}")
        return parse_wrk(output)

    def _command(self, url: str, script: str, seconds: float) -> list[str]:
        path = self.directory / f"wrk-{next(self._scripts)}.lua"
        path.write_text(script)
        return [
            "wrk",
            "--threads",
            "1",
            "--connections",
            str(CONNECTIONS),
            "--duration",
            f"{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "--latency",
            "--script",
            str(path),
            url + "/graphql",
        ]


def parse_wrk(output: str) -> WrkStats:
    def latency(percentile: str) -> float:
        match = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.MULTILINE)
        if match is None:
            fail(f"no {percentile}% latency in wrk's output:\n{output}")
            raise AssertionError  # fail() raises; this tells the type checker so
        return float(match.group(1)) * _UNITS_MS[match.group(2)]

    if (non_2xx := re.search(r"Non-2xx or 3xx responses: (\d+)", output)) is not None:
        fail(f"{non_2xx.group(1)} responses were not 2xx:\n{output}")
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    count = re.search(r"^\s+(\d+) requests in", output, re.MULTILINE)
    if rate is None or count is None:
        fail(f"cannot read wrk's output:\n{output}")
        raise AssertionError
    errors = re.search(r"Socket errors: (.*)", output)
    return WrkStats(
        requests=int(count.group(1)),
        requests_per_second=float(rate.group(1)),
        p50_ms=latency("50"),
        p99_ms=latency("99"),
        socket_errors=errors.group(1) if errors else None,
    )


def require_wrk() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed; install it with `apt-get install wrk`")


# ---------------------------------------------------------------- the targets


@dataclass(frozen=True)
class Target:
    name: str
    body: bytes
    token: str | None = None


def product_target(seeded: Seeded, suffix: str = "") -> Target:
    return Target(f"orderdesk product(id){suffix}", body_of(PRODUCT, {"id": seeded.product_ids[0]}))


def app_read_targets(seeded: Seeded, product_suffix: str = "") -> list[Target]:
    return [
        Target("orderdesk {__typename}", body_of(TYPENAME)),
        product_target(seeded, product_suffix),
        Target("orderdesk products(first: 20)", body_of(PRODUCTS_PAGE)),
        Target("orderdesk orders(first: 20), staff", body_of(ORDERS_PAGE), seeded.staff_token),
    ]


def check_read(url: str, target: Target) -> None:
    """Fails unless the page is full: timing an empty or erroneous answer would flatter."""
    data = check_once(url, target.body, target.token, target.name)
    if "products" in data and len(data["products"]["edges"]) != 20:
        fail(f"{target.name} returned {len(data['products']['edges'])} products, not 20")
    if "orders" in data:
        edges = data["orders"]["edges"]
        complete = [e for e in edges if e["node"]["customer"] and len(e["node"]["lines"]) == 3]
        if len(complete) != 20:
            fail(f"{target.name} returned {len(complete)} full orders, not 20: {data}")


def measure_target(wrk: Wrk, server: Server, target: Target) -> Row:
    check_read(server.url, target)
    stats = wrk.measure(server.url, fixed_request_script(target.body, target.token))
    server.check_alive()
    print(f"  measured {target.name}: {stats.requests_per_second:,.0f} req/s", flush=True)
    return Row(target.name, stats)


def measure_place_order(wrk: Wrk, server: Server, seeded: Seeded, name: str) -> Row:
    token = seeded.customer_tokens[0]
    products = seeded.product_ids[:WRITE_PRODUCTS]
    check = {
        "lines": [{"productId": products[0], "quantity": 1}],
        "shippingAddress": ADDRESS,
        "idempotencyKey": f"check-{uuid.uuid4().hex}",
    }
    data = check_once(server.url, body_of(PLACE_ORDER, {"input": check}), token, name)
    if data["placeOrder"]["__typename"] != "PlaceOrderSuccess":
        fail(f"{name} answered {data}")
    stats = wrk.measure(server.url, place_order_script(token, products))
    server.check_alive()
    print(f"  measured {name}: {stats.requests_per_second:,.0f} req/s", flush=True)
    return Row(name, stats)


@dataclass(frozen=True)
class Memory:
    after_kib: dict[int, int]


def measure_rss(wrk: Wrk, server: Server, target: Target) -> Memory:
    """RSS after exactly so many answered requests since the process started."""
    check_read(server.url, target)
    answered = 1
    after: dict[int, int] = {}
    for count in RSS_COUNTS:
        script = fixed_request_script(target.body, target.token, stop_after=count - answered)
        stats = wrk.run_until_counted(server.url, script)
        answered += stats.requests
        server.check_alive()
        after[count] = server.rss_kib()
        print(f"  RSS after {answered:,} requests: {after[count] / 1024:.1f} MiB", flush=True)
    return Memory(after)


# ---------------------------------------------------------------- the bare SQLite order

# BARE_ORDER: what one placeOrder does to SQLite in the app, read off handlers/idempotency.py,
# handlers/orders.py, persistence/unit_of_work.py, persistence/event_log.py,
# persistence/projector.py, the projections (handlers/*.py) and schema/orders.py
# (present_order), and checked against the SQL the app emits. The bare order makes the same
# statements, in the same transactions, in this sequence, on tables made by the app's own
# migrations (`orderdesk migrate`) and with the app's pragmas (persistence/database.py):
#
#  1. idempotency lookup, deferred:  BEGIN; SELECT idempotency_keys WHERE scope, key; ROLLBACK
#  2. the unit of work, BEGIN IMMEDIATE:
#       SELECT customers WHERE id; SELECT products WHERE id IN (...) ORDER BY id;
#       INSERT orders (lines and address as JSON);
#       UPDATE products SET name, description, price, currency, stock, deleted, version
#         WHERE id AND version;
#       INSERT event_log ... RETURNING position, once per event (OrderPlaced, StockReserved:
#         SQLAlchemy runs them one by one on SQLite);
#       SAVEPOINT; INSERT idempotency_keys; RELEASE; COMMIT
#  3. the projector's read of the log, deferred:
#       BEGIN; SELECT event_log WHERE position > ? ORDER BY position LIMIT 500; ROLLBACK
#  4. one BEGIN IMMEDIATE transaction per projection, each ending with its checkpoint:
#       product_catalog:    UPDATE product_catalog SET stock, version, updated_at, last_position
#       customer_summaries: UPDATE customer_summaries SET order_count, lifetime_value, ...
#       orders:             INSERT order_summaries; INSERT order_lines
#       then UPDATE projection_checkpoints SET position, parked_error WHERE name AND position;
#       COMMIT
#  5. the payload (read your writes), deferred:
#       BEGIN; SELECT order_summaries WHERE id IN (?); ROLLBACK
#
# Not mirrored: the projector's second look at the log that finds nothing; the event tail,
# which reads the log and the order, its lines, customer and products again for
# subscribers (even when there are none); and, in the app's favour, the projector applying
# the events of several concurrent orders in one transaction per projection.


@dataclass(frozen=True)
class BareFixture:
    path: Path
    customer_id: str
    product_ids: list[str]


@dataclass(frozen=True)
class BareStats:
    orders: int
    orders_per_second: float
    p50_ms: float
    p99_ms: float


def stamp(moment: datetime) -> str:
    """A UtcDateTime as SQLAlchemy stores it in SQLite."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


async def open_bare(path: Path) -> aiosqlite.Connection:
    connection = await aiosqlite.connect(path, isolation_level=None)
    for pragma in (
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=NORMAL",
        "PRAGMA foreign_keys=ON",
        "PRAGMA busy_timeout=10000",
    ):
        await connection.execute(pragma)
    return connection


def make_bare_fixture(directory: Path) -> BareFixture:
    """A fresh file migrated by the app itself, with one customer and the write products."""
    path = directory / "bare.db"
    orderdesk = Path(sys.executable).with_name("orderdesk")
    subprocess.run(
        [str(orderdesk), "migrate"],
        cwd=directory,
        env={**os.environ, **app_env(f"sqlite+aiosqlite:///{path}")},
        check=True,
        capture_output=True,
    )
    fixture = BareFixture(path, uuid.uuid4().hex, [uuid.uuid4().hex for _ in range(WRITE_PRODUCTS)])
    asyncio.run(fill_bare_fixture(fixture))
    return fixture


async def fill_bare_fixture(fixture: BareFixture) -> None:
    now = stamp(datetime.now(UTC))
    db = await open_bare(fixture.path)
    try:
        await db.execute("BEGIN IMMEDIATE")
        await db.execute(
            "INSERT INTO customers (id, name, email, version)"
            " VALUES (?, 'Customer 00', 'customer00@example.com', 1)",
            (fixture.customer_id,),
        )
        await db.execute(
            "INSERT INTO customer_summaries (id, name, email, search_text, order_count,"
            " lifetime_value, currency, registered_at, registered_position, version,"
            " last_position) VALUES"
            " (?, 'Customer 00', 'customer00@example.com', ?, 0, 0, '', ?, 1, 1, 1)",
            (fixture.customer_id, "customer 00\ncustomer00@example.com", now),
        )
        for n, product_id in enumerate(fixture.product_ids):
            await db.execute(
                "INSERT INTO products (id, sku, name, description, price, currency, stock,"
                " deleted, version) VALUES (?, ?, ?, '', 15000, 'USD', ?, 0, 1)",
                (product_id, f"BENCH-{n:03}", f"Product {n:03}", STOCK),
            )
            await db.execute(
                "INSERT INTO product_catalog (id, sku, name, search_text, description, price,"
                " currency, stock, deleted, version, created_at, updated_at, created_position,"
                " last_position) VALUES (?, ?, ?, ?, '', 15000, 'USD', ?, 0, 1, ?, ?, ?, ?)",
                (
                    product_id,
                    f"BENCH-{n:03}",
                    f"Product {n:03}",
                    f"product {n:03}\nbench-{n:03}",
                    STOCK,
                    now,
                    now,
                    n + 2,
                    n + 2,
                ),
            )
        await db.executemany(
            "INSERT INTO projection_checkpoints (name, position) VALUES (?, 0)",
            [("product_catalog",), ("customer_summaries",), ("orders",)],
        )
        await db.execute("COMMIT")
    finally:
        await db.close()


async def bare_order(
    write: aiosqlite.Connection, read: aiosqlite.Connection, fixture: BareFixture, n: int
) -> None:
    """One placeOrder's statements and transactions (BARE_ORDER above), in order."""
    customer_id = fixture.customer_id
    product_id = fixture.product_ids[n % len(fixture.product_ids)]
    order_id = uuid.uuid4().hex
    key = f"bare-{n}"
    scope = f"PlaceOrder:{customer_id}"
    correlation_id = uuid.uuid4().hex
    fingerprint = hashlib.sha256(f"PlaceOrder\0{customer_id}{product_id}".encode()).hexdigest()
    address = {"street": "1 Main St", "city": "Springfield", "state": ""}
    address |= {"postal_code": "12345", "country": "US"}

    # 1. idempotency lookup
    await read.execute("BEGIN")
    await read.execute_fetchall(
        "SELECT * FROM idempotency_keys WHERE scope = ? AND key = ?", (scope, key)
    )
    await read.execute("ROLLBACK")

    # 2. the unit of work
    now = stamp(datetime.now(UTC))
    await write.execute("BEGIN IMMEDIATE")
    ((_, name, email, _),) = await write.execute_fetchall(
        "SELECT id, name, email, version FROM customers WHERE id = ?", (customer_id,)
    )
    (
        (_, _, product_name, description, price, currency, stock, deleted, version),
    ) = await write.execute_fetchall(
        "SELECT id, sku, name, description, price, currency, stock, deleted, version"
        " FROM products WHERE id IN (?) ORDER BY id",
        (product_id,),
    )
    unit_price = f"{price / 10_000:.2f}"
    line = {"product_id": product_id, "product_name": product_name, "unit_price": unit_price}
    line["quantity"] = 1
    await write.execute(
        "INSERT INTO orders (id, customer_id, status, currency, lines, shipping_address,"
        " special_instructions, version) VALUES (?, ?, 'PENDING', ?, ?, ?, '', 1)",
        (order_id, customer_id, currency, json.dumps([line]), json.dumps(address)),
    )
    await write.execute(
        "UPDATE products SET name = ?, description = ?, price = ?, currency = ?, stock = ?,"
        " deleted = ?, version = ? WHERE id = ? AND version = ?",
        (
            *(product_name, description, price, currency, stock - 1, deleted, version + 1),
            *(product_id, version),
        ),
    )
    placed = {"order_id": order_id, "customer_id": customer_id, "customer_name": name}
    placed |= {"customer_email": email, "lines": [line], "currency": currency}
    placed |= {"total": unit_price, "shipping_address": address, "special_instructions": ""}
    reserved = {"product_id": product_id, "order_id": order_id, "quantity": 1}
    reserved["stock"] = stock - 1
    positions = []
    for stream_type, stream_id, stream_version, event_type, payload in (
        ("Order", order_id, 1, "OrderPlaced", placed),
        ("Product", product_id, version + 1, "StockReserved", reserved),
    ):
        ((position,),) = await write.execute_fetchall(
            "INSERT INTO event_log (event_id, stream_type, stream_id, stream_version,"
            " event_type, payload, occurred_at, correlation_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING position",
            (
                *(str(uuid.uuid4()), stream_type, stream_id, stream_version, event_type),
                *(json.dumps(payload), now, correlation_id),
            ),
        )
        positions.append(position)
    await write.execute("SAVEPOINT idempotency")
    await write.execute(
        "INSERT INTO idempotency_keys (scope, key, fingerprint, entity_id, version, position,"
        " created_at) VALUES (?, ?, ?, ?, 1, ?, ?)",
        (scope, key, fingerprint, order_id, positions[-1], now),
    )
    await write.execute("RELEASE SAVEPOINT idempotency")
    await write.execute("COMMIT")

    # 3. the projector reads the log
    await read.execute("BEGIN")
    await read.execute_fetchall(
        "SELECT * FROM event_log WHERE position > ? ORDER BY position LIMIT 500",
        (positions[0] - 1,),
    )
    await read.execute("ROLLBACK")

    # 4. one transaction per projection. Concurrent bare orders do not agree on the current
    # checkpoint, so the compare-and-set keeps the larger position: the same row lookup
    # and update as the app's `WHERE name = ? AND position = ?`.
    total = price  # one unit
    projections: list[tuple[str, list[tuple[str, tuple[Any, ...]]]]] = [
        (
            "product_catalog",
            [
                (
                    "UPDATE product_catalog SET stock = ?, version = ?, updated_at = ?,"
                    " last_position = ? WHERE id = ?",
                    (stock - 1, version + 1, now, positions[1], product_id),
                )
            ],
        ),
        (
            "customer_summaries",
            [
                (
                    "UPDATE customer_summaries SET order_count = order_count + 1,"
                    " lifetime_value = CASE WHEN currency IN ('', ?)"
                    " THEN lifetime_value + ? ELSE lifetime_value END,"
                    " currency = CASE WHEN currency = '' THEN ? ELSE currency END,"
                    " last_position = ? WHERE id = ?",
                    (currency, total, currency, positions[0], customer_id),
                )
            ],
        ),
        (
            "orders",
            [
                (
                    "INSERT INTO order_summaries (id, customer_id, status, line_count, total,"
                    " currency, street, city, state, postal_code, country, special_instructions,"
                    " placed_at, updated_at, version, placed_position, last_position)"
                    " VALUES (?, ?, 'PENDING', 1, ?, ?, ?, ?, '', ?, ?, '', ?, ?, 1, ?, ?)",
                    (
                        *(order_id, customer_id, total, currency),
                        *("1 Main St", "Springfield", "12345", "US", now, now),
                        *(positions[0], positions[0]),
                    ),
                ),
                (
                    "INSERT INTO order_lines (order_id, line_number, product_id, product_name,"
                    " unit_price, quantity, line_total, currency) VALUES (?, 0, ?, ?, ?, 1, ?, ?)",
                    (order_id, product_id, product_name, price, total, currency),
                ),
            ],
        ),
    ]
    for projection, statements in projections:
        await write.execute("BEGIN IMMEDIATE")
        for sql, parameters in statements:
            await write.execute(sql, parameters)
        await write.execute(
            "UPDATE projection_checkpoints SET position = max(position, ?), parked_error = NULL"
            " WHERE name = ?",
            (positions[-1], projection),
        )
        await write.execute("COMMIT")

    # 5. the payload
    await read.execute("BEGIN")
    await read.execute_fetchall("SELECT * FROM order_summaries WHERE id IN (?)", (order_id,))
    await read.execute("ROLLBACK")


async def bare_phase(fixture: BareFixture, seconds: float, numbers: Iterator[int]) -> BareStats:
    """CONNECTIONS callers, each with a write and a read connection as the app's engines have,
    placing bare orders one after another until the time is up."""
    latencies: list[float] = []

    async def caller() -> None:
        write, read = await open_bare(fixture.path), await open_bare(fixture.path)
        try:
            while time.perf_counter() < deadline:
                began = time.perf_counter()
                await bare_order(write, read, fixture, next(numbers))
                latencies.append(time.perf_counter() - began)
        finally:
            await write.close()
            await read.close()

    started = time.perf_counter()
    deadline = started + seconds
    async with asyncio.TaskGroup() as group:
        for _ in range(CONNECTIONS):
            group.create_task(caller())
    elapsed = time.perf_counter() - started
    p50, p99 = percentiles(latencies)
    return BareStats(len(latencies), len(latencies) / elapsed, p50, p99)


def percentiles(seconds: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000


def measure_bare(directory: Path, duration: float, warmup: float) -> BareStats:
    fixture = make_bare_fixture(directory)
    numbers = itertools.count()
    if warmup > 0:
        asyncio.run(bare_phase(fixture, warmup, numbers))
    stats = asyncio.run(bare_phase(fixture, duration, numbers))
    print(f"  measured bare aiosqlite order: {stats.orders_per_second:,.0f} orders/s", flush=True)
    return stats


# ---------------------------------------------------------------- printing


@dataclass(frozen=True)
class Ratio:
    label: str
    value: float
    target: float
    at_least: bool
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.value >= self.target if self.at_least else self.value <= self.target


def print_table(title: str, rows: Sequence[Row], bare: BareStats | None = None) -> None:
    print(f"\n{title}")
    print(f"  {'target':<48} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9}")
    for row in rows:
        s = row.stats
        print(
            f"  {row.target:<48} {s.requests_per_second:>10,.0f} {s.p50_ms:>9.2f} {s.p99_ms:>9.2f}"
        )
    if bare is not None:
        name = "bare aiosqlite order (orders/s)"
        print(
            f"  {name:<48} {bare.orders_per_second:>10,.0f} {bare.p50_ms:>9.2f} {bare.p99_ms:>9.2f}"
        )
    for row in rows:
        if row.stats.socket_errors:
            print(f"  ! {row.target}: socket errors: {row.stats.socket_errors}")


def print_ratios(ratios: Sequence[Ratio]) -> None:
    print("\ntargets")
    for r in ratios:
        sign = ">=" if r.at_least else "<="
        verdict = "PASS" if r.passed else "MISS"
        note = f"  ({r.note})" if r.note else ""
        print(f"  {r.label:<52} {r.value:6.3f}  target {sign} {r.target:<5} {verdict}{note}")


def read_ratios(rows: dict[str, WrkStats]) -> list[Ratio]:
    def rate(name: str) -> float:
        return rows[name].requests_per_second

    plain = rate("Strawberry {hello}")
    return [
        Ratio(
            "product(id), query cache off / Strawberry {hello}",
            rate("orderdesk product(id), ORDERDESK_QUERY_CACHE=false") / plain,
            1.0,
            at_least=True,
        ),
        Ratio(
            "product(id), query cache on / Strawberry {hello}",
            rate("orderdesk product(id), ORDERDESK_QUERY_CACHE=true") / plain,
            2.0,
            at_least=True,
        ),
        Ratio(
            "products(first: 20) / Strawberry {hello}",
            rate("orderdesk products(first: 20)") / plain,
            0.6,
            at_least=True,
        ),
        Ratio(
            "orders(first: 20) nested / Strawberry {hello}",
            rate("orderdesk orders(first: 20), staff") / plain,
            0.3,
            at_least=True,
        ),
        Ratio(
            "{__typename} / Strawberry + caches {hello}",
            rate("orderdesk {__typename}") / rate("Strawberry + caches {hello}"),
            0.8,
            at_least=True,
        ),
    ]


def write_ratios(place_order: WrkStats, bare: BareStats) -> list[Ratio]:
    return [
        Ratio(
            "placeOrder / bare aiosqlite order",
            place_order.requests_per_second / bare.orders_per_second,
            0.5,
            at_least=True,
        ),
        Ratio("placeOrder p99 / p50", place_order.p99_ms / place_order.p50_ms, 4.0, at_least=False),
    ]


def memory_ratio(memory: Memory) -> Ratio:
    first, last = RSS_COUNTS
    return Ratio(
        f"RSS after {last:,} / after {first:,} product(id) requests",
        memory.after_kib[last] / memory.after_kib[first],
        1.10,
        at_least=False,
        note=f"{memory.after_kib[first] / 1024:.1f} -> {memory.after_kib[last] / 1024:.1f} MiB",
    )


# ---------------------------------------------------------------- the runs


@dataclass(frozen=True)
class Run:
    directory: Path
    wrk: Wrk
    reads: bool
    writes: bool
    rss: bool


def measure_baselines(run: Run) -> list[Row]:
    labels = {
        "raw": "raw Starlette JSON",
        "graphql-core": "graphql-core, cached {hello}",
        "strawberry": "Strawberry {hello}",
        "strawberry-cached": "Strawberry + caches {hello}",
    }
    rows = []
    for name, label in labels.items():
        port = free_port()
        argv = [sys.executable, "-m", "benchmarks.http", "--serve-baseline", name]
        with served(
            label,
            [*argv, "--port", str(port)],
            port,
            cwd=REPO,
            env={},
            logs=run.directory,
            ready_path=None,
        ) as server:
            data = check_once(server.url, body_of(HELLO), None, label)
            if data != RAW_BODY["data"]:
                fail(f"{label} answered {data}")
            rows.append(measure_target(run.wrk, server, Target(label, body_of(HELLO))))
    return rows


@contextmanager
def app_server(
    run: Run, name: str, database_url: str, workers: int = 1, **env: str
) -> Iterator[Server]:
    port = free_port()
    with served(
        name,
        app_server_argv(port, workers),
        port,
        cwd=run.directory,
        env=app_env(database_url, **env),
        logs=run.directory,
        ready_path="/health/ready",
    ) as server:
        yield server


def run_sqlite(run: Run) -> None:
    database_url = f"sqlite+aiosqlite:///{run.directory / 'bench.db'}"
    if "query_cache" not in Settings.model_fields:
        print("  note: Settings has no query_cache yet; ORDERDESK_QUERY_CACHE changes nothing")
    rows: list[Row] = measure_baselines(run) if run.reads else []
    with app_server(run, "orderdesk, seeding", database_url) as server:
        seeded = seed_and_report(server.url)
    # Each part below gets a fresh process on the seeded database, so that no figure carries
    # what seeding or another part left behind (garbage, the projector's backlog).
    if run.reads:
        with app_server(run, "orderdesk", database_url, ORDERDESK_QUERY_CACHE="true") as server:
            for target in app_read_targets(seeded, product_suffix=", ORDERDESK_QUERY_CACHE=true"):
                rows.append(measure_target(run.wrk, server, target))
        with app_server(
            run, "orderdesk, no query cache", database_url, ORDERDESK_QUERY_CACHE="false"
        ) as server:
            target = product_target(seeded, ", ORDERDESK_QUERY_CACHE=false")
            rows.append(measure_target(run.wrk, server, target))
    memory: Memory | None = None
    if run.rss:
        # The counts are requests since the process started.
        with app_server(run, "orderdesk, memory", database_url) as server:
            memory = measure_rss(run.wrk, server, product_target(seeded))
    place_order: Row | None = None
    if run.writes:
        with app_server(run, "orderdesk, writes", database_url) as server:
            place_order = measure_place_order(run.wrk, server, seeded, "orderdesk placeOrder")
    bare = measure_bare(run.directory, run.wrk.duration, run.wrk.warmup) if run.writes else None
    if place_order is not None:
        rows.append(place_order)
    print_table(f"SQLite, 1 worker, wrk 1 thread {CONNECTIONS} connections", rows, bare)
    ratios: list[Ratio] = []
    if run.reads:
        ratios += read_ratios({row.target: row.stats for row in rows})
    if place_order is not None and bare is not None:
        ratios += write_ratios(place_order.stats, bare)
    if memory is not None:
        ratios.append(memory_ratio(memory))
    print_ratios(ratios)


def run_postgres(run: Run, database_url: str) -> None:
    asyncio.run(create_database(database_url))
    try:
        migrate = subprocess.run(
            [str(Path(sys.executable).with_name("orderdesk")), "migrate"],
            cwd=run.directory,
            env={**os.environ, **app_env(database_url)},
            capture_output=True,
            text=True,
            check=False,
        )
        if migrate.returncode != 0:
            fail(f"orderdesk migrate failed:\n{migrate.stdout}{migrate.stderr}")
        rows = []
        # Migrated above, so that the two workers do not both migrate at start-up.
        with app_server(run, "orderdesk on PostgreSQL", database_url, workers=2) as server:
            seeded = seed_and_report(server.url)
            if run.reads:
                rows += [measure_target(run.wrk, server, t) for t in app_read_targets(seeded)]
            if run.writes:
                rows.append(measure_place_order(run.wrk, server, seeded, "orderdesk placeOrder"))
        print_table(f"PostgreSQL, 2 workers, wrk 1 thread {CONNECTIONS} connections", rows)
        print(
            f"  note: wrk, both workers and PostgreSQL share this machine's {os.cpu_count()} "
            "cores; no targets are set for these figures"
        )
    finally:
        asyncio.run(drop_database(database_url))


def _maintenance(database_url: str) -> tuple[dict[str, Any], str]:
    """asyncpg's connection arguments for the server's `postgres` database, and our name."""
    url = make_url(database_url)
    if not url.database:
        fail(f"{database_url} names no database")
    arguments = {"host": url.host, "port": url.port, "user": url.username}
    arguments |= {"password": url.password, "database": "postgres"}
    return arguments, str(url.database)


async def create_database(database_url: str) -> None:
    arguments, name = _maintenance(database_url)
    connection = await asyncpg.connect(**arguments)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    except asyncpg.DuplicateDatabaseError:
        fail(f"database {name} exists; drop it (it is dropped after each run) or name another")
    finally:
        await connection.close()


async def drop_database(database_url: str) -> None:
    arguments, name = _maintenance(database_url)
    connection = await asyncpg.connect(**arguments)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="timed seconds per target")
    parser.add_argument("--warmup", type=float, default=2.0, help="untimed seconds per target")
    parser.add_argument("--only", choices=["reads", "writes"], help="one part only")
    parser.add_argument("--skip-rss", action="store_true", help="skip the 100,000 requests")
    parser.add_argument("--postgres", metavar="URL", help="also run on this new database")
    parser.add_argument("--serve-baseline", choices=sorted(BASELINES), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=8000, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve_baseline:
        serve_baseline(arguments.serve_baseline, arguments.port)
        return
    require_wrk()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="orderdesk-http-") as directory:
        reads = arguments.only != "writes"
        run = Run(
            directory=Path(directory),
            wrk=Wrk(Path(directory), arguments.duration, arguments.warmup),
            reads=reads,
            writes=arguments.only != "reads",
            rss=reads and not arguments.skip_rss,
        )
        print("SQLite")
        run_sqlite(run)
        if arguments.postgres:
            print("\nPostgreSQL")
            postgres_directory = run.directory / "postgres"
            postgres_directory.mkdir()
            run_postgres(
                Run(postgres_directory, run.wrk, run.reads, run.writes, rss=False),
                arguments.postgres,
            )
    print(f"\nthe whole run took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
