"""Meeting times the student can keep: ``[student] hours`` (in the student's zone), and ``slots`` /
``propose --dry-run`` that judge with the config exactly as the daemon does (address, zone, busy_ics)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import click
import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.cli.meetings import register
from agent.config.settings import load_settings
from agent.rules.invites import parse_itip
from agent.rules.policy import MeetingRules
from agent.rules.slots import find_slots
from agent.rules.student_hours import outside_hours
from agent.rules.windows import WeeklySchedule, WeeklyWindow
from agent.store.ledger import Ledger
from tests.agent_process import Agent, agent
from tests.test_meeting_desk import event_of, meeting_policy, propose

__all__ = ["agent"]

NEW_YORK = ZoneInfo("America/New_York")
CHICAGO = ZoneInfo("America/Chicago")
NOW = "2026-03-02T09:00-06:00"  # Monday

POLICY = """\
[mentor]
name = "Dr. Ana Rivera"
addresses = ["arivera@hospital.example.org"]
timezone = "America/Chicago"

[meetings]
windows = ["Mon-Sun 00:00-24:00"]
duration = "30m"
buffer = "10m"
min_notice = "1h"
horizon = "7d"
proposals = 6
max_per_week = 9
max_per_month = 9
"""

BUSY = """\
BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//tests//busy//EN
BEGIN:VEVENT
UID:clinic@example.org
DTSTAMP:20260101T000000Z
SUMMARY:Clinic
DTSTART:20260303T130000Z
DTEND:20260303T230000Z
END:VEVENT
END:VCALENDAR
"""


def rules(**changes: object) -> MeetingRules:
    base: dict[str, object] = {
        "windows": ["Mon-Sun 00:00-24:00"],
        "duration": "30m",
        "buffer": "10m",
        "min_notice": "0m",
        "horizon": "14d",
        "proposals": 10,
        "max_per_week": 50,
        "max_per_month": 50,
    }
    return MeetingRules.model_validate({**base, **changes})


@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(0, 20),
    length=st.integers(1, 8),
    buffer=st.sampled_from(["0m", "10m", "45m"]),
    days=st.sampled_from(["Mon-Sun", "Mon-Fri", "Sat,Sun", "Tue"]),
    offset=st.integers(0, 7 * 24 * 4),
)
def test_no_slot_lies_outside_the_students_hours(start: int, length: int, buffer: str, days: str, offset: int) -> None:
    end = min(start + length, 24)
    spec = f"{days} {start:02d}:00-{end:02d}:00"
    now = datetime(2026, 3, 2, tzinfo=UTC) + timedelta(minutes=15 * offset)  # across the US switch of 8 March
    meeting = rules(buffer=buffer)
    busy = outside_hours([spec], NEW_YORK, now, now + meeting.horizon + timedelta(days=1), meeting.buffer)
    found = find_slots(meeting, CHICAGO, now, busy)
    hours = WeeklySchedule.of([WeeklyWindow.parse(spec)], NEW_YORK)
    for slot in found:
        assert any(
            opens <= slot.utc_start and slot.utc_end <= closes
            for opens, closes in hours.intervals(slot.utc_start - timedelta(days=1), slot.utc_end)
        ), slot
    if end - start >= 1 and days == "Mon-Sun":
        assert found  # an hour a day is room enough: the buffer does not eat the student's own hours


def test_a_meeting_may_end_exactly_when_the_students_hours_end() -> None:
    now = datetime(2026, 3, 2, 12, tzinfo=NEW_YORK)
    busy = outside_hours(["Mon-Sun 21:00-22:00"], NEW_YORK, now, now + timedelta(days=3), timedelta(minutes=10))
    first, second = find_slots(rules(proposals=2), CHICAGO, now, busy)[:2]
    assert first.start.astimezone(NEW_YORK).strftime("%H:%M") == "21:00"
    assert {first.end.astimezone(NEW_YORK).strftime("%H:%M"), second.end.astimezone(NEW_YORK).strftime("%H:%M")} <= {
        "21:30",
        "22:00",
    }


def run(*args: str) -> Result:
    group = click.Group("mentor-agent")
    register(group)
    return CliRunner().invoke(group, list(args))


def setup(tmp_path: Path, hours: str = '["Mon-Fri 08:00-21:00"]') -> tuple[Path, Path]:
    (tmp_path / "policies").mkdir()
    policy = tmp_path / "policies" / "rivera.toml"
    policy.write_text(POLICY)
    (tmp_path / "busy.ics").write_text(BUSY)
    config = tmp_path / "config.toml"
    config.write_text(f"""policies_dir = "policies"
state_dir = "state"

[student]
name = "Sam Patel"
address = "sam.patel@med.example.edu"
timezone = "America/New_York"
hours = {hours}

[calendar]
busy_ics = ["{tmp_path / "busy.ics"}"]
""")
    return config, policy


def test_slots_takes_config_hours_and_busy_ics(tmp_path: Path) -> None:
    config, _ = setup(tmp_path)
    result = run("slots", "rivera", "--config", str(config), "--now", NOW, "--json")
    assert result.exit_code == 0, result.output
    slots = [(datetime.fromisoformat(s["start"]), datetime.fromisoformat(s["end"])) for s in json.loads(result.output)]
    assert len(slots) == 6
    clinic = (datetime(2026, 3, 3, 13, tzinfo=UTC), datetime(2026, 3, 3, 23, tzinfo=UTC))
    for start, end in slots:
        local = start.astimezone(NEW_YORK), end.astimezone(NEW_YORK)
        assert local[0].weekday() < 5 and local[0].hour >= 8 and (local[1].hour, local[1].minute) <= (21, 0)
        assert end + timedelta(minutes=10) <= clinic[0] or start - timedelta(minutes=10) >= clinic[1]


def test_slots_start_no_earlier_than_the_pace_lets_an_invitation_leave(tmp_path: Path) -> None:
    """As the daemon: one e-mail a day (the default), and she had today's: an invitation could leave only tomorrow
    at 08:00 (her e-mail hours), so no time before 09:00 then (min_notice 1h)."""
    config, _ = setup(tmp_path, hours='["Mon-Sun 00:00-24:00"]')
    before = run("slots", "rivera", "--config", str(config), "--now", NOW, "--json")
    assert datetime.fromisoformat(json.loads(before.output)[0]["start"]) < datetime.fromisoformat(NOW) + timedelta(
        hours=2
    ), "with nothing sent, the first time is soon"
    ledger = Ledger(load_settings(config).ledger_path)
    try:
        ledger.add_item("rivera", "<today@x>", datetime(2026, 3, 2, 14, 30, tzinfo=UTC), ["<today@x>"])
    finally:
        ledger.close()
    result = run("slots", "rivera", "--config", str(config), "--now", NOW, "--json")
    assert result.exit_code == 0, result.output
    first = datetime.fromisoformat(json.loads(result.output)[0]["start"])
    assert first >= datetime(2026, 3, 3, 9, tzinfo=ZoneInfo("America/Chicago")), first


def test_propose_dry_run_is_what_the_daemon_would_send(tmp_path: Path) -> None:
    config, _ = setup(tmp_path, hours='["Mon-Sun 12:00-13:00"]')
    out = tmp_path / "invites"
    result = run("propose", "rivera", "--dry-run", "--config", str(config), "--out", str(out), "--now", NOW)
    assert result.exit_code == 0, result.output
    (path,) = sorted(out.glob("*.eml"))  # "sequential": one invitation, the other times named in it
    raw = path.read_bytes()
    (item,) = parse_itip(raw)
    assert item.organizer == "sam.patel@med.example.edu"
    assert b"From: Sam Patel <sam.patel@med.example.edu>" in raw and b"X-Mentor-Agent: invite" in raw
    assert b"student@example.org" not in raw
    assert item.start is not None
    start = item.start.astimezone(NEW_YORK)
    assert (start.hour, start.minute) in ((12, 0), (12, 15), (12, 30))  # the student's hours, not the clinic
    assert start.date().isoformat() != "2026-03-03"  # the clinic (busy_ics) fills Tuesday 08:00-18:00 New York
    assert "EST" in raw.decode() or "EDT" in raw.decode()  # the student's zone in the text, not UTC


def test_propose_dry_run_without_any_address_is_a_clear_error(tmp_path: Path) -> None:
    policy = tmp_path / "rivera.toml"
    policy.write_text(POLICY)
    result = run(
        "propose", str(policy), "--dry-run", "--config", str(tmp_path / "none.toml"), "--out", str(tmp_path / "out")
    )
    assert result.exit_code != 0 and "no such config file" in result.output
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    result = run("propose", str(policy), "--dry-run", "--config", str(empty), "--out", str(tmp_path / "out"))
    assert result.exit_code != 0 and "--student-address" in result.output and "Traceback" not in result.output


@pytest.mark.servers
def test_the_daemon_offers_only_times_inside_the_students_hours(agent: Agent) -> None:
    text = agent.config.read_text().replace(
        'timezone = "America/New_York"\n', 'timezone = "America/New_York"\nhours = ["Mon-Sun 12:00-13:00"]\n'
    )
    agent.config.write_text(text)
    agent.policy(meeting_policy(strategy="holds", proposals=3))  # the mentor: any time of any day
    agent.start()
    propose(agent)
    received = agent.smtp.wait_for(3, timeout=20)
    for invitation in received:
        start = event_of(invitation.content).decoded("DTSTART").astimezone(NEW_YORK)
        assert (start.hour, start.minute) in ((12, 0), (12, 15), (12, 30)), start
