"""The app served by a real uvicorn on a free loopback port, in a thread of its own, with the
config `orderdesk serve` uses (orderdesk/server.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp

from mediator import Registry
from orderdesk.app import create_app
from orderdesk.bootstrap import Services
from orderdesk.server import server_config
from orderdesk.settings import Settings
from persistence.projector import Projection


@dataclass(frozen=True)
class Served:
    http_url: str
    ws_url: str
    settings: Settings
    app: Starlette | None = field(default=None, repr=False)
    port: int = 0

    @property
    def services(self) -> Services:
        """The running app's services. They belong to the server thread's event loop: a test
        may look at them (and hook its engines' events), not await their coroutines."""
        assert self.app is not None, "served without an app"
        services: Services = self.app.state.services
        return services


@contextmanager
def serve(
    settings: Settings,
    *,
    extra_projections: Sequence[Projection] = (),
    extra_reactions: Sequence[Callable[[Registry], None]] = (),
    log_level: str = "warning",
) -> Iterator[Served]:
    app = create_app(settings, extra_projections=extra_projections, extra_reactions=extra_reactions)
    with serve_asgi(app, settings, log_level=log_level) as port:
        yield Served(
            f"http://127.0.0.1:{port}/graphql",
            f"ws://127.0.0.1:{port}/graphql",
            settings,
            app,
            port,
        )


@contextmanager
def serve_asgi(app: ASGIApp, settings: Settings, *, log_level: str = "warning") -> Iterator[int]:
    """Any ASGI app (with a lifespan), served as `orderdesk serve` serves; yields the port."""
    server = uvicorn.Server(
        server_config(app, settings, host="127.0.0.1", port=0, log_level=log_level)
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    port: int = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(30)
