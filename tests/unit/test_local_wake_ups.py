"""Wake-ups between the processes on one SQLite file: where they cannot work (socket paths
too long, a directory another user made), they are off from the start, said once."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import pytest

from persistence.wakeup import NoWakeUps, wake_ups_for
from persistence.wakeup_broker import BrokerWakeUps
from persistence.wakeup_local import local_wake_up_directory


async def test_a_sqlite_file_gets_local_wake_ups_in_a_directory_of_this_user(
    tmp_path: Path,
) -> None:
    wake_ups = wake_ups_for(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", None)
    assert isinstance(wake_ups, BrokerWakeUps)
    directory = local_wake_up_directory(str(tmp_path / "a.db"))
    assert not directory.exists()  # nothing is made before start
    await wake_ups.start(lambda _position: None)
    try:
        assert directory.stat().st_mode & 0o777 == 0o700
        assert len(list(directory.iterdir())) == 1
    finally:
        await wake_ups.stop()
    assert not directory.exists()  # the last one out removes it


def test_a_database_in_memory_needs_none() -> None:
    assert isinstance(wake_ups_for("sqlite+aiosqlite:///:memory:", None), NoWakeUps)


def test_socket_paths_too_long_turn_them_off_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    deep = tmp_path / ("x" * 90)
    deep.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    with caplog.at_level(logging.WARNING, logger="orderdesk.wakeup"):
        wake_ups = wake_ups_for(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", None)
    assert isinstance(wake_ups, NoWakeUps)
    (record,) = caplog.records
    assert "too long" in record.getMessage()
