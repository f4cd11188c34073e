"""Free meeting slots inside a mentor's windows (pure: ``now`` and busy times are passed in).

The finder works on integer POSIX seconds internally, so no wall-clock arithmetic can go wrong across a DST
switch; the windows come from :meth:`WeeklySchedule.intervals`, which already turns the mentor's wall-clock
windows into correct instants. Busy times are widened by the buffer, sorted and merged once; each candidate
is then checked with one ``bisect`` (O(log n)), and a conflict jumps the candidate past the busy block.

Limits: a slot is eligible when the agreed meetings in its ISO week (Monday–Sunday) and its calendar month,
both read in the mentor's zone, are still below ``max_per_week`` / ``max_per_month``. The slots of one round
are alternatives — at most one becomes a meeting (sequential offers, or holds whose losers are cancelled) —
so they are not counted against each other.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

from agent.rules.localtime import after, instant, require_aware, wall
from agent.rules.policy import MeetingRules
from agent.rules.windows import WeeklySchedule

GRID = timedelta(minutes=15)


@dataclass(frozen=True)
class Slot:
    """One meeting time [start, end), both aware and shown in the mentor's zone.

    Python compares two datetimes of the same zone by wall clock, ignoring ``fold``; in the repeated hour of
    an autumn switch that is wrong, so every comparison here goes through UTC (``utc_start``/``utc_end``).
    """

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        require_aware(self.start, "slot start")
        require_aware(self.end, "slot end")
        if self.utc_end <= self.utc_start:
            raise ValueError(f"slot ends ({self.end.isoformat()}) before it starts ({self.start.isoformat()})")

    @property
    def utc_start(self) -> datetime:
        return instant(self.start)

    @property
    def utc_end(self) -> datetime:
        return instant(self.end)

    def __lt__(self, other: Slot) -> bool:
        return (self.utc_start, self.utc_end) < (other.utc_start, other.utc_end)

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.utc_start < instant(end) and instant(start) < self.utc_end

    def to_json(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


def _seconds(moment: datetime) -> int:
    return math.floor(require_aware(moment).timestamp())


def _seconds_up(moment: datetime) -> int:
    return math.ceil(require_aware(moment).timestamp())


def merge_intervals(intervals: Sequence[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Sorted, merged copies of ``intervals`` in UTC (touching ones joined, empty ones dropped)."""
    merged: list[tuple[datetime, datetime]] = []
    in_utc = ((require_aware(s).astimezone(UTC), require_aware(e).astimezone(UTC)) for s, e in intervals)
    for start, end in sorted(in_utc):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


class _Busy:
    """Merged busy blocks as two sorted integer lists, for one-bisect conflict checks."""

    def __init__(self, blocks: list[tuple[int, int]]) -> None:
        blocks.sort()
        starts: list[int] = []
        ends: list[int] = []
        for start, end in blocks:
            if end <= start:
                continue
            if ends and start <= ends[-1]:
                ends[-1] = max(ends[-1], end)
            else:
                starts.append(start)
                ends.append(end)
        self.starts = starts
        self.ends = ends

    def conflict_end(self, start: int, end: int) -> int | None:
        """The end of the busy block that overlaps [start, end), or None when the span is free."""
        index = bisect_right(self.ends, start)  # first block that ends after ``start``
        if index < len(self.starts) and self.starts[index] < end:
            return self.ends[index]
        return None


def _limit_keys(moment: datetime, zone: tzinfo) -> tuple[tuple[int, int], tuple[int, int]]:
    local: date = wall(moment, zone).date()
    iso = local.isocalendar()
    return (iso.year, iso.week), (local.year, local.month)


def _packed_slots(
    windows: Iterator[tuple[datetime, datetime]],
    busy: _Busy,
    earliest: int,
    latest: int,
    length: int,
    grid: int,
) -> Iterator[tuple[int, int]]:
    """Every free slot in time order, packed greedily from the start of each window, on the window's grid."""
    for opens_at, closes_at in windows:
        anchor, close = _seconds(opens_at), min(_seconds(closes_at), latest)
        candidate = anchor + max(0, -(-(earliest - anchor) // grid)) * grid
        while candidate + length <= close:
            blocked_until = busy.conflict_end(candidate, candidate + length)
            if blocked_until is None:
                yield candidate, candidate + length
                blocked_until = candidate + length
            candidate = anchor + -(-(blocked_until - anchor) // grid) * grid


def find_slots(
    rules: MeetingRules,
    zone: tzinfo,
    now: datetime,
    busy: Sequence[tuple[datetime, datetime]],
    agreed: Sequence[datetime] = (),
    count: int | None = None,
    *,
    grid: timedelta = GRID,
    not_before: datetime | None = None,
) -> list[Slot]:
    """Up to ``count`` (default ``rules.proposals``) free slots, earliest first, spread over distinct days.

    ``busy`` holds the student's busy times and anything already offered or agreed; each is widened by
    ``rules.buffer`` on both sides. ``agreed`` holds the starts of agreed meetings with this mentor, for the
    weekly and monthly limits (they are also kept clear, with the buffer, as if busy). A slot starts no
    earlier than ``now + min_notice`` nor than ``not_before`` (the earliest start whose invitation can leave in
    time under the e-mail pace, :func:`agent.rules.invite_lead.earliest_start`), ends no later than
    ``now + horizon``, and starts on a ``grid`` step
    counted from the opening of its window. The earliest slot of each distinct local day (mentor's zone) is
    taken first; only when there are too few days are further, non-overlapping slots of the same days added.
    """
    wanted = rules.proposals if count is None else count
    if wanted < 0:
        raise ValueError("count must not be negative")
    if wanted == 0 or not rules.windows:
        return []
    now = require_aware(now, "now")
    step = int(grid.total_seconds())
    if step <= 0:
        raise ValueError("grid must be longer than 0")
    length = int(rules.duration.total_seconds())
    pad = int(rules.buffer.total_seconds())
    blocks = [(_seconds(s) - pad, _seconds_up(e) + pad) for s, e in busy]
    blocks += [(_seconds(a) - pad, _seconds_up(a) + length + pad) for a in agreed]
    taken = _Busy(blocks)

    per_week: Counter[tuple[int, int]] = Counter()
    per_month: Counter[tuple[int, int]] = Counter()
    for moment in agreed:
        week, month = _limit_keys(require_aware(moment, "agreed meeting"), zone)
        per_week[week] += 1
        per_month[month] += 1

    earliest_at = after(now, rules.min_notice)
    if not_before is not None and instant(require_aware(not_before, "not_before")) > earliest_at:
        earliest_at = instant(not_before)
    latest_at = after(now, rules.horizon)
    windows = WeeklySchedule.of(rules.windows, zone).intervals(earliest_at, latest_at)
    spread: list[tuple[int, int]] = []
    spare: list[tuple[int, int]] = []
    days: set[date] = set()
    for start, end in _packed_slots(windows, taken, _seconds(earliest_at), _seconds(latest_at), length, step):
        moment = datetime.fromtimestamp(start, UTC)
        week, month = _limit_keys(moment, zone)
        if per_week[week] >= rules.max_per_week or per_month[month] >= rules.max_per_month:
            continue
        day = wall(moment, zone).date()
        if day in days:
            spare.append((start, end))
            continue
        days.add(day)
        spread.append((start, end))
        if len(spread) == wanted:
            break
    chosen = sorted(spread + spare[: wanted - len(spread)])
    return [
        Slot(wall(datetime.fromtimestamp(start, UTC), zone), wall(datetime.fromtimestamp(end, UTC), zone))
        for start, end in chosen
    ]
