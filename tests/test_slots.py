"""The slot finder: worked examples, then every constraint as a property over random policies and zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from agent.rules.policy import MeetingRules
from agent.rules.slots import GRID, Slot, find_slots, merge_intervals
from agent.rules.windows import WeeklySchedule

CHICAGO = ZoneInfo("America/Chicago")
LONDON = ZoneInfo("Europe/London")


def rules(**changes: Any) -> MeetingRules:
    data: dict[str, Any] = {
        "windows": ["Tue 16:00-17:00", "Thu 07:00-08:00"],
        "duration": "30m",
        "buffer": "10m",
        "min_notice": "48h",
        "horizon": "21d",
        "max_per_week": 1,
        "max_per_month": 2,
        "proposals": 3,
    }
    data.update(changes)
    return MeetingRules.model_validate(data)


def local(zone: ZoneInfo, year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=zone)


# -- worked examples ---------------------------------------------------------------------------------------


def test_three_slots_on_distinct_days_across_the_spring_switch() -> None:
    now = local(CHICAGO, 2026, 3, 2, 9, 0)  # Monday; clocks spring forward on Sunday 8 March
    slots = find_slots(rules(), CHICAGO, now, busy=[])
    assert [(s.start.isoformat(), s.end.isoformat()) for s in slots] == [
        ("2026-03-05T07:00:00-06:00", "2026-03-05T07:30:00-06:00"),
        ("2026-03-10T16:00:00-05:00", "2026-03-10T16:30:00-05:00"),
        ("2026-03-12T07:00:00-05:00", "2026-03-12T07:30:00-05:00"),
    ]
    assert all(s.start.tzinfo is CHICAGO for s in slots)


def test_busy_time_with_buffer_pushes_the_slot_along_the_grid() -> None:
    now = local(CHICAGO, 2026, 3, 2, 9, 0)
    busy = [(local(CHICAGO, 2026, 3, 5, 6, 30), local(CHICAGO, 2026, 3, 5, 7, 5))]
    first = find_slots(rules(), CHICAGO, now, busy=busy, count=1)[0]
    # 07:05 + 10 min buffer = 07:15, which is on the quarter-hour grid
    assert first.start == local(CHICAGO, 2026, 3, 5, 7, 15)
    busy = [(local(CHICAGO, 2026, 3, 5, 6, 30), local(CHICAGO, 2026, 3, 5, 7, 6))]
    first = find_slots(rules(), CHICAGO, now, busy=busy, count=1)[0]
    assert first.start == local(CHICAGO, 2026, 3, 5, 7, 30)


def test_busy_time_ending_after_the_window_skips_the_day() -> None:
    now = local(CHICAGO, 2026, 3, 2, 9, 0)
    busy = [(local(CHICAGO, 2026, 3, 5, 7, 25), local(CHICAGO, 2026, 3, 5, 9, 0))]
    first = find_slots(rules(), CHICAGO, now, busy=busy, count=1)[0]
    assert first.start.date() == date(2026, 3, 10)


def test_min_notice_and_horizon() -> None:
    now = local(CHICAGO, 2026, 3, 3, 7, 31)  # Thu 07:30 is 47 h 59 min away: too soon
    slots = find_slots(rules(horizon="9d"), CHICAGO, now, busy=[], count=2)
    assert [s.start.date() for s in slots] == [date(2026, 3, 10), date(2026, 3, 12)]
    # nine real days after 07:31 CST is 08:31 CDT; eight and a half end before Thursday 12 March
    slots = find_slots(rules(horizon="8d12h"), CHICAGO, now, busy=[], count=2)
    assert [s.start.strftime("%d %H:%M") for s in slots] == ["10 16:00", "10 16:30"]
    now = local(CHICAGO, 2026, 3, 3, 7, 30)
    assert find_slots(rules(), CHICAGO, now, busy=[], count=1)[0].start == local(CHICAGO, 2026, 3, 5, 7, 30)


def test_weekly_and_monthly_limits_count_agreed_meetings() -> None:
    now = local(CHICAGO, 2026, 3, 2, 9, 0)
    agreed = [local(CHICAGO, 2026, 3, 3, 16, 0)]  # this week already has one
    slots = find_slots(rules(), CHICAGO, now, busy=[], agreed=agreed)
    assert [s.start.date() for s in slots] == [date(2026, 3, 10), date(2026, 3, 12), date(2026, 3, 17)]
    agreed = [local(CHICAGO, 2026, 3, 3, 16, 0), local(CHICAGO, 2026, 3, 24, 16, 0)]  # March is full
    assert find_slots(rules(horizon="40d"), CHICAGO, now, busy=[], agreed=agreed)[0].start.month == 4


def test_fills_with_same_day_slots_only_when_days_run_out() -> None:
    now = local(LONDON, 2026, 3, 2, 9, 0)
    policy = rules(windows=["Fri 15:00-17:00"], duration="20m", horizon="7d", proposals=3, min_notice="0")
    slots = find_slots(policy, LONDON, now, busy=[])
    assert [s.start.strftime("%a %H:%M") for s in slots] == ["Fri 15:00", "Fri 15:30", "Fri 16:00"]
    assert find_slots(policy, LONDON, now, busy=[], count=1)[0].start.hour == 15


def test_nothing_when_no_windows_or_zero_limit() -> None:
    now = local(CHICAGO, 2026, 3, 2, 9, 0)
    assert find_slots(rules(windows=[]), CHICAGO, now, busy=[]) == []
    assert find_slots(rules(max_per_week=0), CHICAGO, now, busy=[]) == []


def test_naive_input_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        find_slots(rules(), CHICAGO, datetime(2026, 3, 2, 9, 0), busy=[])


def test_window_inside_the_autumn_fold_counts_real_minutes() -> None:
    zone = ZoneInfo("Europe/Berlin")  # 25 Oct 2026: 03:00 CEST -> 02:00 CET
    policy = rules(windows=["Sun 01:00-04:00"], duration="60m", buffer="0", min_notice="0", horizon="7d", proposals=5)
    slots = find_slots(policy, zone, local(zone, 2026, 10, 20, 0, 0), busy=[])
    assert len(slots) == 4  # the window lasts four real hours that night
    assert all(s.utc_end - s.utc_start == timedelta(hours=1) for s in slots)
    assert [s.start.strftime("%H:%M%z") for s in slots] == ["01:00+0200", "02:00+0200", "02:00+0100", "03:00+0100"]


def test_merge_intervals() -> None:
    a = local(CHICAGO, 2026, 1, 1, 9, 0)
    h = timedelta(hours=1)
    assert merge_intervals([(a + 2 * h, a + 3 * h), (a, a + h), (a + h, a + 2 * h), (a, a)]) == [(a, a + 3 * h)]


# -- properties --------------------------------------------------------------------------------------------

ZONES = [
    "America/Chicago",
    "Europe/London",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Pacific/Chatham",
    "America/St_Johns",
    "UTC",
]
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
# Instants near DST switches in the zones above, plus anywhere in 2026.
SWITCHES = [
    datetime(2026, 3, 8, 8, tzinfo=UTC),
    datetime(2026, 11, 1, 7, tzinfo=UTC),
    datetime(2026, 3, 29, 1, tzinfo=UTC),
    datetime(2026, 10, 25, 1, tzinfo=UTC),
    datetime(2026, 4, 4, 15, tzinfo=UTC),
    datetime(2026, 10, 3, 15, tzinfo=UTC),
    datetime(2026, 4, 5, 3, tzinfo=UTC),
    datetime(2026, 9, 6, 4, tzinfo=UTC),
    datetime(2026, 9, 26, 14, tzinfo=UTC),
]


@st.composite
def window_specs(draw: st.DrawFn) -> str:
    days = draw(st.lists(st.sampled_from(DAYS), min_size=1, max_size=7, unique=True))
    start = draw(st.integers(0, 22 * 4 - 1)) * 15 + draw(st.sampled_from([0, 0, 0, 5]))
    length = draw(st.integers(1, 6 * 4)) * 15
    end = min(start + length, 23 * 60)
    assume(end > start)
    return f"{','.join(days)} {start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"


Scenario = tuple[MeetingRules, ZoneInfo, datetime, list[tuple[datetime, datetime]], list[datetime], int]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    zone = ZoneInfo(draw(st.sampled_from(ZONES)))
    near = draw(st.sampled_from(SWITCHES))
    now = near + timedelta(minutes=draw(st.integers(-20 * 24 * 60, 2 * 24 * 60)))
    windows = draw(st.lists(window_specs(), min_size=1, max_size=3))
    duration = draw(st.sampled_from([15, 20, 30, 45, 60, 90]))
    notice = draw(st.integers(0, 96))
    try:
        policy = MeetingRules.model_validate(
            {
                "windows": windows,
                "duration": f"{duration}m",
                "buffer": f"{draw(st.sampled_from([0, 5, 10, 15, 30]))}m",
                "min_notice": f"{notice}h",
                "horizon": f"{notice + draw(st.integers(1, 30 * 24))}h",
                "max_per_week": draw(st.integers(0, 3)),
                "max_per_month": draw(st.integers(0, 5)),
                "proposals": draw(st.integers(1, 10)),
            }
        )
    except ValueError:
        assume(False)
        raise
    span = 35 * 24 * 60
    busy = []
    for _ in range(draw(st.integers(0, 40))):
        begin = now + timedelta(minutes=draw(st.integers(-60, span)))
        busy.append((begin, begin + timedelta(minutes=draw(st.integers(1, 600)))))
    agreed = [now + timedelta(minutes=draw(st.integers(-span, span))) for _ in range(draw(st.integers(0, 4)))]
    count = draw(st.integers(1, 10))
    return policy, zone, now, busy, agreed, count


def _window_of(slot: Slot, schedule: WeeklySchedule) -> tuple[datetime, datetime] | None:
    for opens, closes in schedule.intervals(slot.start - timedelta(days=1), slot.end + timedelta(days=1)):
        if opens.astimezone(UTC) <= slot.utc_start and slot.utc_end <= closes.astimezone(UTC):
            return opens, closes
    return None


def _limit_ok(policy: MeetingRules, zone: ZoneInfo, slot: Slot, agreed: list[datetime]) -> bool:
    day = slot.start.astimezone(zone).date()
    same_week = [a for a in agreed if a.astimezone(zone).date().isocalendar()[:2] == day.isocalendar()[:2]]
    same_month = [a for a in agreed if (a.astimezone(zone).year, a.astimezone(zone).month) == (day.year, day.month)]
    return len(same_week) < policy.max_per_week and len(same_month) < policy.max_per_month


def _free(
    policy: MeetingRules, start: datetime, end: datetime, busy: list[tuple[datetime, datetime]], agreed: list[datetime]
) -> bool:
    pad = policy.buffer
    blocks = busy + [(a, a + policy.duration) for a in agreed]
    return all(not (start < b_end + pad and b_start - pad < end) for b_start, b_end in blocks)


@given(scenarios())
def test_every_slot_keeps_every_rule(case: Scenario) -> None:
    policy, zone, now, busy, agreed, count = case
    slots = find_slots(policy, zone, now, busy, agreed, count)
    schedule = WeeklySchedule.of(policy.windows, zone)
    assert len(slots) <= count
    assert slots == sorted(slots)
    for slot in slots:
        assert slot.start.tzinfo is zone and slot.end.tzinfo is zone
        assert slot.utc_end - slot.utc_start == policy.duration
        assert slot.start >= now + policy.min_notice
        assert slot.end <= now + policy.horizon
        window = _window_of(slot, schedule)
        assert window is not None, f"{slot} is outside every window"
        assert (slot.utc_start - window[0].astimezone(UTC)) % GRID == timedelta(0), "off the grid"
        assert _free(policy, slot.start, slot.end, busy, agreed)
        assert _limit_ok(policy, zone, slot, agreed)
    for first, second in pairwise(slots):
        assert first.utc_end <= second.utc_start


@given(scenarios())
def test_slots_are_the_earliest_on_distinct_days(case: Scenario) -> None:
    """Against a brute-force oracle: every grid start of every window, checked one by one."""
    policy, zone, now, busy, agreed, count = case
    slots = find_slots(policy, zone, now, busy, agreed, count)
    schedule = WeeklySchedule.of(policy.windows, zone)
    earliest_per_day: dict[date, datetime] = {}
    for opens, closes in schedule.intervals(now + policy.min_notice, now + policy.horizon):
        start = opens.astimezone(UTC)  # aware + timedelta is wall-clock arithmetic: step in UTC
        while start + policy.duration <= min(closes.astimezone(UTC), now + policy.horizon):
            end = start + policy.duration
            slot = Slot(start.astimezone(zone), end.astimezone(zone))
            if (
                start >= now + policy.min_notice
                and _free(policy, start, end, busy, agreed)
                and _limit_ok(policy, zone, slot, agreed)
            ):
                earliest_per_day.setdefault(start.astimezone(zone).date(), start)
            start += GRID
    expected_days = sorted(earliest_per_day)[:count]
    by_day: dict[date, list[Slot]] = {}
    for slot in slots:
        by_day.setdefault(slot.start.date(), []).append(slot)
    assert sorted(by_day) == expected_days
    for day, found in by_day.items():
        assert found[0].utc_start == earliest_per_day[day].astimezone(UTC)
    if len(earliest_per_day) >= count:
        assert len(slots) == count and len(by_day) == count  # no same-day slot while another day is free
