"""Typed errors (expected outcomes, as data) and the policy for GraphQL `errors` (faults)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import strawberry
from graphql import DocumentNode, GraphQLError
from graphql import parse as parse_document
from strawberry.extensions import MaskErrors
from strawberry.relay.types import GlobalIDValueError

from domain.errors import (
    DomainError,
    FieldIssue,
    InvalidTransition,
    NotFound,
    OutOfStock,
    ValidationFailed,
    VersionConflict,
)
from handlers.access import NotAuthorized
from handlers.pipeline import DatabaseUnavailable, ReadModelLagging
from handlers.rate_limit import RateLimited
from handlers.written import Written
from schema.ids import global_id

logger = logging.getLogger("orderdesk.graphql")


@strawberry.interface(name="Error")
class Error:
    message: str


@strawberry.type
class FieldError:
    path: list[str]
    message: str


@strawberry.type
class ValidationError(Error):
    fields: list[FieldError]


@strawberry.type
class NotFoundError(Error):
    id: strawberry.ID


@strawberry.type
class ConflictError(Error):
    expected_version: int
    actual_version: int


@strawberry.type
class OutOfStockError(Error):
    product_id: strawberry.ID
    requested: int
    available: int


@strawberry.type
class InvalidTransitionError(Error):
    from_: str = strawberry.field(name="from")
    to: str


@strawberry.type
class NotAuthorizedError(Error):
    pass


CommandError = (
    ValidationError
    | NotFoundError
    | ConflictError
    | OutOfStockError
    | InvalidTransitionError
    | NotAuthorizedError
)


def graphql_name(name: str) -> str:
    """A field's name as the schema spells it (Strawberry's own rule): `postal_code` is
    `postalCode`. Names already in that form, and list indexes, are left as they are."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def in_graphql_names(error: ValidationFailed) -> ValidationFailed:
    """The refusal with its paths in the input's GraphQL names: the domain and the handlers
    name fields in their own words, and this is the one place those become the API's."""
    return ValidationFailed(
        FieldIssue(tuple(graphql_name(part) for part in issue.path), issue.message)
        for issue in error.issues
    )


def bad_user_input(error: ValidationFailed) -> UserInputError:
    """A query's refusal: BAD_USER_INPUT, with each field's path and message."""
    named = in_graphql_names(error)
    fields = [{"path": list(i.path), "message": i.message} for i in named.issues]
    return UserInputError(named.message, fields=fields)


def typed_error(error: DomainError) -> CommandError:
    """The GraphQL type of a domain refusal."""
    if isinstance(error, ValidationFailed):
        named = in_graphql_names(error)
        return ValidationError(
            message=named.message,
            fields=[FieldError(path=list(i.path), message=i.message) for i in named.issues],
        )
    if isinstance(error, NotFound):
        return NotFoundError(
            message=error.message, id=strawberry.ID(global_id(error.kind, error.entity_id))
        )
    if isinstance(error, VersionConflict):
        return ConflictError(
            message=error.message, expected_version=error.expected, actual_version=error.actual
        )
    if isinstance(error, OutOfStock):
        return OutOfStockError(
            message=error.message,
            product_id=strawberry.ID(global_id("Product", error.product_id)),
            requested=error.requested,
            available=error.available,
        )
    if isinstance(error, InvalidTransition):
        return InvalidTransitionError(message=error.message, from_=error.current, to=error.wanted)
    if isinstance(error, NotAuthorized):
        return NotAuthorizedError(message=error.message)
    raise TypeError(f"no GraphQL type for {type(error).__name__}") from error


class UserInputError(GraphQLError):
    """A query's arguments are wrong: a GraphQL error with code BAD_USER_INPUT."""

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message, extensions={"code": "BAD_USER_INPUT", **extensions})


def access_error(error: NotAuthorized) -> GraphQLError:
    """UNAUTHENTICATED when signing in could help, FORBIDDEN when it could not."""
    return GraphQLError(
        error.message, extensions={"code": "FORBIDDEN" if error.signed_in else "UNAUTHENTICATED"}
    )


def is_fault(error: GraphQLError) -> bool:
    """An error the client did not cause: anything raised that is not a GraphQL error."""
    original = error.original_error
    return original is not None and not isinstance(
        original, GraphQLError | ReadModelLagging | RateLimited | GlobalIDValueError
    )


class ErrorPolicy(MaskErrors):
    """Every GraphQL error gets `extensions.code`; faults are masked, never leaked.

    Errors GraphQL itself raised (syntax, validation, variable coercion) and our own
    GraphQL errors keep their message. Anything else is an internal error: the client
    sees "Internal server error"; `LoggedSchema` has logged the traceback with the
    request's correlation id.
    """

    def __init__(self) -> None:
        super().__init__(should_mask_error=is_fault, error_message=INTERNAL_ERROR)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        return masked(error)

    def _process_result(self, result: object) -> None:
        # Most results have no errors; Strawberry's check is an isinstance against a
        # runtime Protocol, which costs more than the rest of this extension per request.
        if getattr(result, "errors", None):
            super()._process_result(result)

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        processed = super()._process_errors(errors)
        add_codes(processed)
        return processed


INTERNAL_ERROR = "Internal server error"
UNAVAILABLE = (
    "The database did not answer in time; retry shortly. A mutation may or may not have "
    "been applied: retrying it with the same idempotencyKey is safe."
)


def masked(error: GraphQLError) -> GraphQLError:
    """A fault as the client sees it: SERVICE_UNAVAILABLE when the database did not answer
    (worth a retry), else an internal error; neither says more (no SQL, no parameters)."""
    if isinstance(error.original_error, DatabaseUnavailable):
        message, code = UNAVAILABLE, "SERVICE_UNAVAILABLE"
    else:
        message, code = INTERNAL_ERROR, "INTERNAL_SERVER_ERROR"
    return GraphQLError(message, nodes=error.nodes, path=error.path, extensions={"code": code})


def finish_errors(errors: list[GraphQLError]) -> list[GraphQLError]:
    """Mask faults and add codes, for errors that reached no extension.

    A syntax error raised in the parse hook (schema/documents.py), or an exception from an extension
    itself, skips the extensions' result processing; the HTTP view passes every result
    through this last.
    """
    finished = [masked(error) if is_fault(error) else error for error in errors]
    add_codes(finished)
    return finished


def add_codes(errors: list[GraphQLError]) -> None:
    for error in errors:
        if not (error.extensions and "code" in error.extensions):
            error.extensions = {**(error.extensions or {}), "code": _code_of(error)}
            original = error.original_error
            if isinstance(original, ReadModelLagging) and original.written is not None:
                error.extensions.update(_what_was_written(original.written))
            if isinstance(original, RateLimited):
                # The HTTP view answers 429 with this as Retry-After.
                error.extensions["retryAfter"] = original.seconds


def _what_was_written(written: Written) -> dict[str, object]:
    shown: dict[str, object] = {"version": written.version}
    if written.kind is not None:
        shown["id"] = global_id(written.kind, written.entity_id)
    return shown


class LoggedSchema(strawberry.Schema):
    """Logs faults with their traceback; client errors are the client's, and log at DEBUG.

    `parse` is the schema's own parser (the token limit, and the cache of what a text gave):
    what else in the service needs a query's document takes it from there, so a long text
    costs one bounded parse, not one per place that looks at it.
    """

    parse: Callable[[str], DocumentNode] = staticmethod(parse_document)

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        for error in errors:
            if isinstance(error.original_error, DatabaseUnavailable):
                logger.warning(
                    "the database did not answer at %s: %r", error.path, error.original_error
                )
            elif is_fault(error):
                logger.error("internal error at %s", error.path, exc_info=error.original_error)
            else:
                logger.debug("GraphQL error: %s", error.message)


def _code_of(error: GraphQLError) -> str:
    if isinstance(error.original_error, ReadModelLagging):
        return "READ_MODEL_LAGGING"
    if isinstance(error.original_error, RateLimited):
        return "RATE_LIMITED"
    if error.original_error is not None:
        return "BAD_USER_INPUT"
    if error.message.startswith("Syntax Error"):
        return "GRAPHQL_PARSE_FAILED"
    if error.message.startswith("Variable "):
        return "BAD_USER_INPUT"
    return "GRAPHQL_VALIDATION_FAILED"
