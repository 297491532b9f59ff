"""JSON from a client, refused before anything walks it recursively: not UTF-8, longer than
the body limit, nested deeper than any input of the schema, or holding a string longer than
any input takes.

Each refusal is a `json.JSONDecodeError`, the error Strawberry already answers for: HTTP
400 on a body, and on a websocket the protocol's answer to a message that is not JSON.
"""

from __future__ import annotations

import json

MAX_DEPTH = 32
"""Deeper than any input of the schema (an order's line is four levels down); a body nested
5,000 deep would otherwise overflow the recursion of the JSON parser or of coercion."""

DOCUMENT_PATHS = frozenset({("query",), ("payload", "query")})
"""Where the document's own text is, in a body and in a websocket message: it is bounded by
max_query_length, with an error of its own."""


class RefusedJSON(json.JSONDecodeError):
    def __init__(self, message: str) -> None:
        super().__init__(message, "", 0)
        self.msg = message

    def __str__(self) -> str:
        return self.msg


def decode(data: str | bytes, *, max_bytes: int, max_string: int) -> object:
    if len(data) > max_bytes:
        raise RefusedJSON(f"the message exceeds {max_bytes} bytes")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = _DECODER.decode(text)
    except UnicodeDecodeError:
        raise RefusedJSON("the body is not UTF-8") from None
    except RecursionError:
        raise RefusedJSON(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError:
        raise
    except ValueError:
        raise RefusedJSON(
            "a number JSON does not allow: NaN, Infinity, over 4,300 digits"
        ) from None
    _check_shape(value, max_string)
    return value


def _check_shape(value: object, max_string: int) -> None:
    """Iterative: a recursive walk is what a deep document attacks. A search of 50,000
    characters would be refused by its own bound, but only after the whole pipeline has
    run; here it costs one comparison."""
    todo: list[tuple[object, tuple[object, ...]]] = [(value, ())]
    while todo:
        item, path = todo.pop()
        if isinstance(item, str):
            if len(item) > max_string and path not in DOCUMENT_PATHS:
                raise RefusedJSON(f"a string in the request exceeds {max_string} characters")
        elif isinstance(item, dict | list):
            if len(path) >= MAX_DEPTH:
                raise RefusedJSON(f"JSON nested deeper than {MAX_DEPTH} levels")
            # Only the first two keys of a path are ever compared; the rest is its depth.
            if isinstance(item, dict):
                todo.extend((child, (*path, name)) for name, child in item.items())
            else:
                todo.extend((child, (*path, None)) for child in item)


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


# Built once: json.loads with any argument builds a new decoder for every call.
_DECODER = json.JSONDecoder(parse_constant=_no_constant)
