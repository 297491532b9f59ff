"""One event handed to the reaction handlers due, as the reactor makes every delivery: it
never raises (a failure of the delivery itself fails each handler due, to be retried), it is
a span when tracing is on, and the metrics are told how each handler fared."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass

from opentelemetry.trace import Tracer

from persistence.event_log import StoredEvent

logger = logging.getLogger("orderdesk.reactor")

Deliver = Callable[[StoredEvent, Collection[str]], Awaitable[Mapping[str, BaseException]]]
"""Hand one event to the named handlers; returns those that failed, with their errors."""


@dataclass(frozen=True, slots=True)
class ObservedDelivery:
    deliver: Deliver
    tracer: Tracer | None = None
    delivered: Callable[[str, float], None] | None = None
    """Told each handler's success, with the seconds since the event was committed."""
    failed: Callable[[str], None] | None = None
    """Told each handler's failure."""

    async def __call__(self, event: StoredEvent, due: list[str]) -> Mapping[str, BaseException]:
        if self.tracer is None:
            failures = await self._guarded(event, due)
        else:
            with self.tracer.start_as_current_span(
                f"reaction {event.event_type}",
                attributes={
                    "orderdesk.correlation_id": event.correlation_id,
                    "orderdesk.event.position": event.position,
                    "orderdesk.reaction.handlers": due,
                },
            ) as span:
                failures = await self._guarded(event, due)
                span.set_attribute("orderdesk.reaction.failed", sorted(failures))
        if self.delivered is not None:
            delay = max(0.0, time.time() - event.occurred_at.timestamp())
            for name in due:
                if name not in failures:
                    self.delivered(name, delay)
        if self.failed is not None:
            for name in failures:
                self.failed(name)
        return failures

    async def _guarded(self, event: StoredEvent, due: list[str]) -> Mapping[str, BaseException]:
        try:
            return await self.deliver(event, due)
        except Exception as error:
            logger.exception("delivering event %d failed", event.position)
            return dict.fromkeys(due, error)
