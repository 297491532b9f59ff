"""The signature on every webhook request, in the scheme Stripe's and GitHub's users know.

    Orderdesk-Signature: t=1733091234,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e7...

`v1` is the hex HMAC-SHA256, keyed with the webhook's secret (its UTF-8 bytes, `whsec_`
prefix included), of the timestamp, a dot and the request body exactly as sent. A receiver
recomputes it over the raw body it read (before any JSON parsing), compares in constant time,
and refuses a timestamp far from its own clock, so that a recorded request cannot be replayed
later. `verify` is that check, for the tests and as a model for receivers.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SIGNATURE_HEADER = "Orderdesk-Signature"
DELIVERY_HEADER = "Orderdesk-Delivery"
"""The delivery's id, the same at every attempt: what a receiver drops a repeat by."""
SECRET_PREFIX = "whsec_"
TOLERANCE = 300.0
"""Seconds a receiver should accept between the signature's time and its own."""


def new_secret() -> str:
    """A webhook's signing secret: 256 random bits, with a prefix that says what it is."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def digest(secret: str, timestamp: int, body: bytes) -> str:
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The Orderdesk-Signature header's value for `body` sent at `timestamp` (Unix seconds)."""
    return f"t={timestamp},v1={digest(secret, timestamp, body)}"


def verify(
    header: str, secret: str, body: bytes, *, now: float, tolerance: float = TOLERANCE
) -> bool:
    """Whether `header` signs `body` with `secret`, at a time within `tolerance` of `now`.

    Any `v1` in the header may match (a receiver may be sent several while a secret is
    being replaced); an unknown scheme is ignored, as Stripe's receivers do.
    """
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or abs(now - timestamp) > tolerance:
        return False
    expected = digest(secret, timestamp, body)
    return any(hmac.compare_digest(expected, given) for given in signatures)
