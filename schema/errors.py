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
from strawberry.utils.str_converters import to_camel_case

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
from schema.ids import MalformedId, SentId, UnusableId, global_id

logger = logging.getLogger("orderdesk.graphql")


@strawberry.interface(
    name="Error",
    description="What every typed error of a mutation's result shares. Select `... on Error "
    "{ message }` to show any refusal, and the concrete types for what to do about it.",
)
class Error:
    message: str = strawberry.field(
        description="What went wrong, in English, for a person to read; not for matching in "
        "code (use __typename and the error's fields)."
    )


@strawberry.type(description="One invalid input field and what is wrong with it.")
class FieldError:
    path: list[str] = strawberry.field(
        description="The field, from the mutation's `input` down, in the input's own names "
        'and list indexes: ["lines", "2", "quantity"], ["shippingAddress", "postalCode"].'
    )
    message: str = strawberry.field(
        description='What is wrong with the field, for a person: "must be 1 to 1000".'
    )


@strawberry.type(
    description="The input was refused and nothing was changed: fix the fields and send it "
    "again. Every problem is reported at once."
)
class ValidationError(Error):
    fields: list[FieldError] = strawberry.field(
        description="Each invalid field with its problem; at least one."
    )


@strawberry.type(
    description="An id in the input names nothing the caller can act on: it never existed, it "
    "was deleted, it is an id of another type, or it is another customer's order."
)
class NotFoundError(Error):
    id: strawberry.ID = strawberry.field(
        description="The global id of what was not found (for an order placed for an unknown "
        "customer, the customer's)."
    )


@strawberry.type(
    description="The entity changed since the caller read it: `expectedVersion` is no longer "
    "its version. Nothing was changed; read it again, and decide again."
)
class ConflictError(Error):
    expected_version: int = strawberry.field(description="The version the input expected.")
    actual_version: int = strawberry.field(description="The entity's version now.")


@strawberry.type(
    description="A product has less stock than an order line asks for. Nothing was reserved, "
    "for any line; the order was not placed."
)
class OutOfStockError(Error):
    product_id: strawberry.ID = strawberry.field(
        description="The global id of the product that is short (the first one, if several)."
    )
    requested: int = strawberry.field(description="The quantity the order line asked for.")
    available: int = strawberry.field(description="The product's stock now.")


@strawberry.type(
    description="The order cannot make this move from its current status (see OrderStatus). "
    "Nothing was changed."
)
class InvalidTransitionError(Error):
    from_: str = strawberry.field(
        name="from", description="The order's status now, an OrderStatus name such as SHIPPED."
    )
    to: str = strawberry.field(
        description="The status the mutation would have moved it to, such as CANCELLED."
    )


@strawberry.type(
    description="The caller may not do this: a customer doing what only staff may, or ordering "
    "for another customer, or an anonymous caller doing what needs signing in."
)
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
"""Every typed error a command's refusal can become. Not a GraphQL type: each mutation's
result union names the part of it that mutation can return (schema/results.py)."""


def graphql_name(name: str) -> str:
    """A field's name as the schema spells it, by the converter the schema itself uses:
    `postal_code` is `postalCode`; list indexes are left as they are."""
    return to_camel_case(name)


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
        return _not_found(error)
    if isinstance(error, VersionConflict):
        return ConflictError(
            message=f"{_named(error)} is at version {error.actual}, not the expected "
            f"{error.expected}: it changed meanwhile; read it again before changing it",
            expected_version=error.expected,
            actual_version=error.actual,
        )
    if isinstance(error, OutOfStock):
        product = global_id("Product", error.product_id)
        return OutOfStockError(
            message=f"product {product} has {error.available} in stock, fewer than the "
            f"{error.requested} asked for",
            product_id=strawberry.ID(product),
            requested=error.requested,
            available=error.available,
        )
    if isinstance(error, InvalidTransition):
        return InvalidTransitionError(
            message=f"{_named(error)} is {error.current} and cannot become {error.wanted}",
            from_=error.current,
            to=error.wanted,
        )
    if isinstance(error, NotAuthorized):
        return NotAuthorizedError(message=error.message)
    raise TypeError(f"no GraphQL type for {type(error).__name__}") from error


def _not_found(error: NotFound) -> NotFoundError:
    if isinstance(error, UnusableId):
        # Named as the client sent it: re-encoded, it would be an id the client never sent.
        return NotFoundError(message=error.reason, id=strawberry.ID(error.sent))
    return NotFoundError(
        message=f"there is no {error.kind.lower()} with the id {_id_of(error)}",
        id=strawberry.ID(_id_of(error)),
    )


# What the domain's errors say is for operators, by internal id; a client reads the
# messages written here, which name each entity by the global id it knows it by.
def _id_of(error: NotFound | VersionConflict | InvalidTransition) -> str:
    return global_id(error.kind, error.entity_id)


def _named(error: VersionConflict | InvalidTransition) -> str:
    return f"{error.kind.lower()} {_id_of(error)}"


class UserInputError(GraphQLError):
    """A query's arguments are wrong: a GraphQL error with code BAD_USER_INPUT."""

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message, extensions={"code": "BAD_USER_INPUT", **extensions})


def filter_id(sent: str | None, kind: str, field: str | None = None) -> str | None:
    """The id inside an argument that narrows a list or a stream to one `kind`: another
    type's id, or no id at all, is BAD_USER_INPUT (a filter that could match nothing is a
    mistake, not an empty answer), with the argument as `field` if given."""
    if sent is None:
        return None
    try:
        decoded = SentId.decode(sent, kind)
    except MalformedId as error:
        reason: str | None = str(error)
    else:
        reason = decoded.not_of(kind)
    if reason is None:
        return decoded.local
    if field is None:
        raise UserInputError(reason)
    raise UserInputError(reason, fields=[{"path": [field], "message": reason}])


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
                error.message = _lagging_message(original.written)
                error.extensions.update(_what_was_written(original.written))
            if isinstance(original, RateLimited):
                # The HTTP view answers 429 with this as Retry-After.
                error.extensions["retryAfter"] = original.seconds


def _lagging_message(written: Written) -> str:
    """What a committed write whose result cannot be shown says: the entity by its global
    id (the exception's own text, for the log, has the internal one)."""
    what = "the write"
    if written.kind is not None:
        what = f"{written.kind.lower()} {global_id(written.kind, written.entity_id)}"
    return (
        f"{what} was saved at version {written.version} but cannot be shown yet; read it "
        "again shortly, without repeating the mutation"
    )


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
