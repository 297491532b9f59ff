"""Reading a GraphQL request's parameters, for the view and for event streams alike: the
body within max_body_bytes (refused by its Content-Length before a byte is read when it
declares too much), and the JSON of a GET's `variables` and `extensions`."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from cross_web import HTTPException
from starlette.types import Message, Receive, Scope


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body exceeds {limit} bytes")
        self.limit = limit


def limited(scope: Scope, receive: Receive, limit: int) -> Receive:
    """`receive`, raising BodyTooLarge once the body passes `limit` bytes."""
    declared = dict(scope["headers"]).get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:

        async def refuse() -> Message:
            raise BodyTooLarge(limit)

        return refuse
    received = 0

    async def counting() -> Message:
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        if received > limit:
            raise BodyTooLarge(limit)
        return message

    return counting


def query_parameters(params: Mapping[str, str], decode: Callable[[str], object]) -> dict[str, Any]:
    """A GET's parameters, `variables` and `extensions` decoded by `decode` (their shape is
    checked with the rest of the operation's); HTTPException 400 for one that is not JSON."""
    parsed: dict[str, Any] = dict(params)
    for name in ("variables", "extensions"):
        if parsed.get(name):
            try:
                parsed[name] = decode(parsed[name])
            except json.JSONDecodeError as error:
                raise HTTPException(400, f"the {name} parameter is not JSON: {error}") from None
    return parsed
