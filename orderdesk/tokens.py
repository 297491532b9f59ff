"""Bearer tokens: signed JWTs that say who the caller is."""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt

from handlers.access import Identity, Role

ALGORITHM = "HS256"
ISSUER = "orderdesk"


class InvalidToken(Exception):
    """A token that is malformed, forged, expired or not ours."""


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

    def verify(self, token: str) -> Identity:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["sub", "exp", "iss", "role"]},
            )
            return Identity(str(claims["sub"]), Role(claims["role"]))
        except (jwt.InvalidTokenError, ValueError) as error:
            raise InvalidToken(str(error)) from None

    def from_header(self, authorization: str | None) -> Identity | None:
        """The caller named by an `Authorization: Bearer …` value; None when there is none."""
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
