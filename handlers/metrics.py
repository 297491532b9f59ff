"""The metrics behavior: how many messages of each type, their outcome, and how long they took."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Histogram

from domain.errors import DomainError
from mediator import Context, Next


def measure_messages(registry: CollectorRegistry) -> Callable[[object, Next[object], Context], Any]:
    """Record each message in `orderdesk_message_seconds{message, outcome}`.

    The outcome is `ok`, `refused` (a domain refusal: an expected result) or `failed`.
    """
    seconds = Histogram(
        "orderdesk_message_seconds",
        "Time to handle a message through the pipeline, by message type and outcome.",
        ["message", "outcome"],
        registry=registry,
    )

    async def record(message: object, call_next: Next[object], ctx: Context) -> object:
        started = time.perf_counter()
        outcome = "failed"
        try:
            result = await call_next()
            outcome = "ok"
            return result
        except DomainError:
            outcome = "refused"
            raise
        finally:
            elapsed = time.perf_counter() - started
            seconds.labels(type(message).__name__, outcome).observe(elapsed)

    return record
