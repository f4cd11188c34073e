"""The ledger and every state file are private (0600, directories 0700), whatever umask the agent started with."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.reconcile import digest_delivery as digesting
from agent.store.ledger import Ledger


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)  # a login shell's umask, not systemd's UMask=0077
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ledger_wal_and_shm_are_0600_and_the_state_dir_0700(tmp_path: Path, loose_umask: None) -> None:
    state = tmp_path / "state" / "mentor-agent"
    ledger = Ledger(state / "ledger.sqlite3")
    try:
        ledger.set_status(connected="yes")
        files = sorted(p.name for p in state.iterdir())
        assert files == ["ledger.sqlite3", "ledger.sqlite3-shm", "ledger.sqlite3-wal"]
        assert {name: mode(state / name) for name in files} == dict.fromkeys(files, 0o600)
        assert mode(state) == 0o700
    finally:
        ledger.close()
    assert os.umask(0o022) == 0o022  # the process umask is left as it was


def test_files_an_older_version_left_readable_are_tightened(tmp_path: Path, loose_umask: None) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    Ledger(state / "ledger.sqlite3").close()
    (state / "ledger.sqlite3").chmod(0o644)
    state.chmod(0o755)
    ledger = Ledger(state / "ledger.sqlite3")
    try:
        assert mode(state / "ledger.sqlite3") == 0o600
        assert mode(state) == 0o700
    finally:
        ledger.close()


class _Settings:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir


class _World:
    def __init__(self, state_dir: Path) -> None:
        self.settings = _Settings(state_dir)


def test_a_kept_digest_copy_is_0600_in_a_0700_folder(tmp_path: Path, loose_umask: None) -> None:
    world = _World(tmp_path / "state")
    digesting.save(world, "<digest.1@x.org>", b"Subject: private\r\n\r\nbody\r\n")  # type: ignore[arg-type]
    path = digesting.saved_path(world, "<digest.1@x.org>")  # type: ignore[arg-type]
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert digesting.load_saved(world, "<digest.1@x.org>") == b"Subject: private\r\n\r\nbody\r\n"  # type: ignore[arg-type]
