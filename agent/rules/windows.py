"""Weekly windows such as "Mon-Fri 08:00-17:00", read in the mentor's zone (end exclusive).

A window on a local date is the real time from its opening to its closing, each edge being the first instant
at which the mentor's clock shows that reading (see :mod:`agent.rules.localtime`): on a spring-forward night an
edge in the gap falls at the jump, on a fall-back night an edge in the repeated hour means its first pass.
Every instant handled here is in UTC.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from agent.rules.localtime import after, at_wall, instant, local_date, shift_days

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_LONG_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_SPEC = re.compile(r"^\s*(?P<days>[A-Za-z,\- ]+?)\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$")


def _day_index(name: str) -> int:
    key = name.strip().lower()
    if key in DAY_NAMES:
        return DAY_NAMES.index(key)
    if key in _LONG_NAMES:
        return _LONG_NAMES.index(key)
    raise ValueError(f"{name.strip()!r} is not a day; use Mon, Tue, Wed, Thu, Fri, Sat or Sun")


def _parse_days(text: str) -> frozenset[int]:
    cleaned = text.strip().lower()
    if cleaned in ("daily", "every day", "mon-sun"):
        return frozenset(range(7))
    if cleaned in ("weekdays",):
        return frozenset(range(5))
    days: set[int] = set()
    for part in text.strip().split(","):
        if "-" in part:
            first, _, last = part.partition("-")
            begin, end = _day_index(first), _day_index(last)
            index = begin
            while True:  # ranges may wrap: "Fri-Mon"
                days.add(index)
                if index == end:
                    break
                index = (index + 1) % 7
        else:
            days.add(_day_index(part))
    return frozenset(days)


def _parse_clock(text: str, *, allow_24: bool) -> time | None:
    hours, minutes = (int(x) for x in text.split(":"))
    if allow_24 and hours == 24 and minutes == 0:
        return None
    if not (0 <= hours <= 23 and 0 <= minutes <= 59):
        raise ValueError(f"{text!r} is not a time of day (00:00 to 23:59, or 24:00 as an end)")
    return time(hours, minutes)


@dataclass(frozen=True)
class WeeklyWindow:
    """Some days of the week, from ``start`` to ``end`` (``None`` means midnight at the end of the day)."""

    days: frozenset[int]
    start: time
    end: time | None
    spec: str

    @classmethod
    def parse(cls, text: str) -> WeeklyWindow:
        match = _SPEC.match(text)
        if not match:
            raise ValueError(
                f'{text!r} is not a window; write days and hours like "Mon-Fri 08:00-17:00" or "Tue 16:00-17:00"'
            )
        days = _parse_days(match["days"])
        start = _parse_clock(match["start"], allow_24=False)
        end = _parse_clock(match["end"], allow_24=True)
        assert start is not None
        if end is not None and end <= start:
            raise ValueError(
                f"{text!r}: the end must be after the start (a window cannot cross midnight; write two windows)"
            )
        return cls(days=days, start=start, end=end, spec=text.strip())

    def length(self) -> timedelta:
        end = timedelta(hours=24) if self.end is None else timedelta(hours=self.end.hour, minutes=self.end.minute)
        return end - timedelta(hours=self.start.hour, minutes=self.start.minute)

    def interval_on(self, day: date, zone: tzinfo) -> tuple[datetime, datetime]:
        """The instants [open, close) of this window on the local date ``day``, in UTC."""
        opens = at_wall(day, self.start, zone)
        closes = at_wall(shift_days(day, 1), time(0), zone) if self.end is None else at_wall(day, self.end, zone)
        return opens, closes


@dataclass(frozen=True)
class WeeklySchedule:
    """A set of weekly windows in one zone."""

    windows: tuple[WeeklyWindow, ...]
    zone: tzinfo

    @classmethod
    def of(cls, windows: Sequence[WeeklyWindow], zone: tzinfo) -> WeeklySchedule:
        return cls(tuple(windows), zone)

    def intervals(self, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Non-empty window intervals (UTC) that overlap [start, end), in order of opening, merged where they touch."""
        start, end = instant(start), instant(end)
        day = shift_days(local_date(start, self.zone), -1)
        last = local_date(end, self.zone)
        pending: tuple[datetime, datetime] | None = None
        while day <= last:
            todays = sorted(w.interval_on(day, self.zone) for w in self.windows if day.weekday() in w.days)
            for opens, closes in todays:
                if closes <= opens or closes <= start or opens >= end:
                    continue
                if pending and opens <= pending[1]:
                    pending = (pending[0], max(pending[1], closes))
                    continue
                if pending:
                    yield pending
                pending = (opens, closes)
            day = shift_days(day, 1)
        if pending:
            yield pending

    def contains(self, moment: datetime) -> bool:
        moment = instant(moment)
        day = local_date(moment, self.zone)
        for window in self.windows:
            if day.weekday() in window.days:
                opens, closes = window.interval_on(day, self.zone)
                if opens <= moment < closes:
                    return True
        return False

    def next_open(self, moment: datetime, *, within: timedelta = timedelta(days=15)) -> datetime | None:
        """The earliest instant (UTC) at or after ``moment`` inside a window (``None`` if none within ``within``)."""
        # Day by day rather than through intervals(): merging windows that touch (an all-day window touches
        # the next day's) would read the whole span before answering.
        moment = instant(moment)
        end = after(moment, within)
        day = shift_days(local_date(moment, self.zone), -1)
        last = local_date(end, self.zone)
        while day <= last:
            for opens, closes in sorted(w.interval_on(day, self.zone) for w in self.windows if day.weekday() in w.days):
                if opens < closes and closes > moment and opens < end:
                    return max(opens, moment)
            day = shift_days(day, 1)
        return None
