"""When a failed webhook delivery is tried again, and when it is given up.

Each retry waits twice as long as the one before, from `webhook_retry_delay`, up to
`MAX_RETRY_DELAY`, and up to a fifth longer at random, so that the deliveries of an endpoint
that was down are not all retried in the same second when it comes back. A retry is
scheduled only if it falls within `webhook_retry_for` of the delivery's creation; past that,
the delivery is given up.
"""

from __future__ import annotations

from datetime import datetime, timedelta

MAX_RETRY_DELAY = 3_600.0
"""The longest wait between two attempts (an hour), unless the first wait is longer."""
JITTER = 0.2


def retry_delay(failed: int, *, first: float, jitter: float) -> float:
    """Seconds to wait after the `failed`-th failed attempt (1, 2, ...); `jitter` is a random
    number in [0, 1)."""
    cap = max(first, MAX_RETRY_DELAY)
    # The exponent is bounded: past 2**60 the cap has long been reached.
    step = min(first * 2.0 ** min(failed - 1, 60), cap)
    return step * (1 + JITTER * jitter)


def next_attempt(
    created_at: datetime,
    now: datetime,
    failed: int,
    *,
    first: float,
    retry_for: float,
    jitter: float,
) -> datetime | None:
    """When to try again after `failed` failed attempts, or None: give up."""
    due = now + timedelta(seconds=retry_delay(failed, first=first, jitter=jitter))
    if due > created_at + timedelta(seconds=retry_for):
        return None
    return due
