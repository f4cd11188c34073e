"""Wall-clock time in a named zone, turned into instants without DST surprises.

A policy speaks in the mentor's wall-clock time ("Mon-Fri 08:00-17:00", "one a day"). Turning a wall-clock
reading into an instant is ambiguous twice a year: in the spring gap some readings never happen, in the
autumn fold some happen twice. The rule here is one and simple: a wall-clock reading stands for the *first
instant at which the clock shows that reading or later*. So a window that opens at 02:30 on a spring-forward
night opens at the jump (03:00 new time), and a reading in the repeated hour means its first occurrence.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

_SECOND = timedelta(seconds=1)


@functools.lru_cache(maxsize=16_384)
def at_wall(day: date, clock: time, zone: tzinfo) -> datetime:
    """The first instant on ``day`` whose wall clock in ``zone`` reads ``clock`` or later.

    Pure and asked for the same few days over and over by the planner: cached.
    """
    naive = datetime.combine(day, clock)
    first = naive.replace(tzinfo=zone, fold=0)
    later = first.astimezone(UTC)
    if later.astimezone(zone).replace(tzinfo=None) == naive:
        return later.astimezone(zone)
    # ``naive`` falls into a gap. fold=1 reads it with the offset after the jump (an instant before the
    # jump), fold=0 with the offset before it (an instant after the jump): the jump lies between them.
    earlier = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low, high = min(earlier, later), max(earlier, later)
    while high - low > _SECOND:
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= naive:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0).astimezone(zone)


def start_of_day(day: date, zone: tzinfo) -> datetime:
    return at_wall(day, time(0), zone)


def local_date(moment: datetime, zone: tzinfo) -> date:
    return moment.astimezone(zone).date()


def week_start(day: date) -> date:
    """Monday of the ISO week that holds ``day``."""
    return day - timedelta(days=day.weekday())


def require_aware(moment: datetime, what: str = "time") -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} {moment.isoformat()} has no time zone; write it with an offset")
    return moment


def zone_named(name: str) -> ZoneInfo:
    """A ZoneInfo for an IANA name, with a message a person can act on when the name is wrong."""
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError) as error:
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as \"America/Chicago\" or \"Europe/Berlin\""
        ) from error


def describe(moment: datetime, zone: tzinfo) -> str:
    """'Tue 25 Nov 08:00 CST' — how notices and reasons show a time to a person."""
    local = moment.astimezone(zone)
    return local.strftime("%a %d %b %H:%M ") + (local.tzname() or "")
