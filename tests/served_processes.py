"""`orderdesk serve` run as an operator runs it: the console script in a process group of its
own, on a free loopback port, configured through ORDERDESK_* variables, with everything it
prints in one file that tests read and show when they fail.

tests/served.py serves the app in a thread of the test's process, which is quicker and lets
a test look inside; this is for what only separate processes show: uvicorn's worker
supervisor, and several processes sharing one database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sysconfig
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import SecretStr

from orderdesk.settings import Settings
from tests.graphql_client import TEST_SECRET
from tests.served import Served

READY_WITHIN = 30.0
"""Seconds the workers may take to come up: a fresh start takes one or two."""
STOP_WITHIN = 15.0
"""Seconds uvicorn may take to stop its workers after SIGTERM before the group is killed."""
LOG_TAIL = 80
"""Lines of the server's output a failure shows."""

WORKER_STARTED = "Started server process"
"""What uvicorn prints as each worker process begins (a replaced worker prints it again)."""
STARTUP_COMPLETE = "Application startup complete."
"""What uvicorn prints once a worker's lifespan start-up (migrations, projector) is done."""
_PORT_TAKEN = re.compile(r"address already in use", re.IGNORECASE)


class PortTaken(Exception):
    """Another process took the free port between our look and uvicorn's bind."""


@dataclass(frozen=True)
class ServedProcess:
    """A running `orderdesk serve`; `served` is what GraphQLClient and the socket helpers take."""

    process: subprocess.Popen[bytes]
    workers: int
    served: Served
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.served.port}"

    def log(self) -> str:
        """Everything the server has printed so far (stdout and stderr, interleaved)."""
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = LOG_TAIL) -> str:
        return "\n".join(self.log().splitlines()[-lines:])


def console_script() -> str:
    """The `orderdesk` command of the environment running the tests ([project.scripts])."""
    return str(Path(sysconfig.get_path("scripts")) / "orderdesk")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@asynccontextmanager
async def serve_process(
    database_url: str,
    log_path: Path,
    *,
    workers: int = 1,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[ServedProcess]:
    """Run `orderdesk serve --workers N` on `database_url` until the block ends.

    Yields once /health/ready answers 200 and every worker has finished its start-up; a
    server that exits or does not come up in READY_WITHIN fails with its output. The
    whole process group is stopped afterwards, whatever happened, and the tail of the
    output is printed if the block failed (pytest shows it with the failure).
    """
    for attempt in range(3):
        try:
            async with _serve_once(database_url, log_path, workers, env or {}) as running:
                yield running
            return
        except PortTaken:
            if attempt == 2:
                raise


@asynccontextmanager
async def _serve_once(
    database_url: str, log_path: Path, workers: int, env: Mapping[str, str]
) -> AsyncIterator[ServedProcess]:
    port = free_port()
    settings = Settings(database_url=database_url, jwt_secret=SecretStr(TEST_SECRET))
    environment = {
        **os.environ,
        "ORDERDESK_DATABASE_URL": database_url,
        "ORDERDESK_JWT_SECRET": TEST_SECRET,
        # The load the tests send comes from one address, far above any shop's budget.
        "ORDERDESK_RATE_LIMITS": "false",
        **env,
    }
    command = [console_script(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:  # the child holds its own descriptor of the file
        # Popen only forks and execs; asyncio's subprocesses would leave a transport to close
        # by hand, which filterwarnings = error reports if it is ever missed.
        process = subprocess.Popen(  # noqa: ASYNC220
            [*command, "--workers", str(workers)],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own group, so that stopping it reaches every worker, and a Ctrl+C on the
            # test run does not reach them before we do.
            start_new_session=True,
        )
    running = ServedProcess(
        process,
        workers,
        Served(
            f"http://127.0.0.1:{port}/graphql",
            f"ws://127.0.0.1:{port}/graphql",
            settings,
            port=port,
        ),
        log_path,
    )
    try:
        await _wait_until_ready(running)
        yield running
    except BaseException:
        print(f"--- the last lines of {log_path} ---\n{running.log_tail()}")
        raise
    finally:
        await stop(running)


async def _wait_until_ready(running: ServedProcess) -> None:
    deadline = time.monotonic() + READY_WITHIN
    ready_url = f"{running.base_url}/health/ready"
    async with httpx.AsyncClient(timeout=2) as http:
        while True:
            exited = running.process.poll()
            if exited is not None:
                log = running.log()
                if _PORT_TAKEN.search(log):
                    raise PortTaken(log)
                raise AssertionError(
                    f"orderdesk serve exited ({exited}) before it was ready; it printed, "
                    f"last:\n{running.log_tail(20)}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"orderdesk serve was not ready within {READY_WITHIN} s; it printed, "
                    f"last:\n{running.log_tail(20)}"
                )
            with contextlib.suppress(httpx.TransportError):
                answer = await http.get(ready_url)
                # Readiness answers for whichever worker took the connection; the log tells
                # whether every worker has finished its start-up.
                if answer.status_code == 200 and (
                    running.log().count(STARTUP_COMPLETE) >= running.workers
                ):
                    return
            await asyncio.sleep(0.05)


async def stop(running: ServedProcess) -> None:
    """SIGTERM to the group (uvicorn's parent stops its workers), then SIGKILL if it hangs."""
    process = running.process
    group = process.pid  # start_new_session: the leader's pid is the group's id
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        await asyncio.to_thread(process.wait, STOP_WITHIN)
    with contextlib.suppress(ProcessLookupError):
        # A worker outliving its parent, or a parent that did not stop in time.
        os.killpg(group, 0)
        os.killpg(group, signal.SIGKILL)
    process.wait()
