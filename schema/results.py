"""Mutation results: a success, or one of the typed errors its mutation declares.

Each mutation's result union (`PlaceOrderResult = Annotated[PlaceOrderSuccess | ...]`) is the
one place that says which errors it can return: code generators build a client's types from
it, so an error outside it would reach a client that has no branch for it. The union is read
here as the list of what may be returned, and a refusal of any other type is a fault, logged
as such, never passed on as data.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import get_args

from domain.errors import DomainError
from schema.errors import Error, typed_error

logger = logging.getLogger("orderdesk.graphql")


class UnlistedRefusal(Exception):
    """A command refused in a way its mutation's result union does not name: a bug here (the
    union is out of date with the handler), which the client sees as an internal error."""


@cache
def listed_errors(result: object) -> tuple[type[Error], ...]:
    """The typed errors a result union names, from its annotation."""
    union, *_ = get_args(result)
    return tuple(
        member
        for member in get_args(union) or (union,)
        if isinstance(member, type) and issubclass(member, Error)
    )


def refusal(error: DomainError, result: object, mutation: str) -> Error:
    """The refusal as the typed error it is, if `result` lists that type."""
    typed = typed_error(error)
    if isinstance(typed, listed_errors(result)):
        return typed
    unlisted = f"{mutation} refused with {type(typed).__name__}, which its result does not list"
    logger.error("%s: %s", unlisted, error)
    raise UnlistedRefusal(unlisted) from error
