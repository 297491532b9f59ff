"""`orderdesk serve` that cannot start exits with uvicorn's start-up failure code, with one
worker or several: a supervisor (systemd, a container runtime) must see a failure, not a
clean exit, and must not restart it in a loop believing it stopped on purpose."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from uvicorn.config import STARTUP_FAILURE

from tests.served_processes import console_script, free_port


@pytest.mark.parametrize("workers", [1, 2])
def test_a_server_that_cannot_start_exits_with_the_start_up_failure_code(
    tmp_path: Path, workers: int
) -> None:
    missing = tmp_path / "no such directory" / "orderdesk.db"
    environment = {
        **os.environ,
        "ORDERDESK_DATABASE_URL": f"sqlite+aiosqlite:///{missing}",
        "ORDERDESK_JWT_SECRET": "x" * 32,
    }
    command = [console_script(), "serve", "--port", str(free_port()), "--workers", str(workers)]
    finished = subprocess.run(
        command, env=environment, capture_output=True, timeout=60, check=False
    )
    assert finished.returncode == STARTUP_FAILURE, finished.stderr.decode()[-2000:]
