"""A full disk under the state directory: every command that writes there names that directory and what to do
(one line, no "unexpected OperationalError"). The full disk is a character device like /dev/full made in the
test's own directory (writes to it fail with ENOSPC), so nothing outside the test is touched."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli.main import main
from agent.store.ledger import Ledger
from agent.store.statefiles import StateDiskFull
from tests.servers import free_port


def full_ledger(state: Path) -> Path:
    state.mkdir(parents=True)
    path = state / "ledger.sqlite3"
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 7))  # the kernel's "full" device
    except PermissionError:
        pytest.skip("making a device node needs CAP_MKNOD")
    return path


def config_in(root: Path) -> Path:
    config = root / "config.toml"
    config.write_text(
        f'state_dir = "state"\npolicies_dir = "policies"\n[student]\naddress = "sam@uni.example"\n'
        f'[imap]\nhost = "127.0.0.1"\nport = {free_port()}\nsecurity = "plain"\nusername = "sam"\n'
        f'password_command = "echo x"\n[smtp]\nhost = "127.0.0.1"\nport = {free_port()}\nsecurity = "plain"\n'
    )
    config.chmod(0o600)
    (root / "policies").mkdir()
    return config


def test_a_full_disk_under_the_ledger_names_the_state_directory(tmp_path: Path) -> None:
    path = full_ledger(tmp_path / "state")
    with pytest.raises(StateDiskFull) as raised:
        Ledger(path)
    assert f"no space left in the state directory {tmp_path / 'state'}" in str(raised.value)


@pytest.mark.parametrize("command", ["status", "run"])
def test_status_and_run_on_a_full_disk_say_so_in_one_line(tmp_path: Path, command: str) -> None:
    config = config_in(tmp_path)
    full_ledger(tmp_path / "state")
    if command == "status":
        result = CliRunner().invoke(main, ["status", "--config", str(config)])
        code, err = result.exit_code, result.stderr
    else:
        ran = subprocess.run(
            [sys.executable, "-m", "agent", "run", "--config", str(config)],
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
        )  # fmt: skip
        code, err = ran.returncode, ran.stderr
    assert code == 75, err
    assert f"error: no space left in the state directory {tmp_path / 'state'}" in err, err
    assert "unexpected" not in err and "Traceback" not in err
