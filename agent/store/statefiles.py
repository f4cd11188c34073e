"""The state files: private to their owner (0600 files, 0700 directories), which boot of the machine wrote
them (a ``queued`` mark written before a reboot may have been lost with the page cache: see Ledger.queue()),
and a full disk under them, said as such (:class:`StateDiskFull`, naming the state directory)."""

from __future__ import annotations

import errno
import functools
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent.errors import AgentError

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")

PRIVATE_UMASK = 0o077  # state files 0600, state directories 0700, whoever started the agent


def private_dir(path: Path) -> Path:
    """Make ``path`` (and missing parents) a directory only the owner can enter; tighten it if it exists."""
    old = os.umask(PRIVATE_UMASK)
    try:
        path.mkdir(parents=True, exist_ok=True)
    finally:
        os.umask(old)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


@contextmanager
def private_files() -> Iterator[None]:
    """Files created inside (SQLite's database, -wal and -shm files among them) are 0600."""
    old = os.umask(PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(old)


def tighten(path: Path) -> None:
    """Files an older version (or a umask of 022) left readable by others become 0600."""
    for name in (path.name, path.name + "-wal", path.name + "-shm", path.name + "-journal"):
        candidate = path.with_name(name)
        try:
            if candidate.stat().st_mode & 0o077:
                candidate.chmod(0o600)
        except FileNotFoundError:
            continue


def boot_id() -> str | None:
    """This boot of the machine (Linux); None where it cannot be told."""
    try:
        return BOOT_ID.read_text().strip() or None
    except OSError:
        return None


EX_TEMPFAIL = 75  # sysexits.h: try again later (once there is space again)
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class StateDiskFull(AgentError):
    """No space left where the ledger and the lock live: nothing can be recorded, so nothing may be sent."""

    exit_code = EX_TEMPFAIL

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        super().__init__(
            f"no space left in the state directory {state_dir} (its disk or your quota is full): mentor-agent "
            f"records every send there, so it does nothing until it can; free some space (`df -h {state_dir}`) "
            "and run it again"
        )


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` is a write refused for want of space (by the kernel, or by SQLite: SQLITE_FULL)."""
    if isinstance(error, OSError):
        return error.errno in _FULL_ERRNOS
    if isinstance(error, sqlite3.Error):
        return getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(error)
    return False


@contextmanager
def state_disk(state_dir: Path) -> Iterator[None]:
    """A full disk met inside becomes :class:`StateDiskFull` naming ``state_dir``; any other error stays."""
    try:
        yield
    except (OSError, sqlite3.Error) as error:
        if is_disk_full(error):
            raise StateDiskFull(state_dir) from error
        raise


def naming_the_state_dir(init: Callable[[Any, Path], None]) -> Callable[[Any, Path], None]:
    """For ``__init__(self, path)`` of a state file: a full disk met inside names ``path``'s directory."""

    @functools.wraps(init)
    def wrapper(self: Any, path: Path) -> None:
        with state_disk(path.parent):
            init(self, path)

    return wrapper
