"""Wake-ups between the processes on one SQLite file: Unix datagram sockets, one host."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

MAX_SOCKET_PATH = 108
"""Bytes a Unix socket's path may take (sun_path, with its terminating NUL)."""


class LocalTransport:
    """Unix datagram sockets, one per process, in a directory of their own for one SQLite
    file: the workers of `orderdesk serve --workers N` on one host.

    Only one process applies each projection (persistence/projection_leases.py), so a
    write in another must reach it at once, or that write would wait for its poll. A
    socket left by a process that died is removed by the first send that finds it dead.
    """

    @staticmethod
    def unusable(directory: Path) -> str | None:
        """Why sockets cannot be made in `directory`, if they cannot."""
        if len(os.fsencode(directory)) + len("/4194304-0123abcd") >= MAX_SOCKET_PATH:
            return f"the socket paths under {directory} would be too long"
        try:
            owner = directory.stat().st_uid
        except FileNotFoundError:
            return None  # made on connecting
        except OSError as error:
            return f"cannot use {directory}: {error}"
        if owner != os.getuid():
            return f"{directory} belongs to another user"
        return None

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._socket: socket.socket | None = None
        self._path: Path | None = None
        self._closed = asyncio.Event()

    async def connect(self, on_message: Callable[[str], None]) -> None:
        self._directory.mkdir(mode=0o700, exist_ok=True)
        if self._directory.stat().st_uid != os.getuid():
            raise PermissionError(f"{self._directory} belongs to another user")
        path = self._directory / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        endpoint = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        endpoint.setblocking(False)
        endpoint.bind(str(path))
        self._socket, self._path = endpoint, path
        self._closed = asyncio.Event()

        def readable() -> None:
            while True:
                try:
                    data = endpoint.recv(512)
                except (BlockingIOError, OSError):
                    return
                on_message(data.decode(errors="replace"))

        asyncio.get_running_loop().add_reader(endpoint.fileno(), readable)

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def send(self, payload: str) -> None:
        endpoint = self._socket
        if endpoint is None:
            raise ConnectionError("not connected")
        data = payload.encode()
        for peer in self._directory.iterdir():
            if peer == self._path:
                continue
            try:
                endpoint.sendto(data, str(peer))
            except (ConnectionRefusedError, FileNotFoundError):
                peer.unlink(missing_ok=True)  # its process is gone
            except BlockingIOError:
                pass  # its queue is full of wake-ups: it is awake already

    async def close(self) -> None:
        endpoint, self._socket = self._socket, None
        if endpoint is not None:
            asyncio.get_running_loop().remove_reader(endpoint.fileno())
            endpoint.close()
        if self._path is not None:
            self._path.unlink(missing_ok=True)
            self._path = None
            # The last one out removes the directory; a process still there keeps it.
            with contextlib.suppress(OSError):
                self._directory.rmdir()
        self._closed.set()


def local_wake_up_directory(database: str) -> Path:
    """Where the processes on one SQLite file meet; in the temporary directory, as a
    socket's path must be short (108 bytes), named by the file's resolved path."""
    digest = hashlib.sha256(str(Path(database).resolve()).encode()).hexdigest()[:16]
    # The user's own: another user could otherwise make it first, and own it.
    return Path(tempfile.gettempdir()) / f"orderdesk-wakeups-{os.getuid()}-{digest}"
