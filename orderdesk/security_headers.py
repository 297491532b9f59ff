"""The headers every HTTP response carries so a browser will not misuse it: no sniffing a
JSON answer into a script, no framing (clickjacking GraphiQL), no referrer leaking a path,
and a Content-Security-Policy: GraphiQL's own where a page is served, none at all for the
rest, which is data and never a document."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orderdesk.graphiql import PAGE_POLICY

DATA_POLICY = "default-src 'none'; frame-ancestors 'none'"

_ALWAYS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
_FOR_PAGE = [*_ALWAYS, (b"content-security-policy", PAGE_POLICY.encode())]
FOR_DATA = [*_ALWAYS, (b"content-security-policy", DATA_POLICY.encode())]
"""What an answer that is data (not GraphiQL's page) carries."""


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                is_page = any(
                    name == b"content-type" and value.startswith(b"text/html")
                    for name, value in headers
                )
                headers += _FOR_PAGE if is_page else FOR_DATA
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
