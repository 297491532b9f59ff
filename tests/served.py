"""The app served by a real uvicorn on a free loopback port, in a thread of its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette

from orderdesk.app import create_app
from orderdesk.bootstrap import Services
from orderdesk.settings import Settings
from persistence.projector import Projection


@dataclass(frozen=True)
class Served:
    http_url: str
    ws_url: str
    settings: Settings
    app: Starlette | None = field(default=None, repr=False)

    @property
    def services(self) -> Services:
        """The running app's services. They belong to the server thread's event loop: a test
        may look at them (and hook its engines' events), not await their coroutines."""
        assert self.app is not None, "served without an app"
        services: Services = self.app.state.services
        return services


@contextmanager
def serve(settings: Settings, *, extra_projections: Sequence[Projection] = ()) -> Iterator[Served]:
    app = create_app(settings, extra_projections=extra_projections)
    config = uvicorn.Config(
        app,
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
        yield Served(
            f"http://127.0.0.1:{port}/graphql", f"ws://127.0.0.1:{port}/graphql", settings, app
        )
    finally:
        server.should_exit = True
        thread.join(30)
