"""OpenTelemetry tracing: on when an OTLP endpoint is configured, off and free otherwise.

On (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` set), the SDK is
installed with an OTLP/HTTP exporter, and it reads every other standard variable itself
(`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`, `_ARG`, the
exporter's headers and timeouts...); the service is named "orderdesk" unless they say
otherwise. Spans: each HTTP request (orderdesk/observed_requests.py), each websocket
operation (orderdesk/socket_operations.py), each message through the mediator
(handlers/tracing.py), each SQL statement, each projector batch; every one carries the
request's correlation id (`orderdesk.correlation_id`), and the ones a request causes are
children of its span.

Off, no tracer provider is installed, no span is made and no engine is instrumented:
whoever would make spans asks `tracer()` once, when it is built, finds None, and is built
without them. This module then loads neither the trace SDK nor the exporter, but the SDK
may be imported all the same: redis-py imports parts of it (its metrics) for its own
observability whether or not anyone traces.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import Tracer
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

logger = logging.getLogger("orderdesk")

SERVICE_NAME = "orderdesk"
ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

_tracer: Tracer | None = None
_provider: TracerProvider | None = None


def tracer() -> Tracer | None:
    """The tracer to make spans with, or None when tracing is off."""
    return _tracer


def configure_from_environment() -> None:
    """Install the SDK with an OTLP exporter if the environment names an endpoint; once
    per process (a second app in the process shares it)."""
    if _tracer is not None or not any(os.environ.get(name) for name in ENDPOINTS):
        return
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return
    # Imported here, not above: with tracing off, the exporter and the trace SDK are not needed.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        # Neither OTEL_SERVICE_NAME nor OTEL_RESOURCE_ATTRIBUTES named it.
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    install_tracer_provider(provider)
    logger.info("tracing: spans go to %s", next(os.environ[n] for n in ENDPOINTS if os.getenv(n)))


def install_tracer_provider(provider: TracerProvider) -> None:
    """Trace into `provider` from now on: apps created after this call make spans.

    What the environment's configuration does, and what tests call with an in-memory
    exporter. The provider gets the processor that hands each span its parent's
    correlation id (SQL statements have no other way to know theirs).
    """
    global _tracer, _provider  # noqa: PLW0603
    from orderdesk.span_correlation import CorrelationIds  # noqa: PLC0415 - the SDK's

    provider.add_span_processor(CorrelationIds())
    _provider = provider
    _tracer = provider.get_tracer("orderdesk")


def uninstall_tracer_provider() -> None:
    """Tracing off again for apps created from now on (tests)."""
    global _tracer, _provider  # noqa: PLW0603
    _tracer = None
    _provider = None


def instrument_engines(engines: Iterable[AsyncEngine]) -> Callable[[], None]:
    """A span for each SQL statement run on `engines`, while tracing is on; returns what
    takes the instrumentation off again (the engines' own listeners, no one else's).

    Statements are bound, so a span shows the SQL text but never the parameters.
    """
    if _provider is None:
        return lambda: None
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer  # noqa: PLC0415
    from opentelemetry.metrics import get_meter  # noqa: PLC0415

    statements = trace.get_tracer("opentelemetry.instrumentation.sqlalchemy", None, _provider)
    connections = get_meter(__name__).create_up_down_counter(
        "db.client.connections.usage", unit="connections"
    )

    class InTraces(EngineTracer):
        """Statements inside a span only: the projector's polls and lease beats, outside
        any, would each be a trace of one statement, every poll interval."""

        def _before_cur_exec(self, *args: Any) -> Any:
            if not trace.get_current_span().get_span_context().is_valid:
                return args[2], args[3]  # the statement and its parameters, untouched
            return super()._before_cur_exec(*args)  # type: ignore[no-untyped-call]

    targets = list({id(e.sync_engine): e.sync_engine for e in engines}.values())
    for target in targets:
        # Its listeners on these engines only; the instrumentor's `instrument()` would also
        # patch create_engine for every engine made in the process afterwards.
        InTraces(statements, target, connections)  # type: ignore[no-untyped-call]

    def uninstrument() -> None:
        listeners = EngineTracer._remove_event_listener_params
        for entry in list(listeners):
            reference, identifier, listener = entry
            target = reference()
            if any(target is t for t in targets):
                event.remove(target, identifier, listener)
                listeners.remove(entry)

    return uninstrument


def engine_instrumented(engine: AsyncEngine) -> bool:
    """Whether SQL statements on `engine` make spans."""
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer  # noqa: PLC0415

    return any(
        reference() is engine.sync_engine
        for reference, _, _ in EngineTracer._remove_event_listener_params
    )
