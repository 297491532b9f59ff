"""The service's one secret (ORDERDESK_JWT_SECRET, or a file made on first use) and what is
derived from it: the token signer, and a key per purpose (sign-in codes, the query cache)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from functools import cache
from pathlib import Path

from orderdesk.settings import Settings
from orderdesk.tokens import Tokens, local_secret


def service_secret(settings: Settings) -> str:
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value()
    return local_secret(Path("orderdesk.secret"))


def service_key(settings: Settings) -> Callable[[str], bytes]:
    """Keys derived from the service secret, one per purpose (a label), each made on first
    use: the secret file is made only when something needs a key."""

    @cache
    def key(purpose: str) -> bytes:
        secret = service_secret(settings).encode()
        return hmac.new(secret, purpose.encode(), hashlib.sha256).digest()

    return key


def tokens_for(settings: Settings) -> Tokens:
    return Tokens(service_secret(settings))
