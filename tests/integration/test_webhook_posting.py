"""One POST of a delivery, over real sockets to a receiver on 127.0.0.1: it goes to the
address that was checked, with the URL's host named; a redirect is not followed; a name
that resolves to a private address at delivery reaches nothing; no answer is a failure."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from handlers.webhooks.addresses import Resolver, system_resolver
from handlers.webhooks.posting import Poster
from tests.webhook_receiver import receiving


class Lookups:
    """A resolver that answers every name with `answers`, and notes what was looked up."""

    def __init__(self, *answers: str) -> None:
        self.answers = answers
        self.looked_up: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.looked_up.append(host)
        return self.answers


def poster(
    *, allow_private: bool, resolve: Resolver = system_resolver, read_timeout: float = 2.0
) -> Poster:
    return Poster(
        connect_timeout=1.0,
        read_timeout=read_timeout,
        allow_private=allow_private,
        resolve=resolve,
    )


async def test_a_name_is_resolved_once_and_the_checked_address_is_the_one_connected_to() -> None:
    resolve = Lookups("127.0.0.1")
    sending = poster(allow_private=True, resolve=resolve)
    try:
        async with receiving() as receiver:
            answer = await sending(
                f"http://hooks.shop.test:{receiver.port}/in?x=1",
                b'{"a":1}',
                {"Content-Type": "application/json"},
            )
            (request,) = receiver.received
    finally:
        await sending.aclose()
    assert answer.succeeded, answer
    assert (answer.status_code, answer.response_excerpt) == (200, "received")
    assert resolve.looked_up == ["hooks.shop.test"]
    assert request.headers["host"] == f"hooks.shop.test:{receiver.port}"
    assert request.path == "/in?x=1"
    assert request.body == b'{"a":1}'
    assert request.headers["user-agent"].startswith("orderdesk-webhooks")


async def test_a_name_that_resolves_to_a_private_address_at_delivery_reaches_nothing() -> None:
    sending = poster(allow_private=False, resolve=Lookups("93.184.215.14", "127.0.0.1"))
    try:
        async with receiving() as receiver:
            answer = await sending(f"http://rebound.shop.test:{receiver.port}/", b"{}", {})
            await asyncio.sleep(0.1)
            assert receiver.received == []
    finally:
        await sending.aclose()
    assert (answer.succeeded, answer.status_code) == (False, None)
    assert answer.error is not None
    assert "127.0.0.1 is a private" in answer.error
    literal = poster(allow_private=False)
    try:
        answer = await literal("http://[::ffff:127.0.0.1]:9/", b"{}", {})
    finally:
        await literal.aclose()
    assert answer.error is not None
    assert "may not reach" in answer.error


async def test_a_redirect_is_a_failed_attempt_and_is_not_followed() -> None:
    sending = poster(allow_private=True)
    try:
        async with receiving(statuses=[302], extra_headers={"Location": "/elsewhere"}) as receiver:
            answer = await sending(receiver.url(), b"{}", {})
            await asyncio.sleep(0.1)
            assert len(receiver.received) == 1
    finally:
        await sending.aclose()
    assert (answer.succeeded, answer.status_code) == (False, 302)
    assert answer.error == "answered 302, a redirect, which is not followed"


async def test_no_answer_within_the_read_timeout_is_a_failed_attempt() -> None:
    done = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await done.wait()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sending = poster(allow_private=True, read_timeout=0.3)
    try:
        answer = await sending(f"http://127.0.0.1:{port}/", b"{}", {})
        refused = await sending("http://127.0.0.1:9/", b"{}", {})
    finally:
        await sending.aclose()
        done.set()
        server.close()
        await server.wait_closed()
    assert (answer.status_code, answer.error) == (None, "no answer within 0.3 seconds")
    assert refused.status_code is None
    assert refused.error is not None
    assert refused.error.startswith("could not connect")


async def test_a_2xx_whose_body_trickles_in_is_a_delivery() -> None:
    """The status is the answer: a body slower than the attempt's own timeouts shortens the
    excerpt and never turns a delivery into a failure (which would send it again)."""
    done = asyncio.Event()
    served = asyncio.Event()

    async def trickling(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nok")
            while not done.is_set():
                await writer.drain()
                await asyncio.sleep(0.2)
                writer.write(b".")
        except ConnectionError:
            pass  # the poster hung up once it had its excerpt: what is being tested
        finally:
            writer.close()
            served.set()

    server = await asyncio.start_server(trickling, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sending = poster(allow_private=True, read_timeout=0.5)
    try:
        answer = await sending(f"http://127.0.0.1:{port}/", b"{}", {})
    finally:
        await sending.aclose()
        done.set()
        async with asyncio.timeout(5):
            await served.wait()
        server.close()
        await server.wait_closed()
    assert (answer.succeeded, answer.status_code, answer.error) == (True, 200, None)
    assert answer.response_excerpt is not None
    assert answer.response_excerpt.startswith("ok")
