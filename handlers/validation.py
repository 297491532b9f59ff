"""The validation behavior: each command's declarative rules, checked before its handler.

Rules are constraints in the command's annotations (`Annotated[int, Field(ge=1)]`),
checked by pydantic; every failure is reported at once, with its path in the command's
own field names (`lines.2.quantity`, `shipping_address.postal_code`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from domain.errors import ChecksItself, FieldIssue, ValidationFailed
from mediator import Context, Next

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


@cache
def _adapter(message_type: type) -> TypeAdapter[Any]:
    return TypeAdapter(message_type)


def check(message: object) -> None:
    """Raise ValidationFailed with every rule the message breaks."""
    if not dataclasses.is_dataclass(message) or isinstance(message, type):
        return
    fields = dataclasses.asdict(message)
    issues = list(_nul_characters(fields, ()))
    issues += _value_issues(message)
    try:
        _adapter(type(message)).validate_python(fields)
    except PydanticValidationError as error:
        issues += [
            FieldIssue(tuple(str(part) for part in issue["loc"]), issue["msg"])
            for issue in error.errors()
        ]
    if issues:
        raise ValidationFailed(_most_specific(issues))


def _value_issues(message: DataclassInstance) -> list[FieldIssue]:
    """The rules of the domain values the command carries (an order's address): reported
    with the rest, so a form learns every problem at once."""
    return [
        FieldIssue((field.name, *issue.path), issue.message)
        for field in dataclasses.fields(message)
        if isinstance(value := getattr(message, field.name), ChecksItself)
        for issue in value.issues()
    ]


def _nul_characters(value: object, path: tuple[str, ...]) -> Iterator[FieldIssue]:
    """NUL in text: PostgreSQL cannot store it (SQLite can), so no database may get it."""
    if isinstance(value, str):
        if "\x00" in value:
            yield FieldIssue(path, "must not contain NUL characters")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _nul_characters(item, (*path, key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _nul_characters(item, (*path, str(index)))


def _most_specific(issues: list[FieldIssue]) -> list[FieldIssue]:
    """Drop an issue whose field has issues inside it: when items fail, pydantic also says
    the list is too short, which only repeats them."""
    return [
        issue
        for issue in issues
        if not any(
            len(other.path) > len(issue.path) and other.path[: len(issue.path)] == issue.path
            for other in issues
        )
    ]


async def validate_command(message: object, call_next: Next[object], ctx: Context) -> object:
    check(message)
    return await call_next()
