"""One daemon per state directory: an exclusive ``flock`` on ``daemon.lock``, which holds the owner's pid.

Two daemons on one ledger would each take in the Outbox, double every held message in Scheduled and send
every notice twice. The lock lives as long as the process (the kernel drops it on any exit, even kill -9),
so ``status`` can tell "running (pid N)" from "not running" by trying it, whatever the ledger last said.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

from agent.store.statefiles import StateDiskFull, is_disk_full

LOCK_NAME = "daemon.lock"
EX_TEMPFAIL = 75  # sysexits.h: another daemon runs on this state directory; try again when it has stopped


class AlreadyRunning(Exception):
    def __init__(self, path: Path, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        who = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"another mentor-agent ({who}) is already running on the state directory {path.parent} "
            f"(it holds {path}); stop it first (`systemctl --user stop mentor-agent`"
            + (f" or `kill {pid}`)" if pid else ")")
        )


class StateLock:
    """The held lock; released by :meth:`release` or when the process ends."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd

    def release(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing the only descriptor drops the flock
            self.fd = -1


def lock_path(state_dir: Path) -> Path:
    return state_dir / LOCK_NAME


def _pid_in(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def acquire(state_dir: Path, *, patience: float = 1.0) -> StateLock:
    """Take the lock or raise AlreadyRunning naming the holder's pid.

    ``patience``: a ``status`` that is reading the lock holds it for an instant; a start waits that long.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    path = lock_path(state_dir)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    deadline = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise AlreadyRunning(path, _pid_in(path)) from None
            time.sleep(0.05)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    except OSError as error:
        os.close(fd)
        if is_disk_full(error):
            raise StateDiskFull(state_dir) from error
        raise
    return StateLock(path, fd)


def holder(state_dir: Path) -> int | None:
    """The pid of the daemon running on ``state_dir`` (0 if its pid is unreadable), or None if none runs."""
    path = lock_path(state_dir)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _pid_in(path) or 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
