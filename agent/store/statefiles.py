"""The state files: private to their owner (0600 files, 0700 directories), and which boot of the machine wrote
them (a ``queued`` mark written before a reboot may have been lost with the page cache: see Ledger.queue())."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
