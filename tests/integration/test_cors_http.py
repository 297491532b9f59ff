"""Pages of other origins, as a browser sends their requests: the CORS preflight and the call
it allows for an origin in ORDERDESK_CORS_ORIGINS, nothing for any other; and websockets, to
which browsers apply no CORS, refused (403) from a page of an origin not allowed, while
the server's own origin and clients that send no Origin (not browsers) connect."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from orderdesk.origins import allowed_origins
from tests.databases import sqlite_settings
from tests.served import Served, serve
from tests.ws_client import open_socket

VITE = "http://localhost:5173"
"""A frontend's dev server, allowed below."""
STRANGER = "https://evil.example"
APOLLO_HEADERS = "content-type, authorization, apollo-require-preflight, x-request-id"


@pytest.fixture
def cors_served(tmp_path: Path) -> Iterator[Served]:
    # As the environment gives it; the trailing slash and the default port are not kept.
    settings = sqlite_settings(tmp_path, cors_origins=[f"{VITE}/", "https://shop.example:443"])
    with serve(settings) as running:
        yield running


def preflight(origin: str, headers: str = APOLLO_HEADERS) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": headers,
    }


async def test_a_preflight_from_an_allowed_origin_allows_what_apollo_sends(
    cors_served: Served,
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        for origin in (VITE, "https://shop.example"):
            answer = await http.options(cors_served.http_url, headers=preflight(origin))
            assert answer.status_code == 200, answer.text
            assert answer.headers["access-control-allow-origin"] == origin
            allowed = {h.strip() for h in answer.headers["access-control-allow-headers"].split(",")}
            assert {"content-type", "authorization", "apollo-require-preflight"} <= {
                h.lower() for h in allowed
            }
            assert "POST" in answer.headers["access-control-allow-methods"]
            assert int(answer.headers["access-control-max-age"]) >= 600
            assert answer.headers["x-request-id"]


async def test_a_preflight_from_another_origin_is_not_allowed(cors_served: Served) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.options(cors_served.http_url, headers=preflight(STRANGER))
        other_port = await http.options(
            cors_served.http_url, headers=preflight("http://localhost:5174")
        )
        odd_header = await http.options(
            cors_served.http_url, headers=preflight(VITE, "content-type, x-sneaky")
        )
    for refused in (answer, other_port):
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers
        assert refused.headers["x-request-id"]
    assert odd_header.status_code == 400
    assert "headers" in odd_header.text


async def test_a_cross_origin_call_can_be_read_by_an_allowed_page_only(
    cors_served: Served,
) -> None:
    body = {"query": "{ __typename }"}
    async with httpx.AsyncClient(timeout=30) as http:
        allowed = await http.post(cors_served.http_url, json=body, headers={"Origin": VITE})
        stranger = await http.post(cors_served.http_url, json=body, headers={"Origin": STRANGER})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == VITE
    exposed = allowed.headers["access-control-expose-headers"].lower().replace(" ", "")
    assert {"x-request-id", "retry-after"} <= set(exposed.split(","))
    assert "origin" in allowed.headers["vary"].lower()
    # The server answers (browsers are what keeps the page from reading it), without ACAO.
    assert stranger.status_code == 200
    assert "access-control-allow-origin" not in stranger.headers


async def test_without_cors_origins_only_the_same_origin_is_served(served: Served) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.options(served.http_url, headers=preflight(VITE))
        call = await http.post(
            served.http_url, json={"query": "{ __typename }"}, headers={"Origin": VITE}
        )
    assert answer.status_code == 400
    assert "access-control-allow-origin" not in answer.headers
    assert "access-control-allow-origin" not in call.headers
    with pytest.raises(InvalidStatus) as refused:
        async with open_socket(served.ws_url, origin=VITE):
            pass
    assert refused.value.response.status_code == 403
    own = f"http://127.0.0.1:{served.port}"
    async with open_socket(served.ws_url, origin=own) as socket:
        await socket.init()


async def test_a_websocket_from_an_allowed_origin_is_acknowledged(cors_served: Served) -> None:
    for origin in (VITE, "https://shop.example"):
        async with open_socket(cors_served.ws_url, origin=origin) as socket:
            await socket.init()


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (VITE, True),
        ("https://shop.example", True),
        # Not as a browser sends an origin: CORS compares the value as sent, and so do sockets.
        ("http://LOCALHOST:5173", False),
        ("https://SHOP.example", False),
        (f"{VITE}/", False),
        ("https://shop.example:443", False),
    ],
)
async def test_a_websocket_and_a_preflight_from_the_same_origin_are_answered_alike(
    cors_served: Served, origin: str, allowed: bool
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.options(cors_served.http_url, headers=preflight(origin))
    assert answer.status_code == (200 if allowed else 400), answer.text
    if allowed:
        async with open_socket(cors_served.ws_url, origin=origin) as socket:
            await socket.init()
    else:
        with pytest.raises(InvalidStatus) as refused:
            async with open_socket(cors_served.ws_url, origin=origin):
                pass
        assert refused.value.response.status_code == 403


@pytest.mark.parametrize("origin", [STRANGER, "http://localhost:5174", "null"])
async def test_a_websocket_from_another_origin_is_refused_before_it_opens(
    cors_served: Served, origin: str
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with open_socket(cors_served.ws_url, origin=origin):
            pass
    assert refused.value.response.status_code == 403


async def test_a_websocket_without_an_origin_is_not_a_browser_and_connects(
    cors_served: Served,
) -> None:
    # websockets sends no Origin unless told; a service holding a subscription is such a client.
    async with open_socket(cors_served.ws_url) as socket:
        await socket.init()
    # A proxy that rewrote Host: the browser's own word that the page is of this origin.
    async with open_socket(
        cors_served.ws_url,
        origin="https://api.shop.example",
        additional_headers={"Sec-Fetch-Site": "same-origin"},
    ) as socket:
        await socket.init()


@pytest.mark.parametrize("value", ["http://localhost:5173/app", "localhost:5173", "null"])
def test_a_cors_origin_that_is_not_an_origin_is_refused_at_start(value: str) -> None:
    with pytest.raises(ValueError, match="ORDERDESK_CORS_ORIGINS"):
        allowed_origins([value])
