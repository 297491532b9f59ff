"""Whether a write the API acknowledged survives kill -9, and whether a client that retries
after a crash gets each write done exactly once.

Run: ``python benchmarks/crash.py --database sqlite --crashes 3`` from the repository root
(or ``python -m benchmarks.crash``); ``--database postgres`` creates a database of its own on
``--postgres-server`` (postgresql+asyncpg://postgres@127.0.0.1:5432) and drops it at the end.
Options: ``--workers`` (1 on SQLite, 2 on PostgreSQL), ``--clients 16``, ``--seconds 10``
(of writes before each crash, at most), ``--seed 1`` (fixes each client's choices and the
kill moments, not how the clients interleave), ``--keep`` (keep the run's directory) and
``--order-keys-only`` (send idempotencyKey to placeOrder only, whatever the schema takes).

``orderdesk serve`` runs in a process group of its own, with rate limits off. Staff create a
few products with known stock; each client registers a customer, then places orders, has
them confirmed, cancels some and restocks products, keeping a ledger of what the API
acknowledged: a ...Success payload, or READ_MODEL_LAGGING (committed; the error's extensions
hold the id and version). At random moments the whole group gets SIGKILL and a new server
starts on the same database. A request whose answer was lost (a dropped connection, a 5xx)
has an unknown outcome, so the client sends the very same request again, with the same
idempotencyKey where the input takes one (introspected: placeOrder always; restockProduct,
confirmOrder and cancelOrder once the schema has it), until it is answered. confirmOrder and
cancelOrder also carry expectedVersion, so that without a key a ConflictError one version on
(on an order that only this client changes) says that the lost attempt was applied. A
restock without a key is never sent again: its outcome stays unknown, and the checks say so.

The checks, each PASS or FAIL with its figures (any FAIL exits 1):
(a) every acknowledged order is there, at the status and version the ledger holds;
(b) nothing is doubled or lost: no order beyond the ledger's; each product's stock is its
    initial stock plus its acknowledged restocks minus the lines of its orders that were
    not cancelled; and no outcome stayed unknown;
(c) the read models equal a replay of the log: every product, customer and order read
    through the API, then ``orderdesk projections rebuild`` with the server stopped, then
    read again, field by field;
(d) /health/ready answers 200 at the end and no projection is parked.
The servers' output (and the SQLite database) stay in the run's directory, whose path is
printed; it is removed at the end only when every check passed and ``--keep`` is not given.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

# Run as a script, Python puts benchmarks/ first on sys.path, where benchmarks/http.py would
# shadow the standard library's `http` (which httpx imports); the root goes there.
REPO = Path(__file__).resolve().parent.parent
sys.path[0] = str(REPO)

import httpx  # noqa: E402

from benchmarks.http import (  # noqa: E402
    ADDRESS,
    app_env,
    body_of,
    create_database,
    drop_database,
    free_port,
    headers_for,
    staff_token,
    stop,
    tail,
)

POSTGRES_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432"
PRODUCTS = 6
INITIAL_STOCK = 100_000  # far more than a run orders, so OutOfStockError stays rare
READY_TIMEOUT = 60.0
RESOLVE_TIMEOUT = 120.0  # how long a client keeps sending one write
MAX_LOST_ANSWERS = 20  # 5xx answers to one write from a running server: a bug, not a crash
RETRY_PAUSE = 0.2
COMMAND_TIMEOUT = 180.0
KILL_TIMEOUT = 10.0
HTTP_TIMEOUT = httpx.Timeout(15.0, connect=2.0)  # longer than execution_timeout (10 s)
# Answers that do not tell whether the write happened; any other error is a bug.
UNKNOWN_CODES = {"SERVICE_UNAVAILABLE", "INTERNAL_SERVER_ERROR", "EXECUTION_TIMEOUT"}

ERRORS = "__typename ... on Error { message }"
# Only the moves of an existing order or product can meet a stale version or a transition.
MOVE_ERRORS = f"{ERRORS} ... on ConflictError {{ actualVersion }}"


def order_mutation(name: str, input_type: str, *, moves: bool = True) -> str:
    success = name[0].upper() + name[1:] + "Success"
    errors = f"{MOVE_ERRORS} ... on InvalidTransitionError {{ from }}" if moves else ERRORS
    return f"""mutation($input: {input_type}!) {{ {name}(input: $input) {{ {errors}
        ... on {success} {{ order {{ id status version }} }} }} }}"""


MUTATIONS = {
    "placeOrder": order_mutation("placeOrder", "PlaceOrderInput", moves=False),
    "confirmOrder": order_mutation("confirmOrder", "ChangeOrderInput"),
    "cancelOrder": order_mutation("cancelOrder", "CancelOrderInput"),
    "restockProduct": f"""mutation($input: RestockProductInput!) {{
        restockProduct(input: $input) {{ {MOVE_ERRORS} }} }}""",
}
# The inputs that may or may not take an idempotencyKey yet (placeOrder's always has).
KEYABLE = {
    "restockProduct": "RestockProductInput",
    "confirmOrder": "ChangeOrderInput",
    "cancelOrder": "CancelOrderInput",
}
CREATE_PRODUCT = """mutation($input: CreateProductInput!) { createProduct(input: $input) {
    __typename ... on CreateProductSuccess { product { id } } } }"""
REGISTER = """mutation($input: RegisterCustomerInput!) { registerCustomer(input: $input) {
    __typename ... on RegisterCustomerSuccess { accessToken } } }"""
MONEY = "{ amount currency }"
# Every field the API shows of each read model: (the connection, a node).
PAGES = {
    "products": (
        "products(first: 100, after: $after, sort: NEWEST)",
        f"id sku name description price {MONEY} stock version createdAt updatedAt",
    ),
    "customers": (
        "customers(first: 100, after: $after)",
        f"id name email registeredAt orderCount lifetimeValue {MONEY} version",
    ),
    "orders": (
        "orders(first: 30, after: $after, sort: OLDEST)",  # within max_query_cost
        f"""id status lineCount total {MONEY} specialInstructions placedAt updatedAt version
        shippingAddress {{ street city state postalCode country }} customer {{ id }}
        lines {{ product {{ id }} productName unitPrice {MONEY} quantity lineTotal {MONEY} }}""",
    ),
}


class Broken(RuntimeError):
    """Something this script cannot account for: a bug here or in the server."""


# ---------------------------------------------------------------- the server, killed


class Server:
    """`orderdesk serve` in a process group of its own, started again on the same port."""

    def __init__(self, workers: int, env: dict[str, str], directory: Path) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        self.env = {**os.environ, **env}
        self.directory = directory
        self.log = directory / "server.log"
        self.orderdesk_path = str(Path(sys.executable).with_name("orderdesk"))
        port = self.url.rsplit(":", 1)[1]
        self.argv = [self.orderdesk_path, "serve", "--port", port, "--workers", str(workers)]
        self.process: subprocess.Popen[bytes] | None = None

    def note(self, line: str) -> None:
        with self.log.open("a") as log:
            log.write(f"\n===== {line} =====\n")

    def spawn(self) -> subprocess.Popen[bytes]:
        self.note("orderdesk serve")
        with self.log.open("ab") as output:
            return subprocess.Popen(
                self.argv,
                cwd=self.directory,
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a group of its own, which SIGKILL ends whole
            )

    async def start(self) -> float:
        """Seconds from starting the process until /health/ready answered 200."""
        started = time.monotonic()
        self.process = process = self.spawn()
        async with httpx.AsyncClient(timeout=2.0) as http:
            while time.monotonic() - started < READY_TIMEOUT:
                if process.poll() is not None:
                    raise Broken(f"the server exited with {process.returncode}:\n{tail(self.log)}")
                with suppress(httpx.TransportError):
                    if (await http.get(self.url + "/health/ready")).status_code == 200:
                        return time.monotonic() - started
                await asyncio.sleep(0.1)
        raise Broken(f"the server was not ready within {READY_TIMEOUT} s:\n{tail(self.log)}")

    async def kill(self) -> int:
        """SIGKILL to the whole group (uvicorn's --workers children too); how many it hit."""
        assert self.process is not None
        group = self.process.pid
        hit = len(living_members(group))
        self.note(f"SIGKILL to {hit} processes")
        with suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        self.process.wait(KILL_TIMEOUT)
        deadline = time.monotonic() + KILL_TIMEOUT
        while living_members(group):  # the workers are not our children to wait for
            if time.monotonic() > deadline:
                raise Broken(f"processes of group {group} outlived SIGKILL")
            await asyncio.sleep(0.05)
        return hit

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)  # SIGTERM, then SIGKILL to the group if it lingers

    def orderdesk(self, *arguments: str) -> str:
        """Run an `orderdesk` command on the server's database; its output goes to the log."""
        self.note(f"orderdesk {' '.join(arguments)}")
        done = subprocess.run(
            [self.orderdesk_path, *arguments],
            cwd=self.directory,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        with self.log.open("a") as log:
            log.write(done.stdout + done.stderr)
        if done.returncode != 0:
            raise Broken(f"orderdesk {arguments[0]} exited with {done.returncode}:\n{done.stderr}")
        return done.stdout


def living_members(group: int) -> list[int]:
    """The processes of a group that are not zombies (which only their parent can reap)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError, ValueError):
            # The command name, in parentheses, may hold spaces; the fields after it do not.
            state, _parent, process_group = stat.read_text().rsplit(")", 1)[1].split()[:3]
            if int(process_group) == group and state != "Z":
                members.append(int(stat.parent.name))
    return members


# ---------------------------------------------------------------- writes and their outcomes


@dataclass(frozen=True)
class Answer:
    """What a write came to: `success` (the payload), `committed` (READ_MODEL_LAGGING: its
    extensions, with id and version) or `refused` (a typed error); or, when no answer told,
    `unknown` (not sent again) or `unresolved` (sent again until the limits)."""

    kind: str
    result: dict[str, Any]
    lost: int = 0  # answers lost, or that did not tell whether the write happened
    last_lost: str = ""


def answer_of(response: httpx.Response) -> Answer | str:
    """The answer in a response, or what it was when it does not tell (a 5xx, say)."""
    try:
        payload = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    errors = payload.get("errors") or []
    for error in errors:
        if (error.get("extensions") or {}).get("code") == "READ_MODEL_LAGGING":
            return Answer("committed", error["extensions"])
    if errors:
        codes = {(e.get("extensions") or {}).get("code") for e in errors}
        if codes <= UNKNOWN_CODES:
            return f"HTTP {response.status_code} {'+'.join(sorted(map(str, codes)))}"
        raise Broken(f"unexpected errors ({response.status_code}): {response.text[:1000]}")
    (result,) = payload["data"].values()
    return Answer("success" if result["__typename"].endswith("Success") else "refused", result)


async def send(
    http: httpx.AsyncClient,
    query: str,
    values: dict[str, Any],
    token: str | None,
    *,
    again: bool = True,
) -> Answer:
    """Send a write until it is answered; after a lost answer, only if `again` is true."""
    body, headers = body_of(query, {"input": values}), headers_for(token)
    lost = answered = 0
    last = ""
    deadline = time.monotonic() + RESOLVE_TIMEOUT
    while time.monotonic() < deadline and answered < MAX_LOST_ANSWERS:
        try:
            response = await http.post("/graphql", content=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
            pass  # never sent: the server is down, or not up yet
        except httpx.TransportError as error:
            lost, last = lost + 1, type(error).__name__
        else:
            answer = answer_of(response)
            if isinstance(answer, Answer):
                return replace(answer, lost=lost, last_lost=last)
            lost, answered, last = lost + 1, answered + 1, answer
        if lost and not again:
            return Answer("unknown", {}, lost, last)
        await asyncio.sleep(RETRY_PAUSE)
    return Answer("unresolved", {}, lost, last)


@dataclass
class OrderEntry:
    lines: dict[str, int]  # product id: quantity
    status: str
    version: int


ACKNOWLEDGED = {"success": "acknowledged", "committed": "acknowledged: READ_MODEL_LAGGING"}


@dataclass
class Ledger:
    """What the API acknowledged, and how each write ended."""

    orders: dict[str, OrderEntry] = field(default_factory=dict)
    restocked: Counter[str] = field(default_factory=Counter)  # product id: quantity
    doubtful: Counter[str] = field(default_factory=Counter)  # restocks of unknown outcome
    endings: Counter[tuple[str, str]] = field(default_factory=Counter)
    unknown: int = 0

    def count(self, mutation: str, answer: Answer, ending: str = "") -> None:
        if answer.kind in ("unknown", "unresolved"):
            self.unknown += 1
            ending = f"{answer.kind}, the last attempt: {answer.last_lost}"
        else:
            refused = f"refused: {answer.result.get('__typename')}"
            ending = ending or ACKNOWLEDGED.get(answer.kind) or refused
            if answer.lost:
                ending = f"after {answer.last_lost}: {ending}"
        self.endings[mutation, ending] += 1


# ---------------------------------------------------------------- the clients


@dataclass(frozen=True)
class Shop:
    """What every client shares: the connections, the ledger, the catalog, staff's token."""

    http: httpx.AsyncClient
    ledger: Ledger
    staff: str
    products: list[str]
    keyed: set[str]  # the mutations whose input takes an idempotencyKey


@dataclass
class Client:
    """One customer's writes, and restocks as staff; only this client changes its orders."""

    shop: Shop
    token: str
    name: str
    rng: random.Random
    mine: list[str] = field(default_factory=list)
    keys: itertools.count[int] = field(default_factory=itertools.count)

    async def run(self, stopping: asyncio.Event) -> None:
        orders = self.shop.ledger.orders
        while not stopping.is_set():
            pending = [i for i in self.mine if orders[i].status == "PENDING"]
            cancellable = pending + [i for i in self.mine if orders[i].status == "CONFIRMED"]
            roll = self.rng.random()
            if roll < 0.2:
                await self.restock()
            elif roll < 0.4 and pending:
                await self.change("confirmOrder", self.rng.choice(pending), "CONFIRMED")
            elif roll < 0.5 and cancellable:
                await self.change("cancelOrder", self.rng.choice(cancellable), "CANCELLED")
            else:
                await self.place()

    async def send(self, mutation: str, token: str, **values: Any) -> Answer:
        keyed = mutation in self.shop.keyed
        if keyed:
            values["idempotencyKey"] = f"{mutation}-{self.name}-{next(self.keys)}"
        # Without a key, a restock sent again after a lost answer might be applied twice.
        again = keyed or mutation != "restockProduct"
        return await send(self.shop.http, MUTATIONS[mutation], values, token, again=again)

    async def place(self) -> None:
        chosen = self.rng.sample(self.shop.products, self.rng.randint(1, 3))
        lines = {product: self.rng.randint(1, 5) for product in chosen}
        wanted = [{"productId": p, "quantity": q} for p, q in lines.items()]
        answer = await self.send("placeOrder", self.token, lines=wanted, shippingAddress=ADDRESS)
        self.shop.ledger.count("placeOrder", answer)
        if answer.kind == "success":
            order = answer.result["order"]
            self.keep(order["id"], OrderEntry(lines, order["status"], order["version"]))
        elif answer.kind == "committed":
            self.keep(answer.result["id"], OrderEntry(lines, "PENDING", answer.result["version"]))

    def keep(self, order_id: str, entry: OrderEntry) -> None:
        if order_id in self.shop.ledger.orders:
            raise Broken(f"placeOrder answered {order_id} for two keys")
        self.shop.ledger.orders[order_id] = entry
        self.mine.append(order_id)

    async def change(self, mutation: str, order_id: str, target: str) -> None:
        entry = self.shop.ledger.orders[order_id]
        token = self.shop.staff if mutation == "confirmOrder" else self.token
        answer = await self.send(mutation, token, id=order_id, expectedVersion=entry.version)
        ending = ""
        if answer.kind == "success":
            entry.status, entry.version = target, answer.result["order"]["version"]
        elif answer.kind == "committed":
            entry.status, entry.version = target, answer.result["version"]
        elif answer.lost and applied_before(answer, entry.version, target):
            entry.status, entry.version = target, entry.version + 1
            ending = f"{answer.result['__typename']}: the lost attempt was applied"
        self.shop.ledger.count(mutation, answer, ending)

    async def restock(self) -> None:
        product, quantity = self.rng.choice(self.shop.products), self.rng.randint(1, 20)
        answer = await self.send("restockProduct", self.shop.staff, id=product, quantity=quantity)
        self.shop.ledger.count("restockProduct", answer)
        if answer.kind in ("success", "committed"):
            self.shop.ledger.restocked[product] += quantity
        elif answer.kind in ("unknown", "unresolved"):
            self.shop.ledger.doubtful[product] += quantity


def applied_before(answer: Answer, version: int, target: str) -> bool:
    """Whether the refusal of a retry says that the lost attempt was applied."""
    result = answer.result
    if answer.kind != "refused":
        return False
    if result["__typename"] == "ConflictError":
        return bool(result["actualVersion"] == version + 1)
    return bool(result["__typename"] == "InvalidTransitionError" and result["from"] == target)


# ---------------------------------------------------------------- the experiment

Snapshot = dict[str, dict[str, dict[str, Any]]]  # read model: id: node, as the API shows it


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    figures: str


@dataclass
class Run:
    server: Server
    arguments: argparse.Namespace
    ledger: Ledger = field(default_factory=Ledger)
    restarts: list[float] = field(default_factory=list)  # seconds from SIGKILL to ready
    checks: list[Check] = field(default_factory=list)


async def read(http: httpx.AsyncClient, query: str, token: str, **variables: Any) -> Any:
    body, headers = body_of(query, variables), headers_for(token)
    response = await http.post("/graphql", content=body, headers=headers)
    if response.status_code != 200 or response.json().get("errors"):
        raise Broken(f"a read answered {response.status_code}: {response.text[:1000]}")
    return response.json()["data"]


async def seed(run: Run, http: httpx.AsyncClient, staff: str) -> tuple[dict[str, int], list[str]]:
    """Products with their initial stock, and a token for each client's new customer."""
    products, tokens = {}, []
    for n in range(PRODUCTS):
        values = {"sku": f"CRASH-{n}", "name": f"Product {n}", "price": f"{n + 1}.25"}
        answer = await send(http, CREATE_PRODUCT, values | {"stock": INITIAL_STOCK}, staff)
        products[succeeded(answer)["product"]["id"]] = INITIAL_STOCK
    for n in range(run.arguments.clients):
        values = {"name": f"Customer {n}", "email": f"crash{n}@example.com"}
        tokens.append(succeeded(await send(http, REGISTER, values, None))["accessToken"])
    return products, tokens


def succeeded(answer: Answer) -> dict[str, Any]:
    if answer.kind != "success":
        raise Broken(f"seeding came to {answer}")
    return answer.result


async def keyed_mutations(http: httpx.AsyncClient, staff: str) -> set[str]:
    """The mutations whose input takes an idempotencyKey."""
    fields = " ".join(
        f'{mutation}: __type(name: "{name}") {{ inputFields {{ name }} }}'
        for mutation, name in KEYABLE.items()
    )
    found = await read(http, f"{{ {fields} }}", staff)
    return {"placeOrder"} | {
        mutation
        for mutation, kind in found.items()
        if "idempotencyKey" in {f["name"] for f in kind["inputFields"]}
    }


async def crash_cycles(run: Run, rng: random.Random, stopping: asyncio.Event) -> None:
    """SIGKILL at a random moment of each cycle, then a server again on the same database."""
    try:
        for crash in range(1, run.arguments.crashes + 1):
            await asyncio.sleep(rng.uniform(0.3, 1.0) * run.arguments.seconds)
            killed_at = time.monotonic()
            hit = await run.server.kill()
            start_to_ready = await run.server.start()
            run.restarts.append(time.monotonic() - killed_at)
            writes = sum(run.ledger.endings.values())
            print(
                f"  crash {crash}: SIGKILL to {hit} processes after {writes:,} writes, ready"
                f" again {run.restarts[-1]:.2f} s later ({start_to_ready:.2f} s from start)",
                flush=True,
            )
        await asyncio.sleep(run.arguments.seconds / 2)  # writes after the last restart too
    finally:
        stopping.set()


async def caught_up(server: Server) -> str:
    """`projections status` once every projection has reached the log's head, or parked."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        status = server.orderdesk("projections", "status")
        behind = [int(n) for n in re.findall(r"\((\d+) behind\)", status)]
        if (behind and not any(behind)) or "parked" in status:
            return status
        if time.monotonic() > deadline:
            raise Broken(f"the projections did not catch up:\n{status}")
        await asyncio.sleep(0.5)


async def snapshot(http: httpx.AsyncClient, staff: str) -> Snapshot:
    taken: Snapshot = {}
    for kind, (connection, node) in PAGES.items():
        query = f"""query($after: String) {{ {connection} {{
            pageInfo {{ hasNextPage endCursor }} edges {{ node {{ {node} }} }} }} }}"""
        taken[kind], after = {}, None
        while True:
            (page,) = (await read(http, query, staff, after=after)).values()
            taken[kind].update((edge["node"]["id"], edge["node"]) for edge in page["edges"])
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
    return taken


def some(label: str, items: list[str]) -> str:
    """A few of what failed a check, to add to its figures."""
    return f"; {label}: {', '.join(items[:5])}" if items else ""


def order_checks(ledger: Ledger, seen: Snapshot) -> list[Check]:
    orders = seen["orders"]
    wrong = [
        order_id
        for order_id, entry in ledger.orders.items()
        if (order := orders.get(order_id)) is None
        or (order["status"], order["version"]) != (entry.status, entry.version)
    ]
    extra = sorted(orders.keys() - ledger.orders.keys())
    acknowledged = len(ledger.orders)
    return [
        Check(
            "(a) every acknowledged order is there, at its status and version",
            not wrong,
            f"{acknowledged - len(wrong):,} of {acknowledged:,}" + some("not", wrong),
        ),
        Check(
            "(b) no order beyond the ledger's",
            not extra,
            f"{len(orders):,} read, {acknowledged:,} acknowledged" + some("extra", extra),
        ),
    ]


def stock_check(ledger: Ledger, initial: dict[str, int], seen: Snapshot) -> Check:
    reserved: Counter[str] = Counter()
    for entry in ledger.orders.values():
        if entry.status != "CANCELLED":
            reserved.update(entry.lines)
    off, surplus = [], 0
    for product, start in initial.items():
        expected = start + ledger.restocked[product] - reserved[product]
        actual = seen["products"][product]["stock"]
        surplus += actual - expected
        # A restock of unknown outcome may be in it or not, but nothing else may be.
        if not expected <= actual <= expected + ledger.doubtful[product]:
            off.append(f"{product} reads {actual:,}, the ledger says {expected:,}")
    figures = (
        f"{len(initial) - len(off)} of {len(initial)} products; "
        f"{sum(ledger.restocked.values()):,} restocked, {sum(reserved.values()):,} reserved"
    )
    if doubtful := sum(ledger.doubtful.values()):
        figures += f"; of {doubtful:,} restocked with an unknown outcome, {surplus:,} are in"
    name = "(b) stock = initial + acknowledged restocks - lines not cancelled"
    return Check(name, not off, figures + some("off", off))


def differences(before: Snapshot, after: Snapshot) -> list[str]:
    found = []
    for kind in PAGES:
        old, new = before[kind], after[kind]
        for key in sorted(old.keys() | new.keys()):
            if key not in old or key not in new:
                found.append(f"{kind} {key} only {'after' if key in new else 'before'} the rebuild")
                continue
            found += [
                f"{kind} {key} {name}: {old[key][name]!r} before, {new[key].get(name)!r} after"
                for name in old[key]
                if old[key][name] != new[key].get(name)
            ]
    return found


async def replay_check(run: Run, http: httpx.AsyncClient, staff: str, before: Snapshot) -> Check:
    """The read models as served, against the same after `projections rebuild`."""
    run.server.stop()
    run.server.orderdesk("projections", "rebuild")
    await run.server.start()
    await caught_up(run.server)
    found = differences(before, await snapshot(http, staff))
    figures = f"{sum(map(len, before.values())):,} rows compared, {len(found)} differ"
    figures += "".join(f"\n        {difference}" for difference in found[:10])
    return Check("(c) the read models equal a replay of the log", not found, figures)


async def readiness(http: httpx.AsyncClient, server: Server) -> Check:
    response = await http.get("/health/ready")
    parked = [line for line in (await caught_up(server)).splitlines() if "parked" in line]
    return Check(
        "(d) /health/ready answers 200 and no projection is parked",
        response.status_code == 200 and not parked,
        f"{response.status_code} {response.text}" + some("parked", parked),
    )


async def experiment(run: Run) -> None:
    staff = staff_token()
    print(f"  server ready after {await run.server.start():.2f} s", flush=True)
    limits = httpx.Limits(max_connections=run.arguments.clients + 4)
    url = run.server.url
    async with httpx.AsyncClient(base_url=url, timeout=HTTP_TIMEOUT, limits=limits) as http:
        initial, tokens = await seed(run, http, staff)
        keyed = (
            {"placeOrder"} if run.arguments.order_keys_only else await keyed_mutations(http, staff)
        )
        shop = Shop(http, run.ledger, staff, list(initial), keyed)
        print(f"  idempotencyKey sent to: {', '.join(sorted(keyed))}", flush=True)
        seed_of = run.arguments.seed
        clients = [
            Client(shop, token, f"c{n}", random.Random(f"{seed_of}:{n}"))
            for n, token in enumerate(tokens)
        ]
        stopping = asyncio.Event()
        async with asyncio.TaskGroup() as group:
            for client in clients:
                group.create_task(client.run(stopping))
            group.create_task(crash_cycles(run, random.Random(seed_of), stopping))
        await caught_up(run.server)
        before = await snapshot(http, staff)
        run.checks += order_checks(run.ledger, before)
        run.checks.append(stock_check(run.ledger, initial, before))
        unknown = run.ledger.unknown
        run.checks.append(Check("(b) no outcome left unknown", not unknown, f"{unknown} unknown"))
        run.checks.append(await replay_check(run, http, staff, before))
        run.checks.append(await readiness(http, run.server))


def print_summary(run: Run) -> None:
    endings, unknown = run.ledger.endings, run.ledger.unknown
    print("\nwrites, by how they ended:")
    for (mutation, ending), count in sorted(endings.items()):
        print(f"  {mutation:<15} {ending:<70} {count:>7,}")
    acknowledged = sum(n for (_, e), n in endings.items() if "acknowledged" in e or "applied" in e)
    resolved = sum(n for (_, e), n in endings.items() if e.startswith("after "))
    print(
        f"acknowledged: {acknowledged:,} of {sum(endings.values()):,} writes; unknown"
        f" outcomes: {resolved + unknown:,}, resolved by a retry: {resolved:,}"
    )
    if run.restarts:
        median, longest = statistics.median(run.restarts), max(run.restarts)
        times = f"median {median:.2f} s, max {longest:.2f} s"
        print(f"crashes: {len(run.restarts)}; SIGKILL to ready: {times}")
    for check in run.checks:
        print(f"  {'PASS' if check.passed else 'FAIL'}  {check.name}: {check.figures}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--postgres-server", default=POSTGRES_SERVER, help="where to create it")
    parser.add_argument("--workers", type=int, help="1 on SQLite, 2 on PostgreSQL")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--crashes", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="of writes per crash, at most")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the run's directory")
    parser.add_argument(
        "--order-keys-only",
        action="store_true",
        help="send idempotencyKey to placeOrder only, as a client written before the others had it",
    )
    arguments = parser.parse_args()
    postgres = arguments.database == "postgres"
    workers = arguments.workers or (2 if postgres else 1)
    directory = Path(tempfile.mkdtemp(prefix="orderdesk-crash-"))
    database_url = f"sqlite+aiosqlite:///{directory / 'orderdesk.db'}"
    if postgres:
        database_url = f"{arguments.postgres_server}/orderdesk_crash_{uuid.uuid4().hex[:12]}"
        asyncio.run(create_database(database_url))
    print(f"{arguments.database}, {workers} worker(s), {arguments.clients} clients")
    print(f"  the servers' output: {directory / 'server.log'}", flush=True)
    server = Server(workers, app_env(database_url, ORDERDESK_RATE_LIMITS="false"), directory)
    run = Run(server, arguments)
    try:
        server.orderdesk("migrate")  # once, so that the workers do not all migrate at start
        asyncio.run(experiment(run))
    finally:
        server.stop()
        if postgres:
            asyncio.run(drop_database(database_url))
        print_summary(run)
    passed = bool(run.checks) and all(check.passed for check in run.checks)
    if passed and not arguments.keep:
        shutil.rmtree(directory)
    else:
        print(f"kept {directory}")
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
