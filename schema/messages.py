"""Resolvers' way to the mediator: send a command, ask a query, watch a stream, each
with its refusals turned into what the GraphQL contract promises (typed errors as data,
BAD_USER_INPUT, FORBIDDEN, READ_MODEL_LAGGING for a write that happened)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, TypeVar

from graphql import GraphQLError
from strawberry.dataloader import DataLoader

from domain.errors import DomainError, ValidationFailed
from handlers.access import NotAuthorized
from handlers.pipeline import ReadModelLagging
from handlers.streams import PositionNotReached, ReplayTooLong, SubscriberTooSlow
from handlers.written import Written
from mediator import Command, Request, StreamRequest
from schema.context import Info, Loaders
from schema.errors import Error, UserInputError, access_error, bad_user_input
from schema.results import refusal

logger = logging.getLogger("orderdesk.graphql")

T = TypeVar("T")
S = TypeVar("S")


async def run_command(
    info: Info,
    build: Callable[[], Command[Written]],
    present: Callable[[Written], Awaitable[S]],
    result: object,
) -> S | Error:
    """Build a command and send it; present its success, or return its refusal (in building
    it too: an id of another type names nothing) as a typed error, one of those the
    mutation's `result` union lists (schema/results.py)."""
    try:
        command = build()
        # A copy per command: behaviors keep per-command state (the unit of work, the
        # idempotency claim) on it, and a websocket runs many operations on one context.
        written = await info.context.mediator.send(command, info.context.ctx.copy())
    except DomainError as error:
        return refusal(error, result, info.field_name)
    try:
        return await present(written)
    except (ReadModelLagging, GraphQLError):
        raise
    except Exception as error:
        # Committed: an internal error now would have the client retry a write that
        # happened (a restock would add the stock twice).
        logger.warning("%s was committed, but reading it back failed", written, exc_info=True)
        raise lagging(written, "could not be read back") from error


class _Versioned(Protocol):
    @property
    def version(self) -> int: ...


V = TypeVar("V", bound=_Versioned)


async def read_back(loaders: Loaders, loader: DataLoader[str, V | None], written: Written) -> V:
    """What a command wrote, as its read model shows it now: never a success that shows a
    version older than its own write (that is READ_MODEL_LAGGING instead)."""
    loaders.forget(written.entity_id)
    view = await loader.load(written.entity_id)
    if view is None or view.version < written.version:
        raise lagging(written)
    return view


def lagging(written: Written, why: str = "is not readable yet") -> ReadModelLagging:
    """The refusal for a committed write whose result cannot be shown (yet)."""
    return ReadModelLagging(
        f"{written.kind or 'the entity'} {written.entity_id} was saved at version "
        f"{written.version} but {why}; read it again shortly",
        written,
    )


async def ask(info: Info, query: Request[T]) -> T:
    """Send a query; a refusal (a bad cursor, too large a page) becomes BAD_USER_INPUT."""
    try:
        return await info.context.mediator.send(query, info.context.ctx)
    except ValidationFailed as error:
        raise bad_user_input(error) from None
    except NotAuthorized as error:
        raise access_error(error) from None


async def watch(info: Info, request: StreamRequest[T]) -> AsyncIterator[T]:
    """A subscription's events; a refusal or a cut-off ends it with a GraphQL error.

    A subscriber too slow to keep up gets `SUBSCRIBER_TOO_SLOW` with `resumeAfter`, the
    cursor to subscribe again with to miss nothing. An `after` too far back is refused,
    before any event, with `REPLAY_TOO_LONG` and `maxReplayEvents`; one beyond the log's
    newest event is BAD_USER_INPUT.
    """
    try:
        async for item in info.context.mediator.stream(request, info.context.ctx):
            yield item
    except NotAuthorized as error:
        raise access_error(error) from None
    except ReplayTooLong as error:
        raise GraphQLError(
            str(error),
            extensions={
                "code": "REPLAY_TOO_LONG",
                "maxReplayEvents": error.max_replay_events,
                "behind": error.behind,
            },
        ) from None
    except PositionNotReached as error:
        raise UserInputError(str(error)) from None
    except SubscriberTooSlow as error:
        raise GraphQLError(
            str(error),
            extensions={"code": "SUBSCRIBER_TOO_SLOW", "resumeAfter": str(error.resume_after)},
        ) from None
