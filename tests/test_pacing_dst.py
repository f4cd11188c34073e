"""Durations are real time and windows close at the jump: the cases of issue 16, with exact answers.

Each case runs twice: through :func:`agent.rules.simulate.simulate` and through ``mentor-agent simulate --json``
(the engine's public face), which must print the same instants with the offsets the mentor's clock really
shows at them.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from agent.cli.main import main
from agent.rules.localtime import after, at_wall, describe, elapsed, instant, local_date, shift_days, wall
from agent.rules.pacing import Engine, History, Queued, SentItem
from agent.rules.simulate import simulate
from agent.rules.windows import WeeklySchedule, WeeklyWindow
from tests.helpers import events, policy, reply, send

NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
ROOMY = {"max_per_day": 10, "max_per_week": 50, "max_unanswered": 50}


def _toml(value: Any) -> str:
    return json.dumps(value)  # a JSON string, number or list of strings is also TOML


def run_both(email: dict[str, Any], tz: str, items: list[dict[str, Any]], tmp_path: Path) -> dict[str, str | None]:
    """``sent_at`` per id from the library and from the CLI; both must agree."""
    library = {
        o.id: (o.sent_at.isoformat() if o.sent_at else None) for o in simulate(policy(email, tz), events(*items))
    }
    policy_file = tmp_path / "mentor.toml"
    policy_file.write_text(
        '[mentor]\nname = "Dr. Test"\naddresses = ["t@example.org"]\n'
        f"timezone = {_toml(tz)}\n[email]\n" + "".join(f"{key} = {_toml(value)}\n" for key, value in email.items()),
        encoding="utf-8",
    )
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    result = CliRunner().invoke(main, ["simulate", str(policy_file), str(events_file), "--json"])
    assert result.exit_code == 0, result.output
    printed = {entry["id"]: entry["sent_at"] for entry in map(json.loads, result.output.splitlines())}  # JSON Lines
    assert printed == library
    return printed


# -- 1. durations are real time, however the previous send time was reached --------------------------------


def test_min_gap_25h_after_a_send_at_a_window_opening_is_25_real_hours(tmp_path: Path) -> None:
    # m1 waits for the 08:00 opening; m2 must wait 25 real hours across the spring-forward night.
    email = {**ROOMY, "min_gap": "25h", "send_windows": ["Mon-Sun 08:00-23:00"]}
    result = run_both(
        email,
        "America/New_York",
        [send("2026-03-07T07:00:00-05:00", "m1"), send("2026-03-07T07:05:00-05:00", "m2")],
        tmp_path,
    )
    assert result == {"m1": "2026-03-07T08:00:00-05:00", "m2": "2026-03-08T10:00:00-04:00"}  # was 09:00 (24 h)


def test_min_gap_25h_after_a_send_at_its_drop_time_is_the_same_25_hours(tmp_path: Path) -> None:
    email = {**ROOMY, "min_gap": "25h", "send_windows": ["Mon-Sun 08:00-23:00"]}
    result = run_both(
        email,
        "America/New_York",
        [send("2026-03-07T10:00:00-05:00", "m1"), send("2026-03-07T10:05:00-05:00", "m2")],
        tmp_path,
    )
    assert result == {"m1": "2026-03-07T10:00:00-05:00", "m2": "2026-03-08T12:00:00-04:00"}


def test_follow_up_after_90m_is_90_real_minutes_across_lord_howes_half_hour_jump(tmp_path: Path) -> None:
    # Lord Howe springs from 02:00 +10:30 to 02:30 +11:00 on 2026-10-04.
    email = {**ROOMY, "max_unanswered": 1, "follow_up_after": "90m", "send_windows": ["Mon-Sun 01:30-23:00"]}
    result = run_both(
        email,
        "Australia/Lord_Howe",
        [send("2026-10-04T01:00:00+10:30", "m1"), send("2026-10-04T01:05:00+10:30", "m2")],
        tmp_path,
    )
    assert result == {"m1": "2026-10-04T01:30:00+10:30", "m2": "2026-10-04T03:30:00+11:00"}  # was 03:00 (60 min)
    first, second = (datetime.fromisoformat(v) for v in (result["m1"], result["m2"]) if v)
    assert elapsed(first, second) == timedelta(minutes=90)


def test_follow_up_due_in_the_gap_is_printed_with_the_offset_the_clock_shows(tmp_path: Path) -> None:
    # 45 minutes after 01:30 +10:30 is 15:45Z: the clock shows 02:45 +11:00 (02:15 +10:30 never happens).
    email = {**ROOMY, "max_unanswered": 1, "follow_up_after": "45m", "send_windows": ["Mon-Sun 01:30-23:00"]}
    result = run_both(
        email,
        "Australia/Lord_Howe",
        [send("2026-10-04T01:00:00+10:30", "m1"), send("2026-10-04T01:05:00+10:30", "m2")],
        tmp_path,
    )
    assert result["m2"] == "2026-10-04T02:45:00+11:00"


# -- 2. a time in the spring-forward gap is not inside a window -----------------------------------------------


def test_a_gap_time_is_outside_the_window_the_next_opening_is_a_week_later(tmp_path: Path) -> None:
    email = {**ROOMY, "min_gap": "1h30m", "send_windows": ["Sun 00:15-01:00"]}
    result = run_both(
        email,
        "Europe/London",
        [send("2026-03-28T12:00:00+00:00", "m1"), send("2026-03-28T12:00:00+00:00", "m2")],
        tmp_path,
    )
    # 00:15Z + 1h30m = 01:45Z, which London reads as 02:45 BST: the window closed at 01:00 GMT.
    assert result == {"m1": "2026-03-29T00:15:00+00:00", "m2": "2026-04-05T00:15:00+01:00"}


def test_schedule_contains_reads_a_nonexistent_wall_reading_as_its_real_instant() -> None:
    schedule = WeeklySchedule.of([WeeklyWindow.parse("Sun 00:15-01:00")], LONDON)
    gap_reading = datetime(2026, 3, 29, 1, 45, tzinfo=LONDON)  # does not exist; Python takes it as 01:45 GMT
    assert not schedule.contains(gap_reading)
    assert schedule.next_open(gap_reading) == datetime(2026, 4, 4, 23, 15, tzinfo=UTC)


# -- 3. "d" means 24 real hours, whichever way the previous send was reached ----------------------------------


@pytest.mark.parametrize(
    ("drops", "expected"),
    [
        (("07:00", "07:05"), {"m1": "2026-03-07T08:00:00-05:00", "m2": "2026-03-08T09:00:00-04:00"}),  # was 08:00
        (("10:00", "10:05"), {"m1": "2026-03-07T10:00:00-05:00", "m2": "2026-03-08T11:00:00-04:00"}),
    ],
)
def test_one_day_of_min_gap_is_24_real_hours(drops: tuple[str, str], expected: dict[str, str], tmp_path: Path) -> None:
    email = {**ROOMY, "min_gap": "1d", "send_windows": ["Mon-Sun 08:00-23:00"]}
    items = [send(f"2026-03-07T{drops[0]}:00-05:00", "m1"), send(f"2026-03-07T{drops[1]}:00-05:00", "m2")]
    assert run_both(email, "America/New_York", items, tmp_path) == expected


def test_two_days_of_min_gap_are_48_real_hours_on_the_short_day(tmp_path: Path) -> None:
    email = {**ROOMY, "min_gap": "2d", "send_windows": ["Mon-Sun 08:00-23:00"]}
    result = run_both(
        email,
        "America/New_York",
        [send("2026-03-07T07:00:00-05:00", "m1"), send("2026-03-07T07:05:00-05:00", "m2")],
        tmp_path,
    )
    assert result["m2"] == "2026-03-09T09:00:00-04:00"


def test_follow_up_after_one_day_is_24_real_hours_on_the_long_day(tmp_path: Path) -> None:
    email = {**ROOMY, "max_unanswered": 1, "follow_up_after": "1d", "send_windows": ["Mon-Sun 08:00-23:00"]}
    result = run_both(
        email,
        "America/New_York",
        [send("2026-10-31T07:00:00-04:00", "m1"), send("2026-10-31T07:05:00-04:00", "m2")],
        tmp_path,
    )
    # 12:00Z on Saturday + 24 h = 12:00Z on Sunday, after the fall back: 07:00 EST, before the window opens.
    assert result == {"m1": "2026-10-31T08:00:00-04:00", "m2": "2026-11-01T08:00:00-05:00"}


# -- the repeated hour of a fall-back night ---------------------------------------------------------------------


def test_a_gap_of_one_hour_in_the_repeated_hour_lands_on_the_second_pass(tmp_path: Path) -> None:
    # The window opens at the first 01:00 (EDT); one real hour later the clock shows 01:00 again (EST).
    email = {**ROOMY, "min_gap": "1h", "send_windows": ["Sun 01:00-05:00"]}
    result = run_both(
        email,
        "America/New_York",
        [send("2026-11-01T00:50:00-04:00", "m1"), send("2026-11-01T00:55:00-04:00", "m2")],
        tmp_path,
    )
    assert result == {"m1": "2026-11-01T01:00:00-04:00", "m2": "2026-11-01T01:00:00-05:00"}  # was 02:00 EST


def test_a_window_that_spans_the_repeated_hour_lasts_an_hour_longer(tmp_path: Path) -> None:
    # "Sun 00:00-03:00" on the fall-back night is four real hours; the second 01:30 lies inside it.
    email = {**ROOMY, "send_windows": ["Sun 00:00-03:00"]}
    result = run_both(
        email,
        "America/New_York",
        [send("2026-11-01T01:30:00-05:00", "m1"), send("2026-11-01T02:59:00-05:00", "m2")],
        tmp_path,
    )
    assert result == {"m1": "2026-11-01T01:30:00-05:00", "m2": "2026-11-01T02:59:00-05:00"}


def test_a_window_that_ends_in_the_repeated_hour_closes_at_its_first_pass(tmp_path: Path) -> None:
    email = {**ROOMY, "send_windows": ["Sun 00:00-01:30"]}
    result = run_both(email, "America/New_York", [send("2026-11-01T01:10:00-05:00", "m1")], tmp_path)
    assert result == {"m1": "2026-11-08T00:00:00-05:00"}


def test_a_reply_in_the_repeated_hour_releases_the_held_message(tmp_path: Path) -> None:
    email = {**ROOMY, "max_unanswered": 1, "follow_up_after": "7d", "send_windows": ["Mon-Sun 00:00-24:00"]}
    result = run_both(
        email,
        "America/New_York",
        [
            send("2026-11-01T01:10:00-04:00", "m1"),
            send("2026-11-01T01:20:00-04:00", "m2"),
            reply("2026-11-01T01:05:00-05:00", "m1"),
        ],
        tmp_path,
    )
    assert result == {"m1": "2026-11-01T01:10:00-04:00", "m2": "2026-11-01T01:05:00-05:00"}


# -- the helpers keep the rule ----------------------------------------------------------------------------------


def test_engine_decisions_are_instants_in_utc() -> None:
    zoned = datetime(2026, 3, 7, 8, tzinfo=NEW_YORK)
    engine = Engine(
        policy({**ROOMY, "min_gap": "25h", "send_windows": ["Mon-Sun 08:00-23:00"]}, "America/New_York"),
        History(sent=(SentItem(zoned, ("m0",)),)),
    )
    [decision] = engine.plan([Queued("m1", zoned)], zoned)
    assert decision.at == datetime(2026, 3, 8, 14, tzinfo=UTC)
    assert decision.at is not None and decision.at.tzinfo is UTC
    assert "goes Sun 08 Mar 10:00 EDT" in decision.reason


def test_helpers() -> None:
    zoned = datetime(2026, 3, 7, 8, tzinfo=NEW_YORK)
    assert after(zoned, timedelta(hours=25)) == datetime(2026, 3, 8, 14, tzinfo=UTC)
    assert after(zoned, timedelta(hours=25)).tzinfo is UTC
    assert zoned + timedelta(hours=25) == datetime(2026, 3, 8, 13, tzinfo=UTC)  # what Python does on its own
    assert elapsed(zoned, datetime(2026, 3, 8, 9, tzinfo=NEW_YORK)) == timedelta(hours=24)
    assert datetime(2026, 3, 8, 9, tzinfo=NEW_YORK) - zoned == timedelta(hours=25)  # ditto: wall clock
    assert shift_days(date(2026, 3, 7), 1) == date(2026, 3, 8)
    gap = datetime(2026, 3, 29, 1, 45, tzinfo=LONDON)
    assert gap.astimezone(LONDON).isoformat() == "2026-03-29T01:45:00+00:00"  # unchanged: not a real reading
    assert wall(gap, LONDON).isoformat() == "2026-03-29T02:45:00+01:00"
    assert describe(gap, LONDON) == "Sun 29 Mar 02:45 BST"
    assert instant(gap) == datetime(2026, 3, 29, 1, 45, tzinfo=UTC)
    assert local_date(datetime(2026, 4, 4, 23, 30, tzinfo=UTC), LONDON) == date(2026, 4, 5)
    assert at_wall(date(2026, 10, 4), time(2, 15), LORD_HOWE) == datetime(2026, 10, 3, 15, 30, tzinfo=UTC)
