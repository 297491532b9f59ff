"""How a response that never finishes by itself (an event stream) learns that the server
is stopping.

uvicorn waits for every response to finish before it shuts the app down, and tells an
HTTP response of the stop only by clearing its cycle's `keep_alive`, a flag that a
`Connection: close` or HTTP/1.0 request has cleared already. So such a response puts an
asyncio.Event in its ASGI scope under SERVER_STOPPING, and the server's HTTP protocol
(orderdesk/server.py's BoundedHttpProtocol) sets it when it is told to shut down. Under
another server the event is never set: the stream ends with its client, and only that
server's own graceful-shutdown timeout bounds the stop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, MutableMapping
from typing import Any

SERVER_STOPPING = "orderdesk.server_stopping"


def watch_for_stop(scope: MutableMapping[str, Any]) -> asyncio.Event:
    """The event set when the server serving `scope`'s request stops."""
    stopping = asyncio.Event()
    scope[SERVER_STOPPING] = stopping
    return stopping


def tell_stopping(scope: Mapping[str, object]) -> None:
    """Tell the response serving `scope` that the server stops (nothing, if it does not
    watch for it)."""
    stopping = scope.get(SERVER_STOPPING)
    if isinstance(stopping, asyncio.Event):
        stopping.set()
