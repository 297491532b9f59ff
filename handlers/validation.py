"""The validation behavior: each command's declarative rules, checked before its handler.

Rules are constraints in the command's annotations (`Annotated[int, Field(ge=1)]`),
checked by pydantic; every failure is reported at once, with its path in the GraphQL
input's own names (`lines.2.quantity`, `shippingAddress.postalCode`).
"""

from __future__ import annotations

import dataclasses
from functools import cache
from typing import Any

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from domain.errors import FieldIssue, ValidationFailed
from mediator import Context, Next


@cache
def _adapter(message_type: type) -> TypeAdapter[Any]:
    return TypeAdapter(message_type)


def _camel(name: str | int) -> str:
    if isinstance(name, int):
        return str(name)
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def check(message: object) -> None:
    """Raise ValidationFailed with every rule the message breaks."""
    if not dataclasses.is_dataclass(message) or isinstance(message, type):
        return
    try:
        _adapter(type(message)).validate_python(dataclasses.asdict(message))
    except PydanticValidationError as error:
        raise ValidationFailed(
            FieldIssue(tuple(_camel(part) for part in issue["loc"]), issue["msg"])
            for issue in error.errors()
        ) from None


async def validate_command(message: object, call_next: Next[object], ctx: Context) -> object:
    check(message)
    return await call_next()
