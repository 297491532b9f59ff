"""Bearer tokens: signed JWTs that say who the caller is."""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt

from handlers.access import Identity, Role

ALGORITHM = "HS256"
ISSUER = "orderdesk"

logger = logging.getLogger("orderdesk.tokens")


class InvalidToken(Exception):
    """A token that is malformed, forged, expired or not ours.

    Its message is ours, never the JWT library's: the library's reasons (which claim is
    missing, which check failed) would teach a forger what to change next.
    """


@dataclass(frozen=True, slots=True)
class Credential:
    """What a verified token says: who the caller is, and until when (POSIX seconds)."""

    identity: Identity
    expires_at: float


class Tokens:
    def __init__(self, secret: str, *, customer_lifetime: timedelta = timedelta(days=30)) -> None:
        if len(secret) < 32:
            raise ValueError("the token secret must be at least 32 characters")
        self._secret = secret
        self.customer_lifetime = customer_lifetime

    def issue(self, identity: Identity, *, lifetime: timedelta | None = None) -> str:
        now = datetime.now(UTC)
        claims = {
            "sub": identity.subject,
            "role": identity.role.value,
            "iss": ISSUER,
            "iat": now,
            "exp": now + (lifetime or self.customer_lifetime),
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def issue_for_customer(self, customer_id: str) -> str:
        return self.issue(Identity(customer_id, Role.CUSTOMER))

    def verify(self, token: str) -> Credential:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["sub", "exp", "iss", "role"]},
            )
            identity = Identity(str(claims["sub"]), Role(claims["role"]))
            if identity.is_system:
                # The service's own identity is never a bearer's, however the token was signed.
                raise ValueError("a token may not carry the system role")
            return Credential(identity, float(claims["exp"]))
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the bearer token has expired") from None
        except (jwt.InvalidTokenError, ValueError, TypeError) as error:
            logger.debug("refused a bearer token: %s", error)
            raise InvalidToken("the bearer token is not valid") from None

    def from_header(self, authorization: str | None) -> Credential | None:
        """The credential in an `Authorization: Bearer …` value; None when there is none."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("the Authorization header must be 'Bearer <token>'")
        return self.verify(token.strip())


def local_secret(path: Path) -> str:
    """A secret kept in a file beside the database, made on first use, readable by us alone.

    It spares a newcomer configuration on the embedded default; deployments set
    ORDERDESK_JWT_SECRET so that every process and host shares one.
    """
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_urlsafe(48))
    return path.read_text().strip()
