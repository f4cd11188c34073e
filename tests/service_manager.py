"""A stand-in for systemd's notify socket: a bound unix datagram socket named in $NOTIFY_SOCKET (and, with a
watchdog, $WATCHDOG_USEC and $WATCHDOG_PID for this process), read while an in-process daemon runs."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


class ServiceManager:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.said: list[tuple[float, str]] = []  # (when received, the message)

    def drain(self) -> None:
        """Read what the daemon said since the last call (never waits)."""
        with contextlib.suppress(BlockingIOError):
            while True:
                self.said.append((time.monotonic(), self.sock.recv(4096).decode()))

    def messages(self) -> list[str]:
        return [text for _, text in self.said]

    def run(self, daemon: Any, seconds: float, *, poll: float = 0.02, cancel: bool = False) -> None:
        """Run the in-process ``daemon`` for ``seconds``, reading what it says, then stop it; ``cancel``: do not
        wait for a pass stuck on a silent server to finish."""

        async def drive() -> None:
            running = asyncio.create_task(daemon.run())
            began = time.monotonic()
            while time.monotonic() - began < seconds:
                await asyncio.sleep(poll)
                self.drain()
            daemon.stop()
            if not cancel:
                await asyncio.wait_for(running, 30)
                return
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(running, 5)

        asyncio.run(drive())

    def watchdog_gaps(self) -> list[float]:
        """The times between two WATCHDOG=1 in a row."""
        heard = [at for at, text in self.said if text == "WATCHDOG=1"]
        return [later - earlier for earlier, later in itertools.pairwise(heard)]


@contextlib.contextmanager
def service_manager(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, watchdog_usec: int | None = None
) -> Iterator[ServiceManager]:
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    if watchdog_usec is not None:
        monkeypatch.setenv("WATCHDOG_USEC", str(watchdog_usec))
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    try:
        yield ServiceManager(sock)
    finally:
        sock.close()
