"""The npm clients in tests/clients (Apollo's links, graphql-sse), run with node: a test
that wants them checks what a frontend team's own code would do against the served app.

Installed once, by `npm ci` from the committed lock file, the first time a test asks; a
machine without node, or whose npm cannot reach its registry, skips those tests and says
why (the Python checks of the same behaviour still run)."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

CLIENTS = Path(__file__).parent / "clients"
_installing = threading.Lock()


def node_clients() -> Path:
    """tests/clients with its node_modules installed; skips the test when that cannot be."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are not on this machine: the npm client check is skipped")
    with _installing:
        if not (CLIENTS / "node_modules" / ".package-lock.json").exists():
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=CLIENTS,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if done.returncode != 0:
                pytest.skip(f"npm ci in tests/clients failed: {done.stderr.strip()[-500:]}")
    return CLIENTS


def run_node(script: str, *args: str, timeout: float = 60) -> object:
    """Run tests/clients/SCRIPT with node and ARGS; its stdout's last line, as JSON."""
    clients = node_clients()
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run(
        [node, str(clients / script), *args],
        cwd=clients,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"node {script} failed:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])
