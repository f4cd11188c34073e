"""The command line: check and simulate, as a user runs them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli.main import main

ROOT = Path(__file__).parent.parent


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_check_accepts_the_shipped_policies() -> None:
    code, out, _ = run("check", str(ROOT / "policies"))
    assert code == 0
    assert out.startswith("ok: 0 config file(s), 2 policies: Dr. Chidi Okafor")


def test_check_reports_every_problem_and_exits_non_zero(tmp_path: Path) -> None:
    shutil.copy(ROOT / "policies/rivera.toml", tmp_path / "rivera.toml")
    broken = (ROOT / "policies/okafor.toml").read_text().replace("max_per_week = 1 ", "max_per_wek = 1 ")
    (tmp_path / "okafor.toml").write_text(broken)
    code, out, err = run("check", str(tmp_path))
    assert code == 78
    assert out == ""
    assert f"error: {tmp_path / 'okafor.toml'}:" in err
    assert "email.max_per_wek: unknown key (did you mean 'max_per_week'?)" in err


def test_check_reports_config_mistakes_with_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[imap]\nhost = "127.0.0.1"\nprot = 993\n')
    code, _, err = run("check", str(config))
    assert code == 78
    assert f"{config}:3: imap.prot: unknown key (did you mean 'port'?)" in err


def test_simulate_json_has_one_object_per_send_in_input_order(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(
        "\n".join(
            [
                '{"at": "2026-11-23T09:00:00-06:00", "type": "send", "id": "m1", "subject": "a"}',
                '{"at": "2026-11-23T09:30:00-06:00", "type": "send", "id": "m2", "subject": "b"}',
                '{"at": "2026-11-24T10:00:00-06:00", "type": "reply", "to": "m1"}',
            ]
        )
    )
    code, out, _ = run("simulate", str(ROOT / "policies/okafor.toml"), str(events), "--json")
    assert code == 0
    data = [json.loads(line) for line in out.splitlines()]  # JSON Lines, as the README says
    assert [d["id"] for d in data] == ["m1", "m2"]
    assert set(data[0]) == {"id", "sent_at", "digest", "reason"}
    # Okafor: Mon-Thu 07:30-09:00 London; 09:00 Chicago is 15:00 London, so m1 waits for Tuesday 07:30.
    assert data[0]["sent_at"] == "2026-11-24T07:30:00+00:00"
    # One a week, and a 2-day gap: m2 waits for the next week.
    assert data[1]["sent_at"] == "2026-11-30T07:30:00+00:00"


def test_simulate_reports_bad_events_with_line_numbers(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"at": "2026-11-23T09:00:00-06:00", "type": "send", "id": "m1"}\n{"at": "2026-11-23T09:00", "type": "send", "id": "m2"}\n'
    )
    code, _, err = run("simulate", str(ROOT / "policies/rivera.toml"), str(events))
    assert code == 1
    assert f"{events}:2: at: '2026-11-23T09:00' has no offset" in err


def test_simulate_without_arguments_runs_the_builtin_example() -> None:
    code, out, _ = run("simulate", "--student-tz", "America/New_York")
    assert code == 0
    assert "Dr. Ana Rivera" in out and "digest-m2" in out and "EST" in out


def test_the_console_script_is_installed() -> None:
    result = subprocess.run([sys.executable, "-m", "agent", "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "mentor-agent" in result.stdout


def test_check_warns_about_a_mentor_address_with_a_plus_tag(tmp_path: Path) -> None:
    text = (ROOT / "policies/rivera.toml").read_text()
    address = text.split("addresses = [", 1)[1].split('"')[1]
    local, _, domain = address.partition("@")
    (tmp_path / "rivera.toml").write_text(text.replace(f'"{address}"', f'"{local}+mentoring@{domain}"', 1))
    code, out, err = run("check", str(tmp_path))
    assert code == 0
    assert out.startswith("ok: 0 config file(s), 1 policy")
    assert f"warning: {tmp_path / 'rivera.toml'}: mentor.addresses: {local}+mentoring@{domain} has a +tag" in err
    assert f"add {address} too" in err
    (tmp_path / "rivera.toml").write_text(text)
    assert "+tag" not in run("check", str(tmp_path))[2]


@pytest.mark.parametrize("name", ["rivera.tml", "rivera.toml.bak", "rivera.TOML", "rivera"])
def test_check_warns_about_a_policy_under_a_name_that_is_not_read(tmp_path: Path, name: str) -> None:
    """A slip that leaves a mentor unpaced: her file renamed by mistake is not read, and `check` said all was ok."""
    shutil.copy(ROOT / "policies/okafor.toml", tmp_path / "okafor.toml")
    shutil.copy(ROOT / "policies/rivera.toml", tmp_path / name)
    (tmp_path / "notes.txt").write_text("nothing to do with policies\n")
    code, out, err = run("check", str(tmp_path))
    assert code == 0 and out.startswith("ok: 0 config file(s), 1 policy: Dr. Chidi Okafor")
    assert f"warning: {tmp_path / name} looks like a policy but is not read: only files named *.toml are" in err
    assert "notes.txt" not in err


def test_simulate_with_a_year_near_the_end_of_the_calendar_says_what_is_wrong(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"at": "9999-12-31T09:00:00-06:00", "type": "send", "id": "m1"}\n')
    code, _, err = run("simulate", str(ROOT / "policies/rivera.toml"), str(events))
    assert code == 1, err
    assert f"{events}:1: at: '9999-12-31T09:00:00-06:00' is too late to plan from" in err
    assert "before the year 9000" in err and "unexpected" not in err


def test_simulate_with_a_year_near_the_start_of_the_calendar_says_what_is_wrong(tmp_path: Path) -> None:
    """Found by the tester (F6): year 0001 at +14:00 was an unexpected OverflowError."""
    events = tmp_path / "events.jsonl"
    events.write_text('{"at": "0001-01-01T00:30:00+14:00", "type": "send", "id": "m1"}\n')
    code, _, err = run("simulate", str(ROOT / "policies/rivera.toml"), str(events))
    assert code == 1, err
    assert f"{events}:1: at: '0001-01-01T00:30:00+14:00' is too early to plan from" in err
    assert "unexpected" not in err
