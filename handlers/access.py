"""Who may send what: the caller's identity, one policy per message type, and the behavior
that applies them before any handler runs."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from domain.errors import DomainError
from mediator import Context, ContextKey, Next, NextStream


class Role(enum.Enum):
    CUSTOMER = "customer"
    STAFF = "staff"
    SYSTEM = "system"
    """The service itself, acting on its own account (a reaction's command); never a token's."""


@dataclass(frozen=True, slots=True)
class Identity:
    """The caller, as its verified token says. A customer's subject is its customer id."""

    subject: str
    role: Role

    @property
    def is_staff(self) -> bool:
        """Staff, or the service itself, which may do whatever staff may."""
        return self.role is Role.STAFF or self.role is Role.SYSTEM

    @property
    def is_system(self) -> bool:
        return self.role is Role.SYSTEM

    @property
    def customer_id(self) -> str | None:
        return self.subject if self.role is Role.CUSTOMER else None


CLIENT_ADDRESS = ContextKey[str]("client_address")
"""The caller's network address (the proxy's X-Forwarded-For where the proxy is trusted),
which the transport puts on every request's context: what budgets per address count by."""


class NotAuthorized(DomainError):
    """The caller may not do this; `signed_in` says whether signing in could help."""

    def __init__(self, message: str, *, signed_in: bool) -> None:
        super().__init__(message)
        self.signed_in = signed_in


def identity_of(ctx: Context) -> Identity | None:
    return ctx.identity if isinstance(ctx.identity, Identity) else None


Policy = Callable[[Any, Identity | None], bool]
"""Whether this caller may send this message (ownership of data is the handler's check)."""


def anyone(_message: object, _caller: Identity | None) -> bool:
    return True


def staff(_message: object, caller: Identity | None) -> bool:
    return caller is not None and caller.is_staff


def system(_message: object, caller: Identity | None) -> bool:
    """Only the service itself: a command that reactions send, and no caller may."""
    return caller is not None and caller.is_system


def signed_in(_message: object, caller: Identity | None) -> bool:
    return caller is not None


def authorize(
    policies: Mapping[type, Policy],
) -> Callable[[object, Next[object], Context], Any]:
    """Refuse a message its policy does not allow. A type without a policy is refused too:
    forgetting to write one must not open a door (bootstrap also checks for gaps)."""

    async def check_access(message: object, call_next: Next[object], ctx: Context) -> object:
        _check(policies, message, ctx)
        return await call_next()

    return check_access


def authorize_streams(
    policies: Mapping[type, Policy],
) -> Callable[[object, NextStream[object], Context], AsyncIterator[object]]:
    """The same check for subscriptions, before the first event is read."""

    async def check_stream_access(
        message: object, call_next: NextStream[object], ctx: Context
    ) -> AsyncIterator[object]:
        _check(policies, message, ctx)
        async for item in call_next():
            yield item

    return check_stream_access


def _check(policies: Mapping[type, Policy], message: object, ctx: Context) -> None:
    caller = identity_of(ctx)
    policy = policies.get(type(message))
    if policy is None or not policy(message, caller):
        if caller is None:
            raise NotAuthorized("Sign in to do this", signed_in=False)
        raise NotAuthorized("You may not do this", signed_in=True)
