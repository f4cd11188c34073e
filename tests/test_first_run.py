"""What a new user meets first: commands before `setup` point to it, `status` before the first `run` says
"not started yet" and what to do, and its view of meetings and weeks tells the truth."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from agent.cli.main import main
from agent.store.status import render

ROOT = Path(__file__).parent.parent


def config_in(root: Path) -> Path:
    (root / "policies").mkdir()
    shutil.copy(ROOT / "policies/rivera.toml", root / "policies/rivera.toml")
    config = root / "config.toml"
    config.write_text(
        'policies_dir = "policies"\nstate_dir = "state"\n[student]\naddress = "sam@uni.example"\n'
        'timezone = "Europe/Berlin"\n'
    )
    return config


def test_status_before_the_first_run_says_not_started_yet_and_what_to_do(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    result = CliRunner().invoke(main, ["status", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("daemon: not started yet")
    assert f"mentor-agent run --config {config}" in result.stdout
    as_json = CliRunner().invoke(main, ["status", "--config", str(config), "--json"])
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)["daemon"] == {"started": "no"}


def test_status_with_a_config_that_is_not_there_is_still_an_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["status", "--config", str(tmp_path / "nope.toml")])
    assert result.exit_code == 1
    assert f"error: {tmp_path / 'nope.toml'}: no such config file" in result.stderr
    assert "mentor-agent setup --config" in result.stderr and "example.toml" not in result.stderr


@pytest.mark.parametrize("command", [["status"], ["run"], ["check"], ["release", "abcd1234"], ["agree", "rivera"]])
def test_commands_before_any_setup_point_to_setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, command)
    assert result.exit_code != 0
    assert "mentor-agent setup" in result.stderr, result.output
    assert "example.toml" not in result.output


def test_status_shows_meeting_times_in_the_students_zone_and_a_bounded_week_bar() -> None:
    mentor = {
        "id": "rivera",
        "name": "Dr. Ana Rivera",
        "timezone": "America/Chicago",
        "today": {"sent": 0, "limit": 10},
        "this_week": {"sent": 12, "limit": 50},
        "weeks": [{"week": "2026-11-23", "sent": 50}, {"week": "2026-11-30", "sent": 12}],
        "waiting": [],
        "meetings": {"offers": [{"start": "2026-12-08T15:00:00+00:00", "status": "sent"}],
                     "next": "2026-12-09T16:30:00+00:00"},
    }  # fmt: skip
    data = {"now": "2026-12-06T10:00:00+00:00", "daemon": {"running": "yes", "connected": "yes"}, "mentors": [mentor]}
    text = render(data, color=False, zone=ZoneInfo("Asia/Tokyo"))
    assert "open meeting offers: Wed 09 Dec 00:00 JST" in text, text
    assert "next meeting: Thu 10 Dec 01:30 JST" in text, text
    (bars,) = [line for line in text.splitlines() if "weeks (" in line]
    assert all(len(bar) <= 10 for bar in bars.split(": ", 1)[1].split("  ")), bars


def test_an_empty_config_points_to_setup(tmp_path: Path) -> None:
    """Found by the tester (F6): an empty config.toml pointed to config/example.toml (not installed); setup writes
    one."""
    config = tmp_path / "config.toml"
    config.write_text("")
    config.chmod(0o600)
    result = CliRunner().invoke(main, ["check", "--config", str(config)])
    assert "is empty" in result.output and "`mentor-agent setup`" in result.output, result.output
