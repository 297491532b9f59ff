"""Which other origins' pages may use the API: CORS for HTTP, and the same rule for websockets.

Browsers apply CORS to HTTP requests but not to websocket handshakes: any page may open a
socket here, so each handshake's Origin is checked before it is accepted (against cross-site
websocket hijacking). The rule is this module's alone, for every websocket path; Strawberry's
own origin check is switched off where the view is built (orderdesk/app.py) so that the two
can never disagree. `settings.cors_origins` lists the origins allowed besides the server's
own ("*": any); empty, pages of the same origin only.

An allowed origin is matched as Starlette's CORSMiddleware matches it: the Origin header
exactly as sent against the configured origins in the form browsers send (lowercase, no
default port, no trailing slash). A page may use the API over a socket exactly when a
preflight from it would be answered: browsers send that form, so only a hand-made Origin
("http://Shop.example", "https://shop.example/") is refused by both.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.http.websocket_origin import is_same_origin, normalize_allowed_origins

logger = logging.getLogger("orderdesk.origins")

ALLOWED_HEADERS = (
    "accept",
    "authorization",
    "content-type",
    "x-request-id",
    # Apollo Client: its CSRF-prevention header, and the ones naming the client and operation.
    "apollo-require-preflight",
    "apollographql-client-name",
    "apollographql-client-version",
    "x-apollo-operation-name",
    # W3C trace context, which browser tracing sends on every call it follows.
    "traceparent",
    "tracestate",
)
EXPOSED_HEADERS = ("X-Request-ID", "Retry-After")
"""What a page's script may read of an answer besides the safelisted headers."""
PREFLIGHT_MAX_AGE = 7_200
"""Seconds a browser may keep a preflight's answer: two hours, the most Chromium keeps."""


def allowed_origins(configured: Iterable[str]) -> frozenset[str]:
    """The configured origins as browsers send them ("https://Shop.example:443" is
    "https://shop.example"); a value that is not an origin (a path, "null") is a ValueError,
    which stops the app from starting."""
    origins = list(configured)
    for origin in origins:
        try:
            normalize_allowed_origins([origin])
        except (TypeError, ValueError):
            raise ValueError(
                f"ORDERDESK_CORS_ORIGINS: {origin!r} is not an origin: a scheme, a host and "
                "an optional port, as 'http://localhost:5173' (or '*': any)"
            ) from None
    return normalize_allowed_origins(origins)


def origin_middleware(configured: Iterable[str]) -> list[Middleware]:
    """CORS for HTTP and the Origin check of websockets, for the app's middleware list.

    With no origin configured (the default), CORSMiddleware is left out: it wraps every
    response's `send` to add `Vary: Origin`, which only matters where an answer can differ by
    Origin, and costs each request a few microseconds for nothing. Preflights are then
    refused by WebSocketOrigins, as CORSMiddleware would refuse them.
    """
    origins = allowed_origins(configured)
    if not origins:
        return [Middleware(WebSocketOrigins, allowed=origins, refuse_preflights=True)]
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=sorted(origins),
            allow_methods=("GET", "POST", "OPTIONS"),
            allow_headers=ALLOWED_HEADERS,
            expose_headers=EXPOSED_HEADERS,
            # Bearer tokens travel in Authorization; the API reads no cookie.
            allow_credentials=False,
            max_age=PREFLIGHT_MAX_AGE,
        ),
        Middleware(WebSocketOrigins, allowed=origins),
    ]


def may_open_socket(headers: Headers, allowed: Collection[str]) -> bool:
    """Whether a websocket handshake with these headers comes from a page that may use the API.

    No Origin: not a browser, so no user's ambient credentials to abuse. The same origin as
    the Host asked for (host and port: TLS ended at a proxy still counts), or a browser's
    own Sec-Fetch-Site saying so (a proxy may rewrite Host), or an origin allowed.
    """
    origin = headers.get("origin")
    if origin is None:
        return True
    if headers.get("sec-fetch-site") == "same-origin" or is_same_origin(
        origin, headers.get("host")
    ):
        return True
    return is_allowed_origin(origin, allowed)


def is_allowed_origin(origin: str, allowed: Collection[str]) -> bool:
    """CORSMiddleware.is_allowed_origin for the options `origin_middleware` gives it (no
    regex): the value as sent, never normalised, so that a socket and a preflight from the
    same Origin are answered alike."""
    return "*" in allowed or origin in allowed


class WebSocketOrigins:
    """Refuses, before accepting it, a websocket opened by a page of an origin not allowed:
    the server answers the handshake 403. With `refuse_preflights` (no CORS configured), a
    CORS preflight is answered 400, as CORSMiddleware answers one from an origin it does not
    allow, rather than the view's 405."""

    def __init__(
        self, app: ASGIApp, *, allowed: Collection[str], refuse_preflights: bool = False
    ) -> None:
        self.app = app
        self.allowed = allowed
        self.refuse_preflights = refuse_preflights

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.refuse_preflights and scope["type"] == "http" and scope["method"] == "OPTIONS":
            headers = Headers(scope=scope)
            if "origin" in headers and "access-control-request-method" in headers:
                refusal = PlainTextResponse(
                    "Disallowed CORS origin: set ORDERDESK_CORS_ORIGINS to allow it",
                    status_code=400,
                )
                await refusal(scope, receive, send)
                return
        if scope["type"] == "websocket":
            headers = Headers(scope=scope)
            if not may_open_socket(headers, self.allowed):
                logger.warning(
                    "refused a websocket from a page of %r (not in ORDERDESK_CORS_ORIGINS)",
                    headers.get("origin"),
                )
                await send({"type": "websocket.close", "code": 1008, "reason": ""})
                return
        await self.app(scope, receive, send)
