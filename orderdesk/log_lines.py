"""How a log line looks: text for people, or one JSON object a line for log collectors
(ORDERDESK_LOG_FORMAT=json), the app's lines and uvicorn's alike, each with the id of the
request it was written for.

A JSON line has `time` (ISO 8601, UTC), `level`, `logger`, `message`, `request_id` while a
request is served, the fields a line was given with `extra=` (the mediator's
`message_type` and `duration_ms`), `exc_info` with a traceback, and for uvicorn's access
log `client`, `method`, `path` (never the query string) and `status`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS, merge_record_extra
from pythonjsonlogger.json import JsonFormatter
from uvicorn.logging import AccessFormatter, DefaultFormatter

from orderdesk.request_ids import current_request_id

ACCESS_LOGGER = "uvicorn.access"
_NOT_EXTRA = frozenset(
    {
        *RESERVED_ATTRS,
        "request_id",
        # uvicorn's copy of its message with terminal colours.
        "color_message",
    }
)


class RequestIdFilter(logging.Filter):
    """Puts the id of the request being served on each record (`request_id`, None outside
    any request). On the handlers, so that the records of every logger pass it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id.get()
        return True


def _with_request_id(line: str, record: logging.LogRecord) -> str:
    request_id = getattr(record, "request_id", None)
    return line if request_id is None else f"{line} request_id={request_id}"


class TextLines(logging.Formatter):
    """The app's text lines, ending with ` request_id=...` when written for a request."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        return _with_request_id(super().formatMessage(record), record)


class UvicornTextLines(DefaultFormatter):
    """uvicorn's own lines, as uvicorn prints them, with the request id."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802
        return _with_request_id(super().formatMessage(record), record)


class AccessTextLines(AccessFormatter):
    """uvicorn's access lines, as uvicorn prints them, with the request id."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802
        return _with_request_id(super().formatMessage(record), record)


class JsonLines(JsonFormatter):
    """One JSON object a line."""

    def __init__(self, *, use_colors: bool | None = None) -> None:
        # uvicorn hands its formatters `use_colors` when told to; a JSON line has none.
        del use_colors
        super().__init__()

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["time"] = (
            datetime.fromtimestamp(record.created, tz=UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["message"] = record.message
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            log_data["request_id"] = request_id
        if record.name == ACCESS_LOGGER:
            log_data.update(_access_fields(record.args))
        # Given with `extra=`; a field named like one of the above does not replace it.
        for key, value in merge_record_extra(record, {}, reserved=_NOT_EXTRA).items():
            log_data.setdefault(key, value)
        log_data.update(message_dict)  # exc_info and stack_info, formatted


def _access_fields(args: object) -> dict[str, object]:
    # uvicorn logs '%s - "%s %s HTTP/%s" %d': client, method, target, version, status.
    if not isinstance(args, tuple) or len(args) != 5:
        return {}
    client, method, target, _version, status = args
    return {
        "client": client,
        "method": method,
        "path": str(target).partition("?")[0],
        "status": status,
    }
