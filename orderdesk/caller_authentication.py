"""Who calls: the bearer token of an HTTP request, an event stream or a websocket's
`connection_init`, put on the request's context within the rate limits."""

from __future__ import annotations

from handlers.access import CLIENT_ADDRESS
from handlers.rate_limit import RateLimited
from orderdesk.bootstrap import Services
from orderdesk.tokens import Credential, InvalidToken
from schema.context import RequestContext


async def authenticate(context: RequestContext, authorization: str | None) -> None:
    """Put the caller named by `authorization` on the context; InvalidToken for a bad one,
    RateLimited past a budget.

    An address that sent too many bad tokens is refused before its next token is even
    checked: guessing costs the guesser, not the server.
    """
    if not authorization:
        return
    services: Services = context.request.app.state.services
    limits = services.rate_limits
    # Without an address (a unix socket) there is nothing to count failures by.
    address = context.ctx.find(CLIENT_ADDRESS)
    if (
        limits is not None
        and address is not None
        and (wait := await limits.auth_blocked(address)) is not None
    ):
        raise RateLimited(wait)
    try:
        credential: Credential | None = services.tokens.from_header(authorization)
    except InvalidToken:
        if (
            limits is not None
            and address is not None
            and (wait := await limits.failed_auth(address)) is not None
        ):
            raise RateLimited(wait) from None
        raise
    if credential is None:
        return
    subject = credential.identity.subject
    if limits is not None and (wait := await limits.admit_identity(subject)) is not None:
        raise RateLimited(wait)
    context.ctx.identity = credential.identity
    context.credential_expires_at = credential.expires_at
