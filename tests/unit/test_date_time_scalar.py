"""The DateTime scalar: RFC 3339 with an offset in, UTC out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from schema.errors import UserInputError
from schema.scalars import parse_date_time, serialize_date_time


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2026-12-01T19:00:00Z", datetime(2026, 12, 1, 19, tzinfo=UTC)),
        ("2026-12-01t19:00:00z", datetime(2026, 12, 1, 19, tzinfo=UTC)),
        ("2026-12-01T20:00:00+01:00", datetime(2026, 12, 1, 19, tzinfo=UTC)),
        ("2026-12-01T19:00:00.123456789Z", datetime(2026, 12, 1, 19, 0, 0, 123456, tzinfo=UTC)),
    ],
)
def test_rfc_3339_date_times_with_an_offset_are_read(text: str, moment: datetime) -> None:
    assert parse_date_time(text) == moment


@pytest.mark.parametrize(
    "value",
    [
        "2026-12-01T19:00:00",  # no offset: which instant?
        "2026-12-01",
        "2026-12-01 19:00:00Z",
        "20261201T190000Z",
        "2026-02-30T19:00:00Z",
        "2026-12-01T19:00:00+0100",
        "2026-12-01T19:00:00Z" + " " * 10_000,
        1_764_615_600,
        None,
    ],
)
def test_anything_else_is_bad_user_input(value: object) -> None:
    with pytest.raises(UserInputError) as refused:
        parse_date_time(value)
    assert refused.value.extensions == {"code": "BAD_USER_INPUT"}
    assert len(refused.value.message) < 200


def test_output_is_utc_with_an_offset_and_microseconds_only_when_there_are_any() -> None:
    plus_one = timezone(timedelta(hours=1))
    assert serialize_date_time(datetime(2026, 12, 1, 20, tzinfo=plus_one)) == (
        "2026-12-01T19:00:00+00:00"
    )
    assert serialize_date_time(datetime(2026, 12, 1, 19, 0, 0, 5, tzinfo=UTC)) == (
        "2026-12-01T19:00:00.000005+00:00"
    )
    with pytest.raises(TypeError):
        serialize_date_time(datetime(2026, 12, 1, 19))
