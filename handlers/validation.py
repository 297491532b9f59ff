"""The validation behavior: each command's declarative rules, checked before its handler.

Rules are constraints in the command's annotations (`Annotated[int, Field(ge=1)]`),
checked by pydantic; every failure is reported at once, with its path in the command's
own field names (`lines.2.quantity`, `shipping_address.postal_code`).

What a client reads is the domain's wording, never pydantic's: a constraint states its
message beside it (`Says(ge="a quantity is at least 1")`), and one without is worded from
the constraint alone ("at most 200 characters").
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, Union, get_args, get_origin, get_type_hints

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import ErrorDetails

from domain.errors import ChecksItself, FieldIssue, ValidationFailed
from mediator import Context, Next

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


# The constraint of `Field` that fails with each pydantic error type.
_CONSTRAINT_OF: Mapping[str, str] = {
    "greater_than_equal": "ge",
    "greater_than": "gt",
    "less_than_equal": "le",
    "less_than": "lt",
    "too_short": "min_length",
    "string_too_short": "min_length",
    "too_long": "max_length",
    "string_too_long": "max_length",
    "string_pattern_mismatch": "pattern",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Says:
    """What a client is told when a constraint of the field fails, each by the constraint's
    name in `Field`; `invalid` is for every other failure (a validator's, a value of the
    wrong kind)::

        quantity: Annotated[int, Field(ge=1), Says(ge="a quantity is at least 1")]
    """

    ge: str | None = None
    gt: str | None = None
    le: str | None = None
    lt: str | None = None
    min_length: str | None = None
    max_length: str | None = None
    pattern: str | None = None
    invalid: str | None = None

    def about(self, error_type: str) -> str | None:
        told: str | None = getattr(self, _CONSTRAINT_OF.get(error_type, "invalid"))
        return told


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
        issues += [_issue(type(message), failure) for failure in error.errors()]
    if issues:
        raise ValidationFailed(_most_specific(issues))


def _issue(message_type: type, failure: ErrorDetails) -> FieldIssue:
    path = tuple(str(part) for part in failure["loc"])
    says = _says_at(message_type, failure["loc"])
    told = says.about(failure["type"]) if says is not None else None
    return FieldIssue(path, told or plain_wording(failure))


def _says_at(message_type: type, loc: tuple[int | str, ...]) -> Says | None:
    """The `Says` of the field that `loc` names, following dataclass fields and items."""
    hint: object = message_type
    for part in loc:
        core = _core(hint)
        if isinstance(part, str) and isinstance(core, type) and dataclasses.is_dataclass(core):
            hint = _hints(core).get(part)
        elif isinstance(part, int) and get_origin(core) in (tuple, list):
            hint = get_args(core)[0]
        else:
            return None
    if get_origin(hint) is not Annotated:
        return None
    return next((meta for meta in get_args(hint)[1:] if isinstance(meta, Says)), None)


def _core(hint: object) -> object:
    """The type under `Annotated[...]` and `X | None`."""
    while True:
        if get_origin(hint) is Annotated:
            hint = get_args(hint)[0]
        elif get_origin(hint) in (Union, types.UnionType):
            options = [arg for arg in get_args(hint) if arg is not type(None)]
            if len(options) != 1:
                return hint
            hint = options[0]
        else:
            return hint


@cache
def _hints(dataclass_type: type) -> dict[str, object]:
    return get_type_hints(dataclass_type, include_extras=True)


def plain_wording(failure: ErrorDetails) -> str:
    """A failure worded from its constraint alone, for a field that says nothing of its own:
    what the value must be, without pydantic's phrasing or any internal name."""
    kind, bound = failure["type"], failure.get("ctx", {})
    if kind in _BOUNDS:
        words, constraint = _BOUNDS[kind]
        return f"{words} {bound[constraint]}"
    if kind in ("string_too_short", "too_short"):
        return f"at least {_count(bound['min_length'], _unit(kind))}"
    if kind in ("string_too_long", "too_long"):
        return f"at most {_count(bound['max_length'], _unit(kind))}"
    return _EXPECTED.get(kind, "not a valid value")


_BOUNDS = {
    "greater_than_equal": ("at least", "ge"),
    "greater_than": ("more than", "gt"),
    "less_than_equal": ("at most", "le"),
    "less_than": ("less than", "lt"),
}


def _unit(kind: str) -> str:
    return "character" if kind.startswith("string") else "item"


def _count(number: int, unit: str) -> str:
    return f"{number} {unit}" if number == 1 else f"{number} {unit}s"


_EXPECTED = {
    "missing": "required",
    "string_pattern_mismatch": "not in the expected form",
    "string_type": "text",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "decimal_type": "a decimal number",
    "decimal_parsing": "a decimal number",
    "finite_number": "a finite number",
    "tuple_type": "a list",
    "list_type": "a list",
}


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
            yield FieldIssue(path, "text cannot contain NUL characters")
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
