"""Benchmark: busy-time expansion and the slot finder on a 90-day horizon and a 5,000-event calendar.

    python3 benchmarks/bench_slots.py [--events 5000] [--runs 50]

The calendar is generated with a fixed seed: single events spread over the horizon, plus weekly and daily
series (with EXDATEs and RECURRENCE-ID overrides) that recur throughout it. Prints median and worst times.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.calendars.busy import busy_from_ics
from agent.rules.policy import MeetingRules
from agent.rules.slots import Slot, find_slots

T = TypeVar("T")
NOW = datetime(2026, 2, 2, 8, 0, tzinfo=UTC)
STUDENT = ZoneInfo("Europe/Berlin")
MENTOR = ZoneInfo("America/Chicago")


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _daytime(rng: random.Random, first: datetime, days: int) -> datetime:
    day = (first + timedelta(days=rng.randrange(days))).astimezone(STUDENT).date()
    clock = datetime.min.time().replace(hour=rng.randrange(7, 19), minute=rng.choice([0, 15, 30, 45]))
    return datetime.combine(day, clock, tzinfo=STUDENT)


def make_calendar(events: int, seed: int = 7) -> bytes:
    """A student's calendar of ``events`` VEVENTs over three years (two past, one ahead), daytime only.

    One in twenty is a series (weekly, every other one daily on weekdays, some ended, some open-ended),
    with an EXDATE and, for some, a RECURRENCE-ID override; every fiftieth is marked free.
    """
    rng = random.Random(seed)
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//mentor-agent//bench//EN"]
    series = events // 20
    for index in range(events):
        recurring = index < series
        first = NOW - timedelta(days=120 if recurring else 730)
        start = _daytime(rng, first, 180 if recurring else 1095)
        length = timedelta(minutes=rng.choice([15, 30, 45, 60, 90, 120]))
        lines += [
            "BEGIN:VEVENT",
            f"UID:bench-{index}@example.org",
            f"DTSTAMP:{_stamp(NOW)}",
            f"DTSTART;TZID=Europe/Berlin:{start:%Y%m%dT%H%M%S}",
            f"DTEND;TZID=Europe/Berlin:{start + length:%Y%m%dT%H%M%S}",
            f"SUMMARY:Event {index}",
        ]
        if recurring:
            if index % 2 == 0:
                lines.append("RRULE:FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;COUNT=40")
            elif index % 3 == 0:
                lines.append("RRULE:FREQ=WEEKLY")
            else:
                lines.append(f"RRULE:FREQ=WEEKLY;UNTIL={_stamp(NOW + timedelta(days=100))}")
            lines.append(f"EXDATE;TZID=Europe/Berlin:{start + timedelta(days=7):%Y%m%dT%H%M%S}")
        if index % 50 == 0:
            lines.append("TRANSP:TRANSPARENT")
        lines.append("END:VEVENT")
        if recurring and index % 5 == 1:  # move the third occurrence by two hours
            moved = start + timedelta(days=14)
            lines += [
                "BEGIN:VEVENT",
                f"UID:bench-{index}@example.org",
                f"DTSTAMP:{_stamp(NOW)}",
                f"RECURRENCE-ID;TZID=Europe/Berlin:{moved:%Y%m%dT%H%M%S}",
                f"DTSTART;TZID=Europe/Berlin:{moved + timedelta(hours=2):%Y%m%dT%H%M%S}",
                f"DTEND;TZID=Europe/Berlin:{moved + timedelta(hours=2) + length:%Y%m%dT%H%M%S}",
                "END:VEVENT",
            ]
    lines.append("END:VCALENDAR")
    return ("\r\n".join(lines) + "\r\n").encode()


def raw_intervals(count: int, seed: int = 11) -> list[tuple[datetime, datetime]]:
    """``count`` unsorted, overlapping busy intervals inside the horizon: the finder's worst input."""
    rng = random.Random(seed)
    result = []
    for _ in range(count):
        start = NOW + timedelta(minutes=rng.randrange(90 * 24 * 60))
        result.append((start, start + timedelta(minutes=rng.randrange(5, 60))))
    return result


def timed(function: Callable[[], T], runs: int) -> tuple[T, list[float]]:
    times = []
    result = function()  # warm-up, and the value to report
    for _ in range(runs):
        began = time.perf_counter()
        function()
        times.append((time.perf_counter() - began) * 1000)
    return result, times


def report(label: str, times: list[float]) -> None:
    print(f"{label:<62} median {statistics.median(times):8.2f} ms   worst {max(times):8.2f} ms   ({len(times)} runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()

    data = make_calendar(args.events)
    end = NOW + timedelta(days=90)
    busy, expand_times = timed(lambda: busy_from_ics(data, NOW, end, STUDENT), max(3, args.runs // 10))
    print(f"calendar: {args.events} VEVENTs ({len(data) // 1024} KiB), {len(busy)} merged busy blocks in 90 days")
    report("busy expansion (recurring_ical_events)", expand_times)

    typical = MeetingRules.model_validate(
        {
            "windows": ["Tue 16:00-17:00", "Thu 07:00-08:00"],
            "duration": "30m",
            "buffer": "10m",
            "min_notice": "48h",
            "horizon": "90d",
            "max_per_week": 1,
            "max_per_month": 2,
            "proposals": 3,
        }
    )
    wide = typical.model_copy(
        update={
            "windows": MeetingRules.model_validate({"windows": ["Mon-Sun 00:00-24:00"]}).windows,
            "proposals": 10,
            "max_per_week": 7,
            "max_per_month": 31,
        }
    )
    # Long meetings: most gaps are too short, so the finder walks much further.
    hopeless = typical.model_copy(
        update={
            "windows": wide.windows,
            "duration": timedelta(hours=2),
            "max_per_week": 7,
            "max_per_month": 31,
            "proposals": 10,
        }
    )
    agreed = [NOW + timedelta(days=30)]
    raw = raw_intervals(args.events)
    cases: list[tuple[str, MeetingRules, list[tuple[datetime, datetime]]]] = [
        ("two weekly windows", typical, busy),
        ("open all week, 10 slots", wide, busy),
        ("2-hour meetings, open all week", hopeless, busy),
        (f"{args.events} raw unsorted intervals, 10 slots", wide, raw),
        (f"{args.events} raw intervals, 2-hour meetings", hopeless, raw),
    ]
    for label, rules, intervals in cases:

        def run(r: MeetingRules = rules, i: list[tuple[datetime, datetime]] = intervals) -> list[Slot]:
            return find_slots(r, MENTOR, NOW, i, agreed)

        slots, finder_times = timed(run, args.runs)
        report(f"find_slots: {label} ({len(slots)} found)", finder_times)


if __name__ == "__main__":
    main()
