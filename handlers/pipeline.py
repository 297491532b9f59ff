"""Pipeline behaviors that apply across features: logging and read-your-writes."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from domain.errors import DomainError
from handlers.written import Written
from mediator import Command, Context, Next
from persistence.database import is_unavailable

logger = logging.getLogger("orderdesk.messages")


class ReadModelLagging(Exception):
    """The write is committed, but its result cannot be shown yet: the read models did not
    show it within the bounded wait, or reading it back failed. `written` says what was
    written (its id and version), so that a client never takes a committed write for a
    failed one and retries it."""

    def __init__(self, message: str, written: Written | None = None) -> None:
        super().__init__(message)
        self.written = written


class DatabaseUnavailable(Exception):
    """The database did not answer (in time): the request may be retried, and a command cut
    off so may or may not have been committed."""


async def database_unavailable(message: object, call_next: Next[object], ctx: Context) -> object:
    """A timeout or a lost connection becomes DatabaseUnavailable, which the transports
    answer as such (SERVICE_UNAVAILABLE, HTTP 503) rather than as an internal error."""
    try:
        return await call_next()
    except DomainError:
        raise
    except Exception as error:
        if is_unavailable(error):
            raise DatabaseUnavailable(
                f"{type(message).__name__}: the database did not answer in time"
            ) from error
        raise


def log_messages(slow_ms: float) -> Callable[[object, Next[object], Context], Awaitable[object]]:
    """Log each message's type, outcome and duration, with the request's correlation id;
    one slower than `slow_ms` milliseconds at WARNING, whatever its outcome.

    Commands that succeed log at INFO, queries at DEBUG: a page of orders sends a query
    per nesting level, and a line for each would drown the writes (and cost as much as a
    cached answer). Refusals and failures log at INFO and WARNING whatever the message.
    Each line carries `message_type` and `duration_ms` as extra fields, which the JSON
    log format shows as such.
    """

    async def log_message(message: object, call_next: Next[object], ctx: Context) -> object:
        started = time.perf_counter()
        try:
            result = await call_next()
        except DomainError as error:
            _log(logging.INFO, f"refused: {type(error).__name__}", message, started, ctx)
            raise
        except Exception as error:
            _log(logging.WARNING, f"failed: {type(error).__name__}", message, started, ctx)
            raise
        level = logging.INFO if isinstance(message, Command) else logging.DEBUG
        _log(level, "ok", message, started, ctx)
        return result

    def _log(level: int, outcome: str, message: object, started: float, ctx: Context) -> None:
        elapsed = (time.perf_counter() - started) * 1000
        if elapsed > slow_ms:
            level = max(level, logging.WARNING)
            outcome = f"{outcome}, slow (over {slow_ms:g} ms)"
        if not logger.isEnabledFor(level):
            return
        name = type(message).__name__
        logger.log(
            level,
            "%s %s (%.1f ms) [%s]",
            name,
            outcome,
            elapsed,
            ctx.correlation_id,
            extra={"message_type": name, "duration_ms": round(elapsed, 3)},
        )

    return log_message


def read_your_writes(
    wait_for: Callable[[int, float], Awaitable[None]],
    timeout: float,
    *,
    waited: Callable[[float], None] | None = None,
    timed_out: Callable[[], None] | None = None,
) -> Callable[[object, Next[object], Context], Awaitable[object]]:
    """After a command, wait (at most `timeout` s) until the read models show its events.

    `waited` is told each wait's seconds (the metrics' histogram), `timed_out` each wait
    that ran out.
    """

    async def wait_for_read_models(
        message: object, call_next: Next[object], ctx: Context
    ) -> object:
        result = await call_next()
        if isinstance(result, Written) and result.position:
            started = time.perf_counter()
            try:
                await wait_for(result.position, timeout)
            except TimeoutError:
                if timed_out is not None:
                    timed_out()
                raise ReadModelLagging(
                    f"{type(message).__name__} was saved, but the read models have not caught "
                    f"up with it within {timeout} s; read it again shortly",
                    result,
                ) from None
            finally:
                if waited is not None:
                    waited(time.perf_counter() - started)
        return result

    return wait_for_read_models
