"""`mentor-agent setup --systemd`: the project's unit with ExecStart for how the agent was installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import systemd
from tests.test_systemd_unit import UNIT, needs_analyze, verify

PACKAGED = Path(systemd.__file__).resolve().parent.parent / "examples" / systemd.NAME


def test_the_packaged_unit_is_the_one_in_systemd() -> None:
    assert PACKAGED.read_text(encoding="utf-8") == UNIT.read_text(encoding="utf-8")


def _venv(tmp_path: Path) -> Path:
    """A venv's bin/ as pip or pipx leaves it: python and the mentor-agent script side by side."""
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)
    script = bin_dir / "mentor-agent"
    script.write_text(f"#!{bin_dir / 'python'}\nimport sys\nfrom agent.cli.main import main\nsys.exit(main())\n")
    script.chmod(0o755)
    return bin_dir


def _lines(text: str, key: str) -> list[str]:
    return [line.partition("=")[2] for line in text.splitlines() if line.startswith(key + "=")]


def test_exec_start_is_the_venvs_own_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    bin_dir = _venv(tmp_path)
    default = tmp_path / "xdg" / "mentor-agent" / "config.toml"
    text = systemd.unit_text(default, Path.home() / ".local/state/mentor-agent", python=str(bin_dir / "python"))
    assert _lines(text, "ExecStart") == [f"{bin_dir / 'mentor-agent'} run"]
    assert _lines(text, "ReadWritePaths") == ["%h/.local/state/mentor-agent"]


def test_another_config_and_state_dir_and_no_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    config, state = tmp_path / "my config" / "config.toml", tmp_path / "state"
    text = systemd.unit_text(config, state, python="/opt/py/bin/python3")
    assert _lines(text, "ExecStart") == [f'/opt/py/bin/python3 -m agent run --config "{config}"']
    assert _lines(text, "ReadWritePaths") == [str(state)]
    assert f"+/bin/mkdir -p {state}" in _lines(text, "ExecStartPre")


@needs_analyze
def test_the_written_unit_passes_systemd_analyze(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    bin_dir = _venv(tmp_path)
    unit = tmp_path / systemd.NAME
    unit.write_text(systemd.unit_text(tmp_path / "c.toml", tmp_path / "state", python=str(bin_dir / "python")))
    done = verify(unit, tmp_path / "home", tmp_path / "runtime")
    assert done.returncode == 0 and done.stdout.strip() == done.stderr.strip() == "", done.stdout + done.stderr


def _setup_systemd(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "config.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n[student]\naddress = "sam@med.example.edu"\n')
    environment = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg"), **env}
    return subprocess.run(
        [sys.executable, "-m", "agent", "setup", "--systemd", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_without_a_user_manager_it_writes_the_unit_and_prints_the_commands(tmp_path: Path) -> None:
    result = _setup_systemd(tmp_path, XDG_RUNTIME_DIR=str(tmp_path / "no-runtime"))
    assert result.returncode == 0, result.stderr
    unit = tmp_path / "xdg" / "systemd" / "user" / systemd.NAME
    assert f"wrote {unit}" in result.stdout
    assert "  systemctl --user enable --now mentor-agent" in result.stdout
    assert f"--config {tmp_path / 'config.toml'}" in unit.read_text()
    again = _setup_systemd(tmp_path, XDG_RUNTIME_DIR=str(tmp_path / "no-runtime"))
    assert f"{unit}: unchanged" in again.stdout
    unit.write_text(unit.read_text().replace("RestartSec=10", "RestartSec=99"))
    edited = _setup_systemd(tmp_path, XDG_RUNTIME_DIR=str(tmp_path / "no-runtime"))
    assert edited.returncode == 1 and "-RestartSec=99" in edited.stdout
    assert "RestartSec=99" in unit.read_text()  # never overwritten without asking


def test_with_a_user_manager_it_enables_and_starts_the_unit(tmp_path: Path) -> None:
    """systemctl is a stand-in here that records its arguments: no user manager runs in the test machine."""
    runtime, tools = tmp_path / "runtime", tmp_path / "bin"
    runtime.mkdir()
    (runtime / "bus").touch()
    tools.mkdir()
    (tools / "systemctl").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "calls"}\n')
    (tools / "systemctl").chmod(0o755)
    result = _setup_systemd(tmp_path, XDG_RUNTIME_DIR=str(runtime), PATH=f"{tools}:{os.environ['PATH']}")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "calls").read_text().splitlines() == ["--user daemon-reload", "--user enable --now mentor-agent"]
    assert "mentor-agent runs now" in result.stdout
