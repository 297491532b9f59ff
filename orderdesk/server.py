"""The HTTP server: uvicorn configured from Settings, for `orderdesk serve` and the tests alike.

uvicorn's defaults suit a server behind a proxy that has already bounded every client; this
one may face clients itself, so the config sets what a stranger may hold: how long a request's
headers may take, how many connections are open at once, how large a websocket message is,
whose X-Forwarded-For is believed, and what the logs may repeat.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import signal
import threading
from types import FrameType
from typing import Any, cast

import uvicorn
from starlette.types import ASGIApp
from uvicorn.config import LOGGING_CONFIG, Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState
from uvicorn.supervisors import Multiprocess

from orderdesk.batch_execution import BATCH_DEADLINE_FACTOR
from orderdesk.log_lines import (
    AccessTextLines,
    JsonLines,
    RequestIdFilter,
    TextLines,
    UvicornTextLines,
)
from orderdesk.server_stopping import tell_stopping
from orderdesk.settings import Settings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
"""The app's own log lines (the root logger), in the CLI and in every server process."""

MAX_HEADER_BYTES = 65_536
"""The most a request line and its headers may take. httptools accumulates a header of any
size; browsers and GraphQL clients send a few KiB (nginx allows 32 KiB, Node.js 16 KiB)."""

STARTUP_FAILURE = 3
"""uvicorn's exit status when the app does not start."""

SHUTDOWN_MARGIN = 5.0
"""Seconds a graceful stop may take beyond the longest a request may still run."""


class ServerConfig(Config):
    """uvicorn's Config, with what BoundedHttpProtocol reads from it besides."""

    header_timeout: float = 10.0


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a deadline on each request and the limit at the door.

    uvicorn times only the idle wait between a response and the next request's first byte
    (timeout_keep_alive). Before the first request, and once any byte of the next has come,
    nothing is timed: a client that sends half a header holds its connection, and a place in
    limit_concurrency, for ever. Here a request's headers must be complete within
    `header_timeout` of the connection opening or of the previous response, may take at
    most MAX_HEADER_BYTES, and its body may not stall for longer than `header_timeout`
    between two reads (a body trickled in a byte at a time has no deadline here: the proxy
    should buffer bodies). uvicorn checks limit_concurrency once a request's headers are in,
    and never for a websocket upgrade; here a connection beyond it is answered 503 and closed
    as it opens, so a flood is let go at once rather than held until its headers time out,
    and a websocket holds a place like any connection.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not isinstance(config, ServerConfig):
            raise TypeError("BoundedHttpProtocol is served with a ServerConfig (server_config)")
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout = config.header_timeout
        # When the current wait ends (loop time), or None when nothing is timed. Moving a
        # deadline only sets this number: the one timer, when it fires early, is set again
        # for the deadline as it stands then. A keep-alive request moves the deadline four
        # times, and rescheduling a timer each time cost more than the rest of this class.
        self.deadline: float | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.reading_headers = True
        self.header_bytes = 0

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        super().connection_made(transport)
        # The same test as uvicorn's own once headers are in: the set counts this connection.
        if self.limit_concurrency is not None and len(self.connections) >= self.limit_concurrency:
            self.logger.warning("Exceeded concurrency limit.")
            # Out of the count at once, so that no request in this loop turn is refused for it.
            self.connections.discard(self)
            self.refuse(503, "Service Unavailable")
            return
        self.start_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_deadline()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.reading_headers:
            self.header_bytes += len(data)
        super().data_received(data)
        if (
            self.reading_headers
            and self.header_bytes > MAX_HEADER_BYTES
            and not self.transport.is_closing()
        ):
            self.refuse(431, "Request Header Fields Too Large")

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self.reading_headers = False
        if self.parser.should_upgrade() and self._should_upgrade():
            self.stop_deadline()  # the websocket protocol takes the connection over
        else:
            self.start_deadline()  # now for the body, restarted by every part of it

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        # A response sent before the body was read has started the next request's deadline.
        if self.deadline is not None and not self.cycle.response_complete:
            self.start_deadline()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.reading_headers = True
        self.header_bytes = 0
        if self.deadline is not None and not self.cycle.response_complete:
            self.stop_deadline()

    def on_response_complete(self) -> None:
        # A pipelined request goes on next; its headers are in already.
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self.start_deadline()

    def start_deadline(self) -> None:
        self.deadline = self.loop.time() + self.header_timeout
        if self.timer is None:
            self.timer = self.loop.call_at(self.deadline, self.deadline_passed)

    def stop_deadline(self) -> None:
        self.deadline = None

    def deadline_passed(self) -> None:
        self.timer = None
        if self.deadline is None or self.transport.is_closing():
            return
        if self.loop.time() < self.deadline:
            self.timer = self.loop.call_at(self.deadline, self.deadline_passed)
        elif self.flow.read_paused:
            # The server stopped reading (the app has not taken the body yet): not the client.
            self.start_deadline()
        else:
            self.transport.close()

    def shutdown(self) -> None:
        """uvicorn's, and the response in flight told that the server stops: an event stream
        never ends by itself, and uvicorn tells a response only by clearing a keep-alive
        flag that `Connection: close` or HTTP/1.0 had cleared already (orderdesk/
        server_stopping.py)."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            tell_stopping(cycle.scope)
        super().shutdown()

    def refuse(self, status: int, reason: str) -> None:
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        body = reason.encode("ascii")
        content.extend(
            [
                b"content-type: text/plain; charset=utf-8\r\n",
                b"content-length: %d\r\n" % len(body),
                b"connection: close\r\n\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()


class QueryStringFilter(logging.Filter):
    """Cuts the query string off the request targets in uvicorn's log lines.

    uvicorn logs `path?query`: a GraphQL GET carries its whole document and variables there,
    and a websocket URL may carry a token, none of which belongs in a log.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_without_query(arg) for arg in record.args)
        return True

    # uvicorn configures logging for every server it makes (the tests make many) and
    # logging adds a filter only if no equal one is there: one of these is enough.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, QueryStringFilter)

    def __hash__(self) -> int:
        return hash(QueryStringFilter)


def _without_query(arg: object) -> object:
    if isinstance(arg, str) and arg.startswith("/"):
        return arg.partition("?")[0]
    return arg


def log_config(level: str, *, app_logging: bool, log_format: str = "text") -> dict[str, Any]:
    """uvicorn's logging with the query strings cut and each line's request id, as text or
    one JSON object a line (`log_format`, orderdesk/log_lines.py); with `app_logging`, the
    root logger too, so that the app's own lines are printed by every worker, which runs
    nothing but this."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {
        "no_query_string": {"()": QueryStringFilter},
        "request_id": {"()": RequestIdFilter},
    }
    config["loggers"]["uvicorn.access"]["filters"] = ["no_query_string"]
    config["loggers"]["uvicorn.error"]["filters"] = ["no_query_string"]
    if log_format == "json":
        json_lines = {"()": JsonLines}
        config["formatters"] = {"default": json_lines, "access": json_lines, "app": json_lines}
    else:
        config["formatters"]["default"]["()"] = UvicornTextLines
        config["formatters"]["access"]["()"] = AccessTextLines
        config["formatters"]["app"] = {"()": TextLines, "fmt": LOG_FORMAT}
    for handler in config["handlers"].values():
        handler["filters"] = ["request_id"]
    if app_logging:
        config["handlers"]["app"] = {
            "formatter": "app",
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "filters": ["request_id"],
        }
        config["root"] = {"handlers": ["app"], "level": level.upper()}
    return config


def server_config(
    app: ASGIApp | str,
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int = 1,
    log_level: str | None = None,
    app_logging: bool = False,
) -> ServerConfig:
    """The uvicorn Config that serves `app`: an ASGI app, or the import string of an app
    factory (which several workers need). `log_level` and the lines' format are the
    settings' unless given; with `app_logging` the root logger is configured too (pytest
    keeps its own)."""
    level = (log_level or settings.log_level).lower()
    config = ServerConfig(
        app,
        host=host,
        port=port,
        factory=isinstance(app, str),
        workers=workers,
        lifespan="on",  # "auto" would serve on without the services if start-up failed
        http=BoundedHttpProtocol,
        # The sans-I/O implementation refuses a frame above ws_max_size from its header, with
        # 1009, before reading its payload; the default would take 16 MiB.
        ws="websockets-sansio",
        ws_max_size=settings.max_body_bytes,
        # uvicorn hands it to call_later, which takes any float; its annotation says int.
        timeout_keep_alive=cast(int, settings.keep_alive_timeout),
        # uvicorn counts the connection asking among the open ones, and refuses at the limit.
        limit_concurrency=settings.max_connections + 1,
        # Unset, uvicorn would believe X-Forwarded-For from any local peer.
        proxy_headers=settings.forwarded_allow_ips is not None,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        server_header=False,
        # A backstop, not the way streams end (BoundedHttpProtocol.shutdown ends them at
        # once): whatever else holds a connection open (a batch within its deadline, a body
        # still being sent, a websocket closing) may not hold the stop for ever; past this,
        # uvicorn cancels what is left and stops. Handed to asyncio.wait_for (any float).
        timeout_graceful_shutdown=cast(
            int, settings.execution_timeout * BATCH_DEADLINE_FACTOR + SHUTDOWN_MARGIN
        ),
        log_config=log_config(level, app_logging=app_logging, log_format=settings.log_format),
        log_level=level,
    )
    config.header_timeout = settings.header_timeout
    return config


class _Stopped(Exception):
    """SIGTERM, which uvicorn raises again once it has shut down gracefully."""


def _stopped(signum: int, frame: FrameType | None) -> None:
    raise _Stopped


def run(config: ServerConfig) -> None:
    """Serve until stopped, as uvicorn.run would with this config.

    A stop asked for (SIGTERM, Ctrl+C) that shut down gracefully exits 0, which supervisors
    read as a clean exit. uvicorn, once it has shut down, raises the signal again with the
    handler it found: the default handler of SIGTERM would end the process with -SIGTERM
    (143), so while it serves, SIGTERM's handler raises _Stopped, as SIGINT's raises
    KeyboardInterrupt.
    """
    server = uvicorn.Server(config)
    supervisor = None
    in_main_thread = threading.current_thread() is threading.main_thread()
    # Signal handlers can be set in the main thread only (a test may serve from another).
    previous = signal.signal(signal.SIGTERM, _stopped) if in_main_thread else None
    stopped = False
    try:
        if config.workers > 1:
            supervisor = Multiprocess(config, sockets=[config.bind_socket()])
            supervisor.run()
        else:
            server.run()
    except (KeyboardInterrupt, _Stopped):
        stopped = True  # asked to: a stop before the start is not a failure to start
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
    # A worker that could not start stops the whole server, and a supervisor (systemd, a
    # container runtime) must see it as a failure, not a clean exit.
    if supervisor is not None:
        if any(worker.exitcode == STARTUP_FAILURE for worker in supervisor.processes):
            raise SystemExit(STARTUP_FAILURE)
    elif not server.started and not stopped:
        raise SystemExit(STARTUP_FAILURE)
