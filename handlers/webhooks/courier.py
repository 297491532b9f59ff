"""The webhook courier: the worker that sends due deliveries, records each attempt, schedules
retries and disables an endpoint that keeps failing.

It claims what is due (handlers/webhooks/deliveries.py), a few at a time, sends each on its
own task so that one slow endpoint holds up no other, and looks again when woken by the
fan-out, when a send finishes, when the next retry falls due, or every poll interval at
the latest. Each request is signed (handlers/webhooks/signature.py) and carries the
delivery's id, the same at every attempt: delivery is at least once (a courier that dies
mid-send leaves its claim to lapse and the delivery is sent again), and receivers drop a
repeat by that id.

After `webhook_max_failures` failed attempts in a row for one webhook, whatever the
deliveries, it is disabled with the ordinary DisableWebhook command, sent as the system for
the request whose event was being delivered; a success in between starts the count again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from domain.webhooks import MAX_REASON
from handlers.feature import Reacting
from handlers.webhooks.backoff import next_attempt
from handlers.webhooks.deliveries import Attempt, ClaimedDelivery, CourierBook, DeliveryStatus
from handlers.webhooks.fan_out import WEBHOOK_DISABLED, Doorbell
from handlers.webhooks.payloads import DELIVERY_KIND, global_id
from handlers.webhooks.posting import Answer, Post
from handlers.webhooks.signature import DELIVERY_HEADER, SIGNATURE_HEADER, signature
from persistence.webhooks import DeliveryTarget

logger = logging.getLogger("orderdesk.webhooks")

CONCURRENCY = 16
"""Deliveries one courier sends at once."""
LEASE_MARGIN = 30.0
"""Seconds a claim outlasts the longest attempt, so that it never lapses mid-send."""
STOP_WITHIN = 5.0

Targets = Callable[[str], Awaitable[DeliveryTarget | None]]
Disable = Callable[[ClaimedDelivery, str], Awaitable[None]]
"""Disable the delivery's webhook, for the reason given."""


class Courier:
    def __init__(
        self,
        *,
        book: CourierBook,
        targets: Targets,
        post: Post,
        disable: Disable,
        reacting: Reacting,
        clock: Callable[[], datetime],
        doorbell: Doorbell,
        attempt_deadline: float,
        jitter: Callable[[], float] = random.random,
        concurrency: int = CONCURRENCY,
        on_stop: Callable[[], Awaitable[None]] | None = None,
        attempted: Callable[[str], None] | None = None,
    ) -> None:
        """`attempted` is told each attempt's outcome (delivered, retrying, failed), for
        the metrics."""
        self._attempted = attempted
        self._book = book
        self._targets = targets
        self._post = post
        self._disable = disable
        self._reacting = reacting
        self._clock = clock
        self._doorbell = doorbell
        self._lease = timedelta(seconds=attempt_deadline + LEASE_MARGIN)
        self._jitter = jitter
        self._concurrency = concurrency
        self._on_stop = on_stop
        self._name = uuid.uuid4().hex
        """This courier's claims are written as `<name>.<n>`, a new n for each."""
        self._claims = itertools.count(1)
        self._sending: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._loop is None:
            self._loop = asyncio.create_task(self._run(), name="webhook courier")

    async def stop(self) -> None:
        """Stop sending; what was being sent is given back, to be sent again (at least once)."""
        sending = list(self._sending)
        tasks = [t for t in (self._loop, *sending) if t is not None]
        self._loop = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if sending:
            try:
                async with asyncio.timeout(STOP_WITHIN):
                    await self._book.release(self._name)
            except Exception:
                logger.warning(
                    "could not give back the deliveries being sent; they are sent again "
                    "once their claims lapse",
                    exc_info=True,
                )
        if self._on_stop is not None:
            await self._on_stop()

    async def _run(self) -> None:
        while True:
            try:
                wait = await self._look()
            except Exception:
                logger.exception("the webhook courier could not look for due deliveries")
                wait = self._reacting.poll_interval
            await self._doorbell.wait(wait)

    async def _look(self) -> float:
        """Send what is due, if there is room; how long to wait before looking again.

        A look that finds nothing due is one read: the claim, which writes, is made only
        for something that is (on SQLite every write waits for the one writer).
        """
        poll = self._reacting.poll_interval
        if len(self._sending) >= self._concurrency:
            return poll  # a send that finishes rings the doorbell
        now = self._clock()
        due = await self._book.next_due(now)
        if due is None:
            return poll
        if due > now:
            return min(poll, (due - now).total_seconds())
        # More may be due than there was room for: look again at once.
        return 0.0 if await self.send_due() else poll

    async def send_due(self) -> int:
        """Claim what is due, as far as there is room, and start sending it; how many."""
        room = self._concurrency - len(self._sending)
        if room <= 0:
            return 0
        now = self._clock()
        token = f"{self._name}.{next(self._claims)}"
        claimed = await self._book.claim(now=now, until=now + self._lease, token=token, limit=room)
        for delivery in claimed:
            task = asyncio.create_task(self._deliver(delivery))
            self._sending.add(task)
            task.add_done_callback(self._sent)
        return len(claimed)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        self._doorbell.ring()

    async def _deliver(self, delivery: ClaimedDelivery) -> None:
        try:
            await self.attempt(delivery)
        except Exception:
            # Its claim lapses, and it is tried again then.
            logger.exception("sending webhook delivery %s failed", delivery.id)

    async def attempt(self, delivery: ClaimedDelivery) -> Answer | None:
        """Send one claimed delivery and record what came of it; None if it was cancelled."""
        target = await self._targets(delivery.webhook_id)
        attempted_at = self._clock()
        if target is None or not target.active:
            await self._book.cancel(
                delivery.id, token=delivery.claim, now=attempted_at, reason=WEBHOOK_DISABLED
            )
            return None
        body = delivery.payload.encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(target.secret, int(attempted_at.timestamp()), body),
            DELIVERY_HEADER: global_id(DELIVERY_KIND, delivery.id),
        }
        answer = await self._post(target.url, body, headers)
        number = delivery.attempts + 1
        retry_at = None
        if answer.succeeded:
            status = DeliveryStatus.DELIVERED
        else:
            retry_at = next_attempt(
                delivery.created_at,
                self._clock(),
                number,
                first=self._reacting.webhook_retry_delay,
                retry_for=self._reacting.webhook_retry_for,
                jitter=self._jitter(),
            )
            status = DeliveryStatus.PENDING if retry_at is not None else DeliveryStatus.FAILED
        await self._book.record(
            Attempt(
                delivery.id,
                delivery.webhook_id,
                number,
                attempted_at,
                answer.succeeded,
                answer.status_code,
                answer.error,
                answer.response_excerpt,
                answer.duration_ms,
                retry_at,
                status,
            ),
            token=delivery.claim,
        )
        if self._attempted is not None:
            self._attempted(
                status.value.lower() if status is not DeliveryStatus.PENDING else "retrying"
            )
        if not answer.succeeded:
            # An operator watching the log sees an endpoint failing before it is disabled.
            logger.warning(
                "webhook %s delivery %s attempt %d failed: %s%s",
                delivery.webhook_id,
                delivery.id,
                number,
                answer.error or answer.status_code,
                "" if retry_at is None else f"; next attempt at {retry_at.isoformat()}",
                extra={"correlation_id": delivery.correlation_id},
            )
            await self._count_failure(delivery, answer)
        return answer

    async def _count_failure(self, delivery: ClaimedDelivery, answer: Answer) -> None:
        failures = await self._book.failures_in_a_row(delivery.webhook_id)
        if failures < self._reacting.webhook_max_failures:
            return
        reason = f"disabled after {failures} failed attempts in a row; the last: {answer.error}"
        logger.error("webhook %s is %s", delivery.webhook_id, reason)
        await self._disable(delivery, reason[:MAX_REASON])
