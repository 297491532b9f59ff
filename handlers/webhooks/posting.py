"""One POST of a delivery to its endpoint, to the address that was checked.

The host is resolved and every address it has is checked (handlers/webhooks/addresses.py);
the request then goes to that address itself, with the URL's host in the `Host` header and
as the TLS server name, so certificates are verified against the name as usual. No second
lookup happens between the check and the connection, which is what would let a name that
answers with a public address for the check and a private one for the connection (DNS
rebinding) through. Redirects are not followed (a 3xx is a failed attempt: a redirect
could point anywhere), proxies from the environment are not used, and of the answer only
its status and a short excerpt of its first bytes, undecoded, are read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import httpx

from handlers.webhooks.addresses import (
    Resolver,
    UnreachableAddress,
    checked_addresses,
    literal_address,
    system_resolver,
)

READ_AT_MOST = 1_024
"""Bytes of an answer's body read (raw, so a compressed one cannot expand)."""
EXCERPT_WITHIN = 1.0
"""Seconds spent reading an answer's body, once its status has come, for the excerpt."""
MAX_EXCERPT = 200
USER_AGENT = "orderdesk-webhooks/1"


@dataclass(frozen=True, slots=True)
class Answer:
    """What one attempt came to: a status, or why there was none."""

    status_code: int | None
    error: str | None
    response_excerpt: str | None
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Post(Protocol):
    async def __call__(self, url: str, body: bytes, headers: Mapping[str, str]) -> Answer: ...


def excerpt(raw: bytes) -> str | None:
    """The start of an answer, safe to show staff: printable characters only, one line."""
    text = raw.decode("utf-8", "replace")
    printable = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(printable.split())[:MAX_EXCERPT] or None


class Poster:
    """Sends deliveries over one pool of connections; `aclose` when done."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        read_timeout: float,
        allow_private: bool,
        resolve: Resolver = system_resolver,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._allow_private = allow_private
        self._resolve = resolve
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    def _pool(self) -> httpx.AsyncClient:
        # Made at the first send, in the loop that sends: a service that never sends (the
        # command line) opens nothing.
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(
                    connect=self._connect_timeout,
                    read=self._read_timeout,
                    write=self._read_timeout,
                    pool=self._connect_timeout,
                ),
                follow_redirects=False,
                trust_env=False,
                # No connection is kept for another request: connections are pooled by
                # address, and one opened (and its certificate checked) for one host name
                # must not carry a request for another name at the same address.
                limits=httpx.Limits(max_keepalive_connections=0),
                transport=self._transport,
            )
        return self._client

    @property
    def deadline(self) -> float:
        """Seconds one attempt may take at most, lookup and answer included."""
        return 2 * self._connect_timeout + self._read_timeout + EXCERPT_WITHIN

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def __call__(self, url: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        started = time.monotonic()

        def answer(status: int | None, error: str | None, text: str | None = None) -> Answer:
            elapsed = round((time.monotonic() - started) * 1000)
            return Answer(status, error, text, elapsed)

        try:
            async with asyncio.timeout(self.deadline):
                status, raw = await self._post(httpx.URL(url), body, headers)
        except (UnreachableAddress, TimeoutError, httpx.HTTPError, httpx.InvalidURL) as failed:
            return answer(None, self._why(failed))
        if 200 <= status < 300:
            return answer(status, None, excerpt(raw))
        if 300 <= status < 400:
            why = f"answered {status}, a redirect, which is not followed"
            return answer(status, why, excerpt(raw))
        return answer(status, f"answered {status}", excerpt(raw))

    def _why(self, failed: Exception) -> str:
        """Why an attempt got no answer, in a few words for staff."""
        reasons: tuple[tuple[type[Exception], str], ...] = (
            (UnreachableAddress, str(failed)),
            (TimeoutError, f"no answer within {self.deadline:g} seconds"),
            (httpx.ConnectTimeout, f"could not connect within {self._connect_timeout:g} seconds"),
            (httpx.TimeoutException, f"no answer within {self._read_timeout:g} seconds"),
            (httpx.ConnectError, f"could not connect: {failed}"),
            (httpx.RemoteProtocolError, "the endpoint's answer was not HTTP"),
            (httpx.InvalidURL, "the URL cannot be sent to"),
        )
        return next(
            (why for kind, why in reasons if isinstance(failed, kind)),
            f"the request failed ({type(failed).__name__})",
        )

    async def _post(
        self, url: httpx.URL, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, bytes]:
        host = url.raw_host.decode("ascii")
        port = url.port or (443 if url.scheme == "https" else 80)
        addresses = await checked_addresses(
            host,
            port,
            allow_private=self._allow_private,
            resolve=self._resolve,
            timeout=self._connect_timeout,
        )
        sent = {"User-Agent": USER_AGENT, **headers, "Host": url.netloc.decode("ascii")}
        extensions = (
            {"sni_hostname": host}
            if url.scheme == "https" and literal_address(host) is None
            else {}
        )
        failure: httpx.TransportError | None = None
        for address in addresses:
            try:
                return await self._send(url.copy_with(host=str(address)), body, sent, extensions)
            except (httpx.ConnectError, httpx.ConnectTimeout) as failed:
                # The next address of the host may answer (an IPv6 one where IPv4 is down).
                failure = failed
        assert failure is not None
        raise failure

    async def _send(
        self, url: httpx.URL, body: bytes, headers: Mapping[str, str], extensions: dict[str, str]
    ) -> tuple[int, bytes]:
        client = self._pool()
        request = client.build_request(
            "POST", url, content=body, headers=headers, extensions=extensions
        )
        response = await client.send(request, stream=True)
        raw = b""
        try:
            # The status is the answer, and it has come: a body that trickles in (or is cut
            # short) only shortens the excerpt, and never turns a 2xx into a failure.
            async with asyncio.timeout(EXCERPT_WITHIN):
                async for chunk in response.aiter_raw():
                    raw += chunk
                    if len(raw) >= READ_AT_MOST:
                        break
        except (httpx.TransportError, TimeoutError):
            pass
        finally:
            await response.aclose()
        return response.status_code, raw[:READ_AT_MOST]
