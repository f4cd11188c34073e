"""Time for the engines: instants in UTC, wall-clock time in a named zone only to read a day or a window.

The one rule: **instants are compared, added to and subtracted in UTC**. Python adds a ``timedelta`` to a
datetime carrying a ``ZoneInfo`` on the wall clock (so "25h" across a spring-forward night is 24 real
hours), and compares two datetimes that share a tzinfo by their wall readings (so a reading that does not
exist, in the spring-forward gap, counts as a real time). Both are wrong for an agreement about real time.
So every duration is added with :func:`after`, every span measured with :func:`elapsed`, and calendar days
stepped on ``date`` objects with :func:`shift_days`; ``tests/test_pacing_time_rule.py`` checks that engine
code does no other ``timedelta`` arithmetic. :func:`wall` turns an instant into the mentor's wall clock,
for reading the day and for printing.

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


def instant(moment: datetime) -> datetime:
    """``moment`` as a UTC datetime: the form in which engines compare and add times."""
    if moment.tzinfo is UTC:
        return moment
    return require_aware(moment).astimezone(UTC)


def after(moment: datetime, span: timedelta) -> datetime:
    """The instant ``span`` of real time after ``moment`` (before it, if ``span`` is negative), in UTC.

    The only place where engine code adds a duration to a time: "1d" is 24 real hours, "25h" is 25, whatever
    the clocks do in between.
    """
    return instant(moment) + span


def elapsed(start: datetime, end: datetime) -> timedelta:
    """The real time from ``start`` to ``end`` (negative if ``end`` is earlier)."""
    return instant(end) - instant(start)


def shift_days(day: date, days: int) -> date:
    """The calendar date ``days`` after ``day``: calendar arithmetic on dates, never on instants."""
    return day + timedelta(days=days)


def wall(moment: datetime, zone: tzinfo) -> datetime:
    """``moment`` on the wall clock of ``zone``, always by way of UTC.

    ``astimezone`` to the tzinfo a datetime already has returns it unchanged, even when its reading does not
    exist (in a spring-forward gap) or carries the wrong offset; going through UTC gives the real reading.
    """
    return instant(moment).astimezone(zone)


@functools.lru_cache(maxsize=16_384)
def at_wall(day: date, clock: time, zone: tzinfo) -> datetime:
    """The first instant (in UTC) on ``day`` whose wall clock in ``zone`` reads ``clock`` or later.

    Pure and asked for the same few days over and over by the planner: cached.
    """
    naive = datetime.combine(day, clock)
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == naive:
        return first
    # ``naive`` falls into a gap. fold=1 reads it with the offset after the jump (an instant before the
    # jump), fold=0 with the offset before it (an instant after the jump): the jump lies between them.
    # Bisect on whole POSIX seconds, so no datetime arithmetic is involved.
    other = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low, high = sorted((int(first.timestamp()), int(other.timestamp())))
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= naive:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def start_of_day(day: date, zone: tzinfo) -> datetime:
    """The first instant (in UTC) of the local date ``day`` in ``zone``."""
    return at_wall(day, time(0), zone)


def local_date(moment: datetime, zone: tzinfo) -> date:
    return wall(moment, zone).date()


def week_start(day: date) -> date:
    """Monday of the ISO week that holds ``day``."""
    return shift_days(day, -day.weekday())


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
            f'unknown time zone {name!r}; use an IANA name such as "America/Chicago" or "Europe/Berlin"'
        ) from error


def describe(moment: datetime, zone: tzinfo) -> str:
    """'Tue 25 Nov 08:00 CST' — how notices and reasons show a time to a person."""
    local = wall(moment, zone)
    return local.strftime("%a %d %b %H:%M ") + (local.tzname() or "")
