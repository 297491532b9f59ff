"""Subscription fan-out: 1,000 websocket subscribers on one server process.

Run: ``python benchmarks/subscriptions.py [--subscribers 1000] [--rounds 20]``. Starts the
app as a separate process (uvicorn, SQLite in a temporary directory) and, for comparison,
a bare `websockets` server process that sends the same frame with `websockets.broadcast`.
The same client process holds every connection to one server, then the other.

Per round, on orderdesk: a restockProduct mutation is sent over HTTP; every subscriber's
latency is the time from sending the mutation (so including its commit) to receiving the
productEvents frame. On the bare server: the time from asking it to broadcast to receiving.
Prints p50/p99 of those latencies, and the per-subscriber cost of each, the spread between
the first and the last delivery of a round divided by the number of subscribers, whose
ratio is the target: orderdesk at most 2x a raw broadcast; p99 under 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script, Python puts benchmarks/ first on sys.path, where benchmarks/http.py would
# shadow the standard library's `http` (which httpx imports); the root goes there.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import httpx  # noqa: E402
from websockets.asyncio.client import ClientConnection, connect  # noqa: E402
from websockets.asyncio.server import ServerConnection, broadcast, serve  # noqa: E402
from websockets.typing import Subprotocol  # noqa: E402

from handlers.access import Identity, Role  # noqa: E402
from orderdesk.tokens import Tokens  # noqa: E402

SECRET = "benchmark-secret-0123456789-0123456789-0123456789"
STAFF = Tokens(SECRET).issue(Identity("bench", Role.STAFF))
SUBSCRIPTION = "subscription { productEvents { position type product { id stock version } } }"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def wait_for_port(port: int) -> None:
    async with asyncio.timeout(30):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            writer.close()
            await writer.wait_closed()
            return


class Receivers:
    """Every client connection's receive loop, recording when each frame arrived."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.expected = 0
        self.done = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def expect(self, count: int) -> None:
        self.arrivals = []
        self.expected = count
        self.done.clear()

    def follow(self, connection: ClientConnection, *, graphql: bool) -> None:
        async def loop() -> None:
            async for frame in connection:
                if graphql and '"ping"' in str(frame)[:20]:
                    await connection.send('{"type":"pong"}')
                    continue
                self.arrivals.append(time.perf_counter())
                if len(self.arrivals) >= self.expected:
                    self.done.set()

        self.tasks.append(asyncio.create_task(loop()))


async def open_many(url: str, count: int, setup: Any) -> list[ClientConnection]:
    connections: list[ClientConnection] = []
    for start in range(0, count, 100):
        batch = await asyncio.gather(*(setup(url) for _ in range(start, min(count, start + 100))))
        connections.extend(batch)
    return connections


async def graphql_subscriber(url: str) -> ClientConnection:
    connection = await connect(
        url, subprotocols=[Subprotocol("graphql-transport-ws")], open_timeout=60
    )
    await connection.send(
        json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {STAFF}"}})
    )
    assert json.loads(await connection.recv())["type"] == "connection_ack"
    await connection.send(
        json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}})
    )
    return connection


async def raw_subscriber(url: str) -> ClientConnection:
    connection = await connect(url, open_timeout=60)
    await connection.send("subscribe")
    assert await connection.recv() == "ok"
    return connection


def summarize(name: str, rounds: list[tuple[float, list[float]]]) -> dict[str, float]:
    latencies = sorted((t - start) * 1000 for start, arrivals in rounds for t in arrivals)
    spreads = [
        (max(arrivals) - min(arrivals)) * 1e6 / (len(arrivals) - 1) for _, arrivals in rounds
    ]
    result = {
        "p50": statistics.median(latencies),
        "p99": latencies[int(len(latencies) * 0.99) - 1],
        "max": latencies[-1],
        "per_subscriber_us": statistics.median(spreads),
    }
    print(
        f"{name:<28} p50 {result['p50']:7.1f} ms   p99 {result['p99']:7.1f} ms   "
        f"max {result['max']:7.1f} ms   per subscriber {result['per_subscriber_us']:6.1f} us"
    )
    return result


async def bench_orderdesk(subscribers: int, rounds: int) -> tuple[dict[str, float], str]:
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        env = {
            **os.environ,
            "ORDERDESK_DATABASE_URL": f"sqlite+aiosqlite:///{directory}/bench.db",
            "ORDERDESK_JWT_SECRET": SECRET,
            "ORDERDESK_WS_PING_INTERVAL": "600",
            "ORDERDESK_SUBSCRIBER_QUEUE_SIZE": "1000",
            "ORDERDESK_MAX_SUBSCRIPTIONS_PER_CONNECTION": "20",
            # Every subscriber comes from this one address and token: the caps and budgets
            # that stop one stranger from opening a thousand sockets are raised past reach.
            "ORDERDESK_MAX_SOCKETS_PER_ADDRESS": "1000000",
            "ORDERDESK_MAX_SOCKETS_PER_IDENTITY": "1000000",
            "ORDERDESK_RATE_LIMIT_PER_ADDRESS": "1000000/second",
            "ORDERDESK_RATE_LIMIT_PER_IDENTITY": "1000000/second",
        }
        # A blocking spawn is fine here: it happens once, before anything is measured.
        server = subprocess.Popen(  # noqa: ASYNC220
            [
                sys.executable, "-m", "uvicorn", "--factory", "orderdesk.app:create_app",
                "--port", str(port), "--log-level", "warning", "--ws", "websockets-sansio",
            ],
            env=env,
            cwd=directory,
        )  # fmt: skip
        try:
            await wait_for_port(port)
            return await _measure_orderdesk(port, subscribers, rounds)
        finally:
            server.terminate()
            server.wait(30)


async def _measure_orderdesk(
    port: int, subscribers: int, rounds: int
) -> tuple[dict[str, float], str]:
    url = f"http://127.0.0.1:{port}/graphql"
    headers = {"Authorization": f"Bearer {STAFF}"}
    async with httpx.AsyncClient(timeout=60, headers=headers) as http:
        created = await http.post(
            url,
            json={
                "query": """mutation { createProduct(input: {sku: "B-1", name: "Bench",
                    price: "1.00", stock: 0}) {
                    ... on CreateProductSuccess { product { id } } } }"""
            },
        )
        product_id = created.json()["data"]["createProduct"]["product"]["id"]
        receivers = Receivers()
        connections = await open_many(
            f"ws://127.0.0.1:{port}/graphql", subscribers, graphql_subscriber
        )
        for connection in connections:
            receivers.follow(connection, graphql=True)
        await asyncio.sleep(1)  # every subscription reaches the tail
        restock = {
            "query": """mutation($id: ID!) { restockProduct(input: {id: $id, quantity: 1}) {
                __typename } }""",
            "variables": {"id": product_id},
        }
        results: list[tuple[float, list[float]]] = []
        frame = ""
        for round_number in range(rounds + 1):
            receivers.expect(subscribers)
            started = time.perf_counter()
            response = await http.post(url, json=restock)
            assert response.json()["data"]["restockProduct"]["__typename"].endswith("Success")
            async with asyncio.timeout(60):
                await receivers.done.wait()
            if round_number:  # the first round warms caches and connections
                results.append((started, list(receivers.arrivals)))
            await asyncio.sleep(0.2)
        frame = await _one_frame(port)
        for connection in connections:
            await connection.close()
        for task in receivers.tasks:
            task.cancel()
        await asyncio.gather(*receivers.tasks, return_exceptions=True)
    return summarize("orderdesk productEvents", results), frame


async def _one_frame(_port: int) -> str:
    """A `next` frame as orderdesk sends it, for the bare server to broadcast."""
    product = {"id": "UHJvZHVjdDoxMjM0NTY3ODkwYWJjZGVm", "stock": 100, "version": 101}
    payload = {
        "data": {"productEvents": {"position": "123", "type": "RESTOCKED", "product": product}}
    }
    return json.dumps({"id": "1", "type": "next", "payload": payload})


def run_raw_server(port: int) -> None:
    """The bare websockets server: `subscribe` joins; a `go <frame>` broadcasts the frame."""

    async def main() -> None:
        clients: set[ServerConnection] = set()

        async def handler(connection: ServerConnection) -> None:
            async for message in connection:
                if message == "subscribe":
                    clients.add(connection)
                    await connection.send("ok")
                elif isinstance(message, str) and message.startswith("go "):
                    broadcast(clients, message[3:])

        async with serve(handler, "127.0.0.1", port, max_queue=None):
            await asyncio.Future()

    asyncio.run(main())


async def bench_broadcast(subscribers: int, rounds: int, frame: str) -> dict[str, float]:
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--raw-server", str(port)])  # noqa: ASYNC220
    try:
        await wait_for_port(port)
        url = f"ws://127.0.0.1:{port}"
        receivers = Receivers()
        connections = await open_many(url, subscribers, raw_subscriber)
        for connection in connections:
            receivers.follow(connection, graphql=False)
        async with connect(url) as control:
            results: list[tuple[float, list[float]]] = []
            for round_number in range(rounds + 1):
                receivers.expect(subscribers)
                started = time.perf_counter()
                await control.send(f"go {frame}")
                async with asyncio.timeout(60):
                    await receivers.done.wait()
                if round_number:
                    results.append((started, list(receivers.arrivals)))
                await asyncio.sleep(0.2)
        for connection in connections:
            await connection.close()
        for task in receivers.tasks:
            task.cancel()
        await asyncio.gather(*receivers.tasks, return_exceptions=True)
        return summarize("websockets.broadcast", results)
    finally:
        server.terminate()
        server.wait(30)


async def main(subscribers: int, rounds: int) -> None:
    print(f"{subscribers} subscribers, {rounds} events each, one server process\n")
    ours, frame = await bench_orderdesk(subscribers, rounds)
    raw = await bench_broadcast(subscribers, rounds, frame)
    ratio = ours["per_subscriber_us"] / raw["per_subscriber_us"]
    print(
        f"\np99 {ours['p99']:.1f} ms (target < 100 ms: {'met' if ours['p99'] < 100 else 'MISSED'})"
        f"\nper-subscriber cost {ratio:.2f}x websockets.broadcast "
        f"(target <= 2x: {'met' if ratio <= 2 else 'MISSED'})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--raw-server", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.raw_server:
        run_raw_server(arguments.raw_server)
    else:
        asyncio.run(main(arguments.subscribers, arguments.rounds))
