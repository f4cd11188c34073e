"""A reference for the pacing engine that shares no arithmetic with it: one UTC minute after another.

The reference (:class:`Reference`) keeps time as whole UTC minutes (plain integers) and steps through them.
At each minute it reads the mentor's wall clock *only* to learn the local date and the reading of that minute
(``datetime.fromtimestamp``), and checks every rule directly:

* ``max_per_day`` / ``max_per_week``: items already sent whose minute has the same local date / ISO week;
* ``min_gap`` and ``follow_up_after``: real time, whole minutes since the last item (a duration is its length
  in minutes; "1d" is 1440 of them);
* ``send_windows``: on a local date, a window opens at the first minute of that date whose reading is at or
  after its start, and closes at the first minute of that date whose reading is at or after its end (or when
  the date ends); a minute is inside when it lies between the two. So an edge in the spring-forward gap opens
  at the jump, an edge in the repeated hour means its first pass;
* ``max_unanswered``: a reply answers the item holding its message and all items before it, if that item had
  gone; past the limit one follow-up may go ``follow_up_after`` the last item.

The queue is first in, first out; events of a minute are taken before sends of that minute; the run ends when
the queue is empty or 60 days after the last event, like ``simulate``. The scenarios are drawn around the DST
changes of 2026 in New York, London, Lord Howe (30-minute shift) and Santiago (changes at midnight), with windows
and events often at 00:00-03:00 local. ``over_limit = "delay"`` only: digests are checked by the other property
tests.

``ORACLE_EXAMPLES`` sets how many scenarios one run draws; ``ORACLE_REPORT=1`` collects mismatches instead of
failing at the first, and prints how many scenarios were compared and which disagreed (run with ``-s``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.rules.policy import Policy
from agent.rules.simulate import Event, simulate

ZONES = ["America/New_York", "Europe/London", "Australia/Lord_Howe", "America/Santiago"]
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
RUN_ON = 60 * 1440  # minutes after the last event, as simulate
EXAMPLES = int(os.environ.get("ORACLE_EXAMPLES", "120"))
REPORT = os.environ.get("ORACLE_REPORT") == "1"


@cache
def transitions(zone_name: str) -> list[int]:
    """The UTC minutes in 2026 at which ``zone_name`` changes its offset (to draw scenarios around them)."""
    zone = ZoneInfo(zone_name)
    found = []
    hour = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) // 3600
    previous = datetime.fromtimestamp(hour * 3600, zone).utcoffset()
    for step in range(1, 366 * 24):
        offset = datetime.fromtimestamp((hour + step) * 3600, zone).utcoffset()
        if offset != previous:
            found.append((hour + step) * 60)
            previous = offset
    assert len(found) == 2, (zone_name, found)
    return found


# -- the reference ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    days: frozenset[int]
    start: int  # minutes after local midnight, as written
    end: int  # 1440 for 24:00

    @property
    def spec(self) -> str:
        def clock(minutes: int) -> str:
            return f"{minutes // 60:02d}:{minutes % 60:02d}"

        return f"{','.join(DAYS[d] for d in sorted(self.days))} {clock(self.start)}-{clock(self.end)}"


@dataclass(frozen=True)
class Rules:
    max_per_day: int
    max_per_week: int
    min_gap: int  # minutes
    follow_up_after: int  # minutes
    max_unanswered: int
    windows: tuple[Window, ...]


@dataclass(frozen=True)
class Happening:
    minute: int
    kind: str  # "send" or "reply"
    id: str


@dataclass
class Sent:
    minute: int
    id: str
    day: date
    follow_up: bool


@dataclass
class Reference:
    zone: ZoneInfo
    rules: Rules
    readings: dict[int, tuple[date, int]] = field(default_factory=dict)
    runs: dict[date, tuple[int, int]] = field(default_factory=dict)
    edges: dict[tuple[Window, date], tuple[int | None, int]] = field(default_factory=dict)

    def reading(self, minute: int) -> tuple[date, int]:
        """The local date and the minutes since local midnight that the mentor's clock shows at ``minute``."""
        known = self.readings.get(minute)
        if known is None:
            local = datetime.fromtimestamp(minute * 60, self.zone)
            known = self.readings[minute] = (local.date(), local.hour * 60 + local.minute)
        return known

    def run(self, day: date, near: int) -> tuple[int, int]:
        """The first and last UTC minute whose local date is ``day`` (``near`` is one of them)."""
        if day not in self.runs:
            first = last = near
            while self.reading(first - 1)[0] == day:
                first -= 1
            while self.reading(last + 1)[0] == day:
                last += 1
            # A local date is one unbroken stretch of minutes in these zones; say so loudly if not.
            assert self.reading(first - 1)[0] < day < self.reading(last + 1)[0]
            self.runs[day] = (first, last)
        return self.runs[day]

    def bounds(self, window: Window, day: date, near: int) -> tuple[int | None, int]:
        """The minutes at which ``window`` opens (``None``: never) and closes on the local date ``day``."""
        key = (window, day)
        if key not in self.edges:
            first, last = self.run(day, near)
            opens = next((m for m in range(first, last + 1) if self.reading(m)[1] >= window.start), None)
            closes = next((m for m in range(first, last + 1) if self.reading(m)[1] >= window.end), last + 1)
            self.edges[key] = (opens, closes)
        return self.edges[key]

    def inside(self, minute: int) -> bool:
        day, _ = self.reading(minute)
        for window in self.rules.windows:
            if day.weekday() not in window.days:
                continue
            opens, closes = self.bounds(window, day, minute)
            if opens is not None and opens <= minute < closes:
                return True
        return False

    def simulate(self, happenings: list[Happening]) -> dict[str, int | None]:
        sent: list[Sent] = []
        where: dict[str, int] = {}
        answered = -1
        queue: list[str] = []
        result: dict[str, int | None] = {h.id: None for h in happenings if h.kind == "send"}
        pending = iter(happenings)
        upcoming = next(pending, None)
        end = happenings[-1].minute + RUN_ON
        minute = happenings[0].minute
        while minute <= end:
            while upcoming is not None and upcoming.minute <= minute:
                if upcoming.kind == "send":
                    queue.append(upcoming.id)
                elif upcoming.id in where:
                    answered = max(answered, where[upcoming.id])
                upcoming = next(pending, None)
            held = False
            while queue:
                verdict = self.allowed(minute, sent, answered)
                if verdict is None:
                    held = True
                    break
                if not verdict[0]:
                    break
                head = queue.pop(0)
                where[head] = len(sent)
                sent.append(Sent(minute, head, self.reading(minute)[0], verdict[1]))
                result[head] = minute
            if not queue or held:  # nothing can change before the next event
                if upcoming is None:
                    break
                minute = upcoming.minute
                continue
            minute += 1
        return result

    def allowed(self, minute: int, sent: list[Sent], answered: int) -> tuple[bool, bool] | None:
        """Whether the head may go at ``minute`` and whether as the follow-up; ``None``: only a reply helps."""
        rules = self.rules
        waiting = sent[answered + 1 :]
        follow_up = False
        if len(waiting) >= rules.max_unanswered:
            if any(item.follow_up for item in waiting):
                return None
            if minute - sent[-1].minute < rules.follow_up_after:
                return False, False
            follow_up = True
        day, _ = self.reading(minute)
        if sum(1 for item in sent if item.day == day) >= rules.max_per_day:
            return False, False
        week = day.isocalendar()[:2]
        if sum(1 for item in sent if item.day.isocalendar()[:2] == week) >= rules.max_per_week:
            return False, False
        if sent and minute - sent[-1].minute < rules.min_gap:
            return False, False
        return self.inside(minute), follow_up


# -- scenarios --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    zone: str
    rules: Rules
    gap_text: str
    follow_up_text: str
    happenings: list[Happening]
    spelling: str  # how event times are written: "utc", "zone" (ZoneInfo) or "offset" (fixed offset)

    def policy(self) -> Policy:
        rules = self.rules
        return Policy.model_validate(
            {
                "mentor": {"name": "Dr. Oracle", "addresses": ["o@example.org"], "timezone": self.zone},
                "email": {
                    "max_per_day": rules.max_per_day,
                    "max_per_week": rules.max_per_week,
                    "min_gap": self.gap_text,
                    "follow_up_after": self.follow_up_text,
                    "max_unanswered": rules.max_unanswered,
                    "send_windows": [w.spec for w in rules.windows],
                    "over_limit": "delay",
                },
            }
        )

    def events(self) -> list[Event]:
        zone = ZoneInfo(self.zone)
        out = []
        for h in self.happenings:
            at = datetime.fromtimestamp(h.minute * 60, UTC)
            if self.spelling == "zone":
                at = at.astimezone(zone)
            elif self.spelling == "offset":
                local = at.astimezone(zone)
                at = datetime.fromisoformat(local.isoformat())  # the same reading with a fixed offset
            if h.kind == "send":
                out.append(Event(at=at, type="send", id=h.id, subject=h.id))
            else:
                out.append(Event(at=at, type="reply", to=h.id))
        return out


def _duration(draw: st.DrawFn, *, allow_zero: bool) -> tuple[int, str]:
    """A duration as minutes and as a policy would spell it (m, h or d)."""
    unit = draw(st.sampled_from(["m", "h", "d"]))
    if unit == "m":
        amount = draw(st.integers(0 if allow_zero else 1, 240))
        return amount, f"{amount}m" if amount else "0"
    if unit == "h":
        amount = draw(st.integers(1, 49))
        return amount * 60, f"{amount}h"
    amount = draw(st.integers(1, 3))
    return amount * 1440, f"{amount}d"


def _clock(draw: st.DrawFn) -> int:
    """A window edge: often in the small hours, where the clocks jump; on a 15-minute grid or any minute."""
    minutes = draw(st.one_of(st.integers(0, 3 * 60), st.integers(0, 1439)))
    return minutes if draw(st.booleans()) else minutes - minutes % 15


@st.composite
def windows(draw: st.DrawFn) -> Window:
    days = frozenset(draw(st.sets(st.integers(0, 6), min_size=1, max_size=7)))
    start = _clock(draw)
    length = draw(st.one_of(st.integers(1, 180), st.integers(1, 1440)))
    return Window(days, start, min(1440, start + length))


def _apart(drawn: list[Window]) -> tuple[Window, ...]:
    """The drawn windows less any that shares a minute with an earlier one: the policy refuses overlaps."""
    kept: list[Window] = []
    for window in drawn:
        if not any(
            window.days & other.days and window.start < other.end and other.start < window.end for other in kept
        ):
            kept.append(window)
    return tuple(kept)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    zone = draw(st.sampled_from(ZONES))
    change = draw(st.sampled_from(transitions(zone)))
    start = change - draw(st.integers(0, 3 * 1440))
    gap, gap_text = _duration(draw, allow_zero=True)
    follow_up, follow_up_text = _duration(draw, allow_zero=False)
    per_day = draw(st.integers(1, 4))
    rules = Rules(
        max_per_day=per_day,
        max_per_week=per_day + draw(st.integers(0, 6)),  # a week cap below the day cap is refused by the policy
        min_gap=gap,
        follow_up_after=follow_up,
        max_unanswered=draw(st.sampled_from([1, 2, 3, 50])),
        windows=_apart(draw(st.lists(windows(), min_size=1, max_size=3))),
    )
    offsets = draw(
        st.lists(
            st.one_of(st.integers(0, 4 * 1440), st.integers(3 * 1440 - 180, 3 * 1440 + 180)), min_size=1, max_size=6
        )
    )
    happenings = [Happening(start + offset, "send", f"m{index}") for index, offset in enumerate(sorted(offsets))]
    for _ in range(draw(st.integers(0, 3))):
        to = draw(st.integers(0, len(happenings) - 1))
        happenings.append(Happening(start + draw(st.integers(0, 6 * 1440)), "reply", f"m{to}"))
    happenings.sort(key=lambda h: h.minute)  # stable: the order of a minute's events is the input order
    return Scenario(zone, rules, gap_text, follow_up_text, happenings, draw(st.sampled_from(["utc", "zone", "offset"])))


# -- the comparison ---------------------------------------------------------------------------------------------


@dataclass
class Tally:
    compared: int = 0
    mismatches: list[str] = field(default_factory=list)


TALLY = Tally()


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    if REPORT:
        print(f"\noracle: {TALLY.compared} scenarios compared, {len(TALLY.mismatches)} mismatches", file=sys.stderr)
        for line in TALLY.mismatches:
            print(line, file=sys.stderr)


def compare(scenario: Scenario) -> str | None:
    """``None`` when the engine and the reference agree on every send (instant and printed reading)."""
    zone = ZoneInfo(scenario.zone)
    reference = Reference(zone, scenario.rules)
    expected = reference.simulate(scenario.happenings)
    policy = scenario.policy()
    outcomes = simulate(policy, scenario.events())
    got: dict[str, int | None] = {}
    problems = []
    for outcome in outcomes:
        if outcome.sent_at is None:
            got[outcome.id] = None
            continue
        stamp = outcome.sent_at.timestamp()
        got[outcome.id] = int(stamp) // 60 if stamp % 60 == 0 else -1
        printed = datetime.fromisoformat(outcome.as_json(zone)["sent_at"])
        day, clock = reference.reading(int(stamp) // 60)
        if printed.timestamp() != stamp or (printed.date(), printed.hour * 60 + printed.minute) != (day, clock):
            problems.append(f"{outcome.id} printed as {printed.isoformat()}")
    if got != expected:

        def show(values: dict[str, int | None]) -> dict[str, str | None]:
            return {
                k: None
                if v is None
                else datetime.fromtimestamp(v * 60, zone).isoformat()
                if v >= 0
                else "not on a whole minute"
                for k, v in values.items()
            }

        problems.append(f"engine {show(got)} != reference {show(expected)}")
    if not problems:
        return None
    return "; ".join(problems) + f"\n  in {scenario}"


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_the_engine_agrees_with_the_minute_by_minute_reference(scenario: Scenario) -> None:
    problem = compare(scenario)
    TALLY.compared += 1
    if problem is None:
        return
    if REPORT:
        TALLY.mismatches.append(problem)
        return
    raise AssertionError(problem)


def test_the_reference_reads_windows_at_the_jump_and_in_the_repeated_hour() -> None:
    """The reference itself, on hand-checked nights (so a wrong reference cannot agree with a wrong engine)."""

    def minute(text: str) -> int:
        return int(datetime.fromisoformat(text).timestamp()) // 60

    london = Reference(ZoneInfo("Europe/London"), Rules(1, 1, 0, 1, 1, (Window(frozenset({6}), 15, 60),)))
    assert london.inside(minute("2026-03-29T00:15:00+00:00"))
    assert not london.inside(minute("2026-03-29T01:45:00+00:00"))  # 02:45 BST
    # A window 00:15-01:30 on the spring night closes at the jump (01:00 GMT = 02:00 BST).
    london = Reference(ZoneInfo("Europe/London"), Rules(1, 1, 0, 1, 1, (Window(frozenset({6}), 15, 90),)))
    assert london.inside(minute("2026-03-29T00:59:00+00:00"))
    assert not london.inside(minute("2026-03-29T02:00:00+01:00"))
    # New York's fall back: a window 00:00-01:30 closes at the first 01:30; 00:00-03:00 holds both passes.
    new_york = ZoneInfo("America/New_York")
    short = Reference(new_york, Rules(1, 1, 0, 1, 1, (Window(frozenset({6}), 0, 90),)))
    assert short.inside(minute("2026-11-01T01:29:00-04:00"))
    assert not short.inside(minute("2026-11-01T01:10:00-05:00"))
    long = Reference(new_york, Rules(1, 1, 0, 1, 1, (Window(frozenset({6}), 0, 180),)))
    assert long.inside(minute("2026-11-01T01:10:00-05:00"))
    assert not long.inside(minute("2026-11-01T03:00:00-05:00"))
    # Santiago springs forward at midnight: Sunday 2026-09-06 starts at 01:00; a window from 00:30 opens then.
    santiago = Reference(ZoneInfo("America/Santiago"), Rules(1, 1, 0, 1, 1, (Window(frozenset({6}), 30, 120),)))
    assert santiago.inside(minute("2026-09-06T01:00:00-03:00"))
    assert not santiago.inside(minute("2026-09-05T23:59:00-04:00"))
    # Lord Howe: 02:00 +10:30 jumps to 02:30 +11:00; a window 02:00-02:45 lasts 15 minutes that night.
    lord_howe = Reference(ZoneInfo("Australia/Lord_Howe"), Rules(1, 1, 0, 1, 1, (Window(frozenset({6}), 120, 165),)))
    assert lord_howe.inside(minute("2026-10-04T02:30:00+11:00"))
    assert lord_howe.inside(minute("2026-10-04T02:44:00+11:00"))
    assert not lord_howe.inside(minute("2026-10-04T01:59:00+10:30"))


def test_the_reference_on_the_issue_cases() -> None:
    def minute(text: str) -> int:
        return int(datetime.fromisoformat(text).timestamp()) // 60

    every_day = (Window(frozenset(range(7)), 8 * 60, 23 * 60),)
    new_york = Reference(ZoneInfo("America/New_York"), Rules(5, 20, 25 * 60, 7 * 1440, 5, every_day))
    got = new_york.simulate(
        [
            Happening(minute("2026-03-07T07:00:00-05:00"), "send", "m1"),
            Happening(minute("2026-03-07T07:05:00-05:00"), "send", "m2"),
        ]
    )
    assert got == {"m1": minute("2026-03-07T08:00:00-05:00"), "m2": minute("2026-03-08T10:00:00-04:00")}
    london = Reference(ZoneInfo("Europe/London"), Rules(5, 20, 90, 7 * 1440, 5, (Window(frozenset({6}), 15, 60),)))
    got = london.simulate(
        [
            Happening(minute("2026-03-28T12:00:00+00:00"), "send", "m1"),
            Happening(minute("2026-03-28T12:00:00+00:00"), "send", "m2"),
        ]
    )
    assert got == {"m1": minute("2026-03-29T00:15:00+00:00"), "m2": minute("2026-04-05T00:15:00+01:00")}
