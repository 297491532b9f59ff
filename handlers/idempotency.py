"""The idempotency behavior: a command retried with the same key and input returns the first
result and changes nothing; the same key with other input is refused."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from domain.errors import DomainError, FieldIssue, ValidationFailed
from handlers.access import identity_of
from handlers.written import Written
from mediator import Context, ContextKey, Next
from persistence.idempotency import IdempotencyClaim, KeyAlreadyUsed, StoredOutcome

MAX_KEY_LENGTH = 200
IdempotencyKey = Annotated[str | None, Field(min_length=1, max_length=MAX_KEY_LENGTH)]
"""The type of a command's `idempotency_key`, checked by the validation behavior."""

CLAIM = ContextKey[IdempotencyClaim | None]("idempotency claim")
"""Read by the unit of work, which stores the key with the write."""


_CANONICAL = TypeAdapter(dict[str, Any])


@dataclass(frozen=True, slots=True)
class Replayed(Written):
    """The first outcome of a command retried with its key: nothing was done this time.

    Whoever presents the key and the input gets it, and both may be known to others
    (keys are the client's choice, and an input is a name and an email); so what is
    handed to the first caller only, a credential above all, is never handed out again.
    """


def fingerprint(message: object) -> str:
    """A digest of what was asked, key aside: the same request always digests alike."""
    fields = dataclasses.asdict(message)  # type: ignore[call-overload]
    fields.pop("idempotency_key", None)
    canonical = _CANONICAL.dump_json(fields)
    return hashlib.sha256(type(message).__name__.encode() + b"\0" + canonical).hexdigest()


def _replay(outcome: StoredOutcome, claim: IdempotencyClaim) -> Written:
    if outcome.fingerprint != claim.fingerprint:
        raise ValidationFailed(
            [FieldIssue(("idempotency_key",), "was already used for a different request")]
        )
    return Replayed(outcome.entity_id, outcome.version, outcome.position)


def idempotent(
    find: Callable[[IdempotencyClaim], Awaitable[StoredOutcome | None]],
    writes: Mapping[type, str],
) -> Callable[[object, Next[object], Context], Any]:
    """For the command types in `writes`, each mapped to the kind of entity it writes;
    `find` looks up what the first command with a claim's key wrote."""

    async def deduplicate(message: object, call_next: Next[object], ctx: Context) -> object:
        kind = writes.get(type(message))
        key = getattr(message, "idempotency_key", None)
        if kind is None or key is None:
            return await call_next()
        caller = identity_of(ctx)
        digest = fingerprint(message)
        # A key belongs to its caller. Anonymous callers are not told apart, so theirs
        # belongs to the request too: a replay needs the key and the very same input, and
        # no one can squat a key. That is no secret, hence no credential in a Replayed.
        owner = caller.subject if caller else f"anonymous:{digest}"
        claim = IdempotencyClaim(
            scope=f"{type(message).__name__}:{owner}",
            key=key,
            fingerprint=digest,
            kind=kind,
        )
        if (outcome := await find(claim)) is not None:
            return _replay(outcome, claim)
        ctx.set(CLAIM, claim)
        try:
            return await call_next()
        except KeyAlreadyUsed:
            # A concurrent retry stored the key first; its outcome is ours.
            outcome = await find(claim)
            assert outcome is not None
            return _replay(outcome, claim)
        except DomainError:
            # Or it committed between our look and our transaction, and its write is what
            # refused us (the email it registered is now taken): its outcome is ours too.
            if (outcome := await find(claim)) is None:
                raise
            return _replay(outcome, claim)
        finally:
            ctx.set(CLAIM, None)

    return deduplicate
