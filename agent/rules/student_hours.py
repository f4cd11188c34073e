"""The student's own hours for meetings: ``[student] hours`` in the student's zone (default 07:00-22:00 every day).

The slot finder knows the mentor's windows only; the hours outside the student's become busy times, so no
meeting is offered (or accepted from a counter-proposal) at 23:00 for the student. Each such busy block is
narrowed by the meeting buffer, because the finder widens every busy time by it: a meeting may still end
exactly when the student's hours end. Pure: instants in, instants out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, tzinfo

from agent.rules.localtime import after, elapsed
from agent.rules.windows import WeeklySchedule, WeeklyWindow

Interval = tuple[datetime, datetime]
DEFAULT_HOURS = ("Mon-Sun 07:00-22:00",)
_SECOND = timedelta(seconds=1)


def parse_hours(specs: Sequence[str]) -> tuple[WeeklyWindow, ...]:
    """The windows of ``[student] hours``; ValueError naming the entry that is not a window."""
    if not specs:
        raise ValueError('give at least one window, e.g. "Mon-Sun 07:00-22:00"')
    return tuple(WeeklyWindow.parse(spec) for spec in specs)


def outside_hours(
    specs: Sequence[str], zone: tzinfo, start: datetime, end: datetime, buffer: timedelta = timedelta(0)
) -> list[Interval]:
    """Busy blocks covering every moment of [start, end) outside the student's hours, each narrowed by ``buffer``."""
    schedule = WeeklySchedule.of(parse_hours(specs), zone)
    pad = timedelta(days=1) + buffer
    low, high = after(start, -pad), after(end, pad)
    gaps: list[Interval] = []
    cursor = low
    for opens, closes in schedule.intervals(low, high):
        if opens > cursor:
            gaps.append((cursor, opens))
        cursor = max(cursor, closes)
    if cursor < high:
        gaps.append((cursor, high))
    blocks: list[Interval] = []
    for gap_start, gap_end in gaps:
        if elapsed(gap_start, gap_end) > 2 * buffer:
            blocks.append((after(gap_start, buffer), after(gap_end, -buffer)))
        else:  # a short gap: one second in its middle, widened by the buffer, still covers it all
            middle = after(gap_start, elapsed(gap_start, gap_end) / 2)
            blocks.append((middle, after(middle, _SECOND)))
    return blocks
