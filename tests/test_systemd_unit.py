"""The user unit in systemd/ parses cleanly and keeps the settings the daemon relies on."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "mentor-agent.service"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (apt-get install systemd)")


def settings() -> dict[str, list[str]]:
    """Every key of the unit with all its values in order (systemd keys may repeat)."""
    found: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.setdefault(f"{section}.{key}", []).append(value)
    return found


def verify(unit: Path, home: Path, runtime: Path) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify --user`` with %h pointing at ``home``; a user manager also needs a
    runtime directory, which root in CI does not have."""
    assert ANALYZE is not None
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(runtime),
        "SYSTEMD_LOG_COLOR": "0",
    }
    return subprocess.run(
        [ANALYZE, "verify", "--user", str(unit)], capture_output=True, text=True, env=env, timeout=60, check=False
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home where ExecStart=%h/.local/bin/mentor-agent exists, as after `pipx install`."""
    home = tmp_path / "home"
    binary = home / ".local" / "bin" / "mentor-agent"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    return home


@needs_analyze
def test_systemd_analyze_verify_passes_without_a_warning(home: Path, tmp_path: Path) -> None:
    done = verify(UNIT, home, tmp_path / "runtime")
    assert done.returncode == 0, done.stderr
    # verify exits 0 even for unknown keys and bad values: any line it prints is a finding.
    assert done.stdout.strip() == "" and done.stderr.strip() == "", done.stdout + done.stderr


@needs_analyze
def test_verify_would_report_a_mistake(home: Path, tmp_path: Path) -> None:
    """The check above is not vacuous: a misspelt key and a bad value are printed."""
    broken = tmp_path / "mentor-agent.service"
    broken.write_text(
        UNIT.read_text(encoding="utf-8").replace("ProtectSystem=strict", "ProtectSystem=stirct")
        + "\n[Service]\nWatchdogSecs=5\n"
    )
    done = verify(broken, home, tmp_path / "runtime")
    assert "WatchdogSecs" in done.stderr
    assert "protect system value" in done.stderr.lower()


def test_key_settings() -> None:
    found = settings()
    expected = {
        "Service.Type": "notify",
        "Service.ExecStart": "%h/.local/bin/mentor-agent run",
        "Service.ExecReload": "/bin/kill -HUP $MAINPID",
        "Service.NotifyAccess": "main",
        "Service.WatchdogSec": "120",
        "Service.Restart": "on-failure",
        "Service.RestartSec": "10",
        "Service.TimeoutStopSec": "90",
        "Service.KillSignal": "SIGTERM",
        "Service.NoNewPrivileges": "yes",
        "Service.ProtectSystem": "strict",
        "Service.ProtectHome": "read-only",
        "Service.PrivateTmp": "yes",
        "Service.RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "Service.Environment": "PYTHONUNBUFFERED=1",
        "Install.WantedBy": "default.target",
    }
    assert {key: found.get(key, [None])[-1] for key in expected} == expected


def test_state_directory_is_writable_and_matches_the_settings_default() -> None:
    found = settings()
    # agent.config.settings: state_dir = $XDG_STATE_HOME/mentor-agent, by default ~/.local/state/mentor-agent
    assert found["Service.ReadWritePaths"] == ["%h/.local/state/mentor-agent"]
    assert "+/bin/mkdir -p %h/.local/state/mentor-agent" in found["Service.ExecStartPre"]


def test_sections_and_credentials_example_is_only_a_comment() -> None:
    found = settings()
    assert sorted({key.split(".")[0] for key in found}) == ["Install", "Service", "Unit"]
    assert "Service.LoadCredential" not in found
    assert "#LoadCredential=imap-password:" in UNIT.read_text(encoding="utf-8")


def test_a_stop_is_given_longer_than_the_send_in_flight_may_take() -> None:
    """Found by a hostile round: SIGTERM finishes the send in flight, which waits up to [smtp] timeout; killed by
    systemd before that, whether the mentor got it could not be told."""
    from agent.config.settings import Smtp

    assert int(settings()["Service.TimeoutStopSec"][-1]) > Smtp.model_fields["timeout"].default + 10
