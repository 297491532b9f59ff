"""The metrics an operator watches beside the messages' timings: HTTP requests, websockets,
subscriptions, fan-out, the projector's and the event tail's lag, read-your-writes waits.

All in the service's registry (`Services.metrics`, served at /metrics). The hot paths pay a
dictionary lookup and an increment: label children are made once and kept; the lags are
worked out when /metrics is read, not as events go by.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from persistence.event_tail import EventTail
from persistence.projector import Projector
from persistence.reactor import Reactor

OTHER = "other"
METHODS = frozenset({"GET", "POST", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
"""Any other method is counted as `other`: a label's values must stay few."""
WAIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
REACTION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class OperationalMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._requests = Counter(
            "orderdesk_http_requests",
            "HTTP requests answered, by method, route (one of the app's routes, or `other` "
            "for any other path) and status code.",
            ["method", "route", "status"],
            registry=registry,
        )
        self._request_children: dict[tuple[str, str, int], Any] = {}
        self._sockets_open = Gauge(
            "orderdesk_websockets_open",
            "Websockets open now, by subprotocol.",
            ["subprotocol"],
            registry=registry,
        )
        self._sockets_opened = Counter(
            "orderdesk_websockets_opened",
            "Websockets accepted, by subprotocol.",
            ["subprotocol"],
            registry=registry,
        )
        self._subscriptions = Gauge(
            "orderdesk_subscriptions_active",
            "GraphQL subscriptions running now, by transport.",
            ["transport"],
            registry=registry,
        )
        fanned_out = Counter(
            "orderdesk_events_fanned_out",
            "Live events handed out: `tail`, by the event tail to each subscription's stream; "
            "`shared`, by a shared subscription's one execution to each socket sharing it.",
            ["stage"],
            registry=registry,
        )
        self.tail_fanned_out = fanned_out.labels("tail").inc
        self.shared_fanned_out = fanned_out.labels("shared").inc
        self.read_your_writes_waited = Histogram(
            "orderdesk_read_your_writes_wait_seconds",
            "Seconds a command waited, after its commit, for the read models to show it.",
            buckets=WAIT_BUCKETS,
            registry=registry,
        ).observe
        self.read_your_writes_timed_out = Counter(
            "orderdesk_read_your_writes_timeouts",
            "Commands whose read models did not show them within the read-your-writes "
            "timeout (answered READ_MODEL_LAGGING; the write is committed).",
            registry=registry,
        ).inc
        self._reaction_delays = Histogram(
            "orderdesk_reaction_delay_seconds",
            "Seconds from an event's commit to a reaction handler's successful handling of "
            "it, by handler (retries included).",
            ["handler"],
            buckets=REACTION_BUCKETS,
            registry=registry,
        )
        self._reaction_failures = Counter(
            "orderdesk_reaction_failures",
            "Failed deliveries of an event to a reaction handler, by handler (each is "
            "retried with backoff, then the handler is parked).",
            ["handler"],
            registry=registry,
        )
        self._webhook_attempts = Counter(
            "orderdesk_webhook_attempts",
            "Webhook deliveries attempted, by outcome: delivered, retrying (failed, to be "
            "tried again) or failed (given up).",
            ["outcome"],
            registry=registry,
        )
        self._socket_children_cache: dict[str, tuple[Any, Any]] = {}
        self._subscription_children: dict[str, Any] = {}
        self._reaction_children: dict[str, tuple[Any, Any]] = {}

    def webhook_attempted(self, outcome: str) -> None:
        self._webhook_attempts.labels(outcome).inc()

    def reaction_delivered(self, handler: str, seconds: float) -> None:
        self._reaction_child(handler)[0].observe(seconds)

    def reaction_failed(self, handler: str) -> None:
        self._reaction_child(handler)[1].inc()

    def _reaction_child(self, handler: str) -> tuple[Any, Any]:
        children = self._reaction_children.get(handler)
        if children is None:
            children = self._reaction_children[handler] = (
                self._reaction_delays.labels(handler),
                self._reaction_failures.labels(handler),
            )
        return children

    def http_request(self, method: str, route: str, status: int) -> None:
        """`route` is already bounded (orderdesk/observed_requests.py); `method` is here."""
        key = (method, route, status)
        child = self._request_children.get(key)
        if child is None:
            bounded = method if method in METHODS else OTHER
            child = self._requests.labels(bounded, route, str(status))
            if bounded == method:
                self._request_children[key] = child
        child.inc()

    def socket_opened(self, subprotocol: str) -> None:
        opened, open_now = self._socket_children(subprotocol)
        opened.inc()
        open_now.inc()

    def socket_closed(self, subprotocol: str) -> None:
        self._socket_children(subprotocol)[1].dec()

    def _socket_children(self, subprotocol: str) -> tuple[Any, Any]:
        children = self._socket_children_cache.get(subprotocol)
        if children is None:
            children = (
                self._sockets_opened.labels(subprotocol),
                self._sockets_open.labels(subprotocol),
            )
            self._socket_children_cache[subprotocol] = children
        return children

    def subscription_started(self, transport: str) -> None:
        self._subscription_child(transport).inc()

    def subscription_ended(self, transport: str) -> None:
        self._subscription_child(transport).dec()

    def _subscription_child(self, transport: str) -> Any:
        child = self._subscription_children.get(transport)
        if child is None:
            child = self._subscription_children[transport] = self._subscriptions.labels(transport)
        return child


class Lags(Collector):
    """The projections' and the event tail's lag, worked out at each scrape."""

    def __init__(self, projector: Projector, tail: EventTail) -> None:
        self._projector = projector
        self._tail = tail

    def describe(self) -> list[Metric]:
        # Named without being worked out: registering must not read the projector.
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        positions, seconds, tail_positions, tail_seconds = self._families()
        for name, behind, age in self._projector.lag():
            positions.add_metric([name], behind)
            seconds.add_metric([name], age)
        behind, age = self._tail.lag()
        tail_positions.add_metric([], behind)
        tail_seconds.add_metric([], age)
        yield from (positions, seconds, tail_positions, tail_seconds)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "orderdesk_projection_lag_positions",
                "Log positions a projection is behind the log's head as this process "
                "knows it (0 when caught up).",
                labels=["projection"],
            ),
            GaugeMetricFamily(
                "orderdesk_projection_lag_seconds",
                "Seconds since this process first heard of the oldest event a projection "
                "has not applied yet (0 when caught up); a parked projection's grows.",
                labels=["projection"],
            ),
            GaugeMetricFamily(
                "orderdesk_event_tail_lag_positions",
                "Log positions the read models have applied that the event tail has not "
                "fanned out to subscribers yet.",
            ),
            GaugeMetricFamily(
                "orderdesk_event_tail_lag_seconds",
                "Seconds since the read models applied the oldest event the event tail has "
                "not fanned out yet (0 when caught up).",
            ),
        )


class ReactionLags(Collector):
    """Each reaction handler's lag behind the log and whether it is parked, at each scrape."""

    def __init__(self, reactor: Reactor) -> None:
        self._reactor = reactor

    def describe(self) -> list[Metric]:
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        positions, parked = self._families()
        for name, behind in self._reactor.lag():
            positions.add_metric([name], behind)
        for status in self._reactor.status():
            parked.add_metric([status.name], 1 if status.parked_error else 0)
        yield from (positions, parked)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "orderdesk_reaction_lag_positions",
                "Log positions a reaction handler is behind the log's head as this process "
                "knows it (0 when caught up).",
                labels=["handler"],
            ),
            GaugeMetricFamily(
                "orderdesk_reaction_parked",
                "1 while a reaction handler is parked (`orderdesk reactions retry NAME`).",
                labels=["handler"],
            ),
        )
