"""Request ids: every HTTP request and websocket has one, the caller's X-Request-ID when it is
a sane token or a new one, answered in the X-Request-ID header of every response (4xx, 429
and the router's 404 and 405 included) and in the websocket handshake, and carried by every
log line written while the request is served (orderdesk/log_lines.py reads it)."""

from __future__ import annotations

import itertools
import logging
import os
import re
import uuid
from collections.abc import Iterable
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orderdesk.security_headers import FOR_DATA

logger = logging.getLogger("orderdesk")

HEADER = b"x-request-id"
SCOPE_KEY = "orderdesk.request_id"
"""Where RequestIds leaves the id in the ASGI scope, for the views (GraphQLView.get_context)."""
_SANE = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
"""What a caller's id may be: it goes into headers and log lines as it came."""

current_request_id: ContextVar[str | None] = ContextVar("orderdesk_request_id", default=None)
"""The id of the request being served in this task (None outside any request: the projector,
the reactor, start-up)."""

# A new id is this process's random prefix and a counter: unique across processes and
# restarts, like a uuid4, at a fraction of its cost per request (ids are not secrets).
_ID_PREFIX = uuid.uuid4().hex[:16]
_next_id = itertools.count(1).__next__


def _new_id_prefix() -> None:
    # A worker forked after import must not repeat its parent's ids.
    global _ID_PREFIX, _next_id  # noqa: PLW0603
    _ID_PREFIX = uuid.uuid4().hex[:16]
    _next_id = itertools.count(1).__next__


os.register_at_fork(after_in_child=_new_id_prefix)


def new_request_id() -> str:
    return f"{_ID_PREFIX}{_next_id():016x}"


def from_headers(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The caller's X-Request-ID (raw ASGI headers) if it is a sane token, else a new one."""
    for name, value in headers:
        if name == HEADER:
            return value.decode("ascii") if _SANE.fullmatch(value) else new_request_id()
    return new_request_id()


def request_id(scope: Scope) -> str:
    """The id RequestIds gave this request or websocket."""
    given: str = scope[SCOPE_KEY]
    return given


class RequestIds:
    """Gives each HTTP request and websocket its id (outermost of the app's middleware, so
    that whatever answers, the answer carries it) and keeps it in `current_request_id`
    while the request is served."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = from_headers(scope["headers"])
        scope[SCOPE_KEY] = given
        header = (HEADER, given.encode("ascii"))
        starts = "http.response.start" if kind == "http" else "websocket.accept"

        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == starts:
                started = True
                # Nothing inside sets it: the id is this middleware's alone.
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = current_request_id.set(given)
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if kind != "http" or started:
                # Not reset: the server logs the failure in this same task (each request has
                # a task, and so a context, of its own), and that line wants the id too.
                raise
            # Starlette's own 500 is sent from outside every middleware, without the id the
            # client would quote; answered here instead, and logged here, with the id.
            logger.exception("unhandled error answering %s %s", scope["method"], scope["path"])
            for message in _internal_error():
                await send_with_id(message)
        current_request_id.reset(token)


_INTERNAL_ERROR = (
    b'{"errors":[{"message":"Internal server error",'
    b'"extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}'
)


def _internal_error() -> list[Message]:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_INTERNAL_ERROR)).encode()),
        *FOR_DATA,
    ]
    return [
        {"type": "http.response.start", "status": 500, "headers": headers},
        {"type": "http.response.body", "body": _INTERNAL_ERROR},
    ]
