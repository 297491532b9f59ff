"""The app served by a real uvicorn on a free loopback port, in a thread of its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn

from orderdesk.app import create_app
from orderdesk.settings import Settings


@dataclass(frozen=True)
class Served:
    http_url: str
    ws_url: str
    settings: Settings


@contextmanager
def serve(settings: Settings) -> Iterator[Served]:
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        ws="websockets-sansio",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Served(f"http://127.0.0.1:{port}/graphql", f"ws://127.0.0.1:{port}/graphql", settings)
    finally:
        server.should_exit = True
        thread.join(30)
