"""Log lines as orderdesk/server.py configures them: the fields a JSON line has (the
mediator's `message_type` and `duration_ms` among them), and the text line's request id."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from orderdesk.log_lines import RequestIdFilter
from orderdesk.request_ids import current_request_id
from orderdesk.server import log_config


@pytest.fixture
def lines(request: pytest.FixtureRequest) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing into a string through a handler made as log_config(format) makes
    the app's (dictConfig itself would take the test run's own handlers away)."""
    config = log_config("info", app_logging=True, log_format=request.param)
    assert config["handlers"]["app"]["filters"] == ["request_id"]
    assert config["filters"]["request_id"] == {"()": RequestIdFilter}
    spec = dict(config["formatters"]["app"])
    factory = spec.pop("()")
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(factory(**spec))
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger(f"orderdesk.test_log_lines.{request.param}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield logger, handler.stream
    finally:
        logger.removeHandler(handler)


@pytest.mark.parametrize("lines", ["json"], indirect=True)
def test_a_json_line_has_its_fields_and_the_request_id(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = lines
    token = current_request_id.set("req-9")
    try:
        logger.info(
            "%s ok (%.1f ms)",
            "PlaceOrder",
            12.5,
            extra={"message_type": "PlaceOrder", "duration_ms": 12.5, "level": "forged"},
        )
    finally:
        current_request_id.reset(token)
    logger.warning("outside any request")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["level"] == "INFO"
    assert first["logger"] == logger.name
    assert first["message"] == "PlaceOrder ok (12.5 ms)"
    assert first["request_id"] == "req-9"
    assert first["message_type"] == "PlaceOrder"
    assert first["duration_ms"] == 12.5
    assert list(first)[:4] == ["time", "level", "logger", "message"]
    written = datetime.fromisoformat(first["time"])
    assert written.tzinfo is not None
    assert written.utcoffset() == UTC.utcoffset(None)
    assert abs((datetime.now(UTC) - written).total_seconds()) < 60
    assert second["level"] == "WARNING"
    assert "request_id" not in second


@pytest.mark.parametrize("lines", ["json"], indirect=True)
def test_a_json_line_carries_its_traceback(lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = lines
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("internal error at %s", ["orders"])
    (line,) = out.getvalue().splitlines()
    record = json.loads(line)
    assert record["level"] == "ERROR"
    assert "RuntimeError: boom" in record["exc_info"]


@pytest.mark.parametrize("lines", ["text"], indirect=True)
def test_a_text_line_ends_with_the_request_id(lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = lines
    token = current_request_id.set("req-10")
    try:
        logger.info("CreateProduct ok")
    finally:
        current_request_id.reset(token)
    logger.info("no request")
    first, second = out.getvalue().splitlines()
    assert first.endswith(f"INFO {logger.name} CreateProduct ok request_id=req-10")
    assert second.endswith(f"INFO {logger.name} no request")
