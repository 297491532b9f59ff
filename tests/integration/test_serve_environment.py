"""`orderdesk serve` as a container runs it: on every interface (`--host 0.0.0.0`), and with
its host, port and workers from ORDERDESK_HOST, ORDERDESK_PORT and ORDERDESK_WORKERS when
no option is given, so an image needs nothing but environment variables."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from pydantic import SecretStr

from orderdesk.settings import Settings
from tests.databases import sqlite_url
from tests.graphql_client import TEST_SECRET
from tests.served import Served
from tests.served_processes import (
    READY_WITHIN,
    STARTUP_COMPLETE,
    ServedProcess,
    console_script,
    free_port,
    stop,
)


@asynccontextmanager
async def orderdesk_serve(
    tmp_path: Path, arguments: Sequence[str], env: Mapping[str, str], *, port: int, workers: int
) -> AsyncIterator[ServedProcess]:
    """`orderdesk serve ARGUMENTS` until the block ends; ready once /health/ready answers
    on the loopback address and every worker has started."""
    url = sqlite_url(tmp_path)
    environment = {
        **os.environ,
        "ORDERDESK_DATABASE_URL": url,
        "ORDERDESK_JWT_SECRET": TEST_SECRET,
        **env,
    }
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: ASYNC220
            [console_script(), "serve", *arguments],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    settings = Settings(database_url=url, jwt_secret=SecretStr(TEST_SECRET))
    served = Served(f"http://127.0.0.1:{port}/graphql", f"ws://127.0.0.1:{port}/graphql", settings)
    running = ServedProcess(process, workers, served, log_path)
    try:
        await ready(running, port)
        yield running
    except BaseException:
        print(f"--- {log_path} ---\n{running.log_tail()}")
        raise
    finally:
        await stop(running)


async def ready(running: ServedProcess, port: int) -> None:
    deadline = time.monotonic() + READY_WITHIN
    async with httpx.AsyncClient(timeout=2) as http:
        while True:
            assert running.process.poll() is None, f"serve exited:\n{running.log_tail(20)}"
            assert time.monotonic() < deadline, f"serve was not ready:\n{running.log_tail(20)}"
            with contextlib.suppress(httpx.TransportError):
                answer = await http.get(f"http://127.0.0.1:{port}/health/ready")
                if answer.status_code == 200 and (
                    running.log().count(STARTUP_COMPLETE) >= running.workers
                ):
                    return
            await asyncio.sleep(0.05)


def outward_address() -> str | None:
    """This host's address on its default route, if it has one that is not loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent over UDP connect
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


async def answers_graphql(base_url: str) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(f"{base_url}/graphql", json={"query": "{ __typename }"})
    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_serve_listens_on_every_interface_with_host_0000(tmp_path: Path) -> None:
    port = free_port()
    arguments = ["--host", "0.0.0.0", "--port", str(port)]
    async with orderdesk_serve(tmp_path, arguments, {}, port=port, workers=1) as running:
        assert f"Uvicorn running on http://0.0.0.0:{port}" in running.log()
        await answers_graphql(f"http://127.0.0.1:{port}")
        address = outward_address()
        if address is not None:
            await answers_graphql(f"http://{address}:{port}")


async def test_serve_takes_host_port_and_workers_from_the_environment(tmp_path: Path) -> None:
    port = free_port()
    env = {"ORDERDESK_HOST": "0.0.0.0", "ORDERDESK_PORT": str(port), "ORDERDESK_WORKERS": "2"}
    async with orderdesk_serve(tmp_path, [], env, port=port, workers=2) as running:
        log = running.log()
        assert f"Uvicorn running on http://0.0.0.0:{port}" in log
        assert log.count(STARTUP_COMPLETE) == 2, running.log_tail()
        await answers_graphql(f"http://127.0.0.1:{port}")


async def test_an_option_wins_over_the_environment(tmp_path: Path) -> None:
    port = free_port()
    env = {"ORDERDESK_HOST": "0.0.0.0", "ORDERDESK_PORT": "1"}
    arguments = ["--host", "127.0.0.1", "--port", str(port)]
    async with orderdesk_serve(tmp_path, arguments, env, port=port, workers=1) as running:
        assert f"Uvicorn running on http://127.0.0.1:{port}" in running.log()


def test_a_bad_port_in_the_environment_is_refused_with_its_name(tmp_path: Path) -> None:
    finished = subprocess.run(
        [console_script(), "serve"],
        env={**os.environ, "ORDERDESK_PORT": "eighty", "ORDERDESK_JWT_SECRET": TEST_SECRET},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 2, finished.stderr
    assert "ORDERDESK_PORT" in finished.stderr, finished.stderr
