"""The student's busy times, read from iCalendar files or http(s) URLs.

``busy_from_ics`` is pure (bytes in, intervals out); ``load_busy`` does the reading. Recurrences, EXDATE and
RECURRENCE-ID overrides are expanded by ``recurring_ical_events``. Events marked ``TRANSP:TRANSPARENT`` (the
"show me as free" switch) and cancelled events are skipped. All-day events block the whole local day in
the student's zone; floating times (no zone) are read in the student's zone as well.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from agent.errors import Problem, UserError
from agent.rules.localtime import require_aware, start_of_day
from agent.rules.slots import merge_intervals

Interval = tuple[datetime, datetime]
Fetch = Callable[[str], bytes]

URL_TIMEOUT = 30.0
MAX_BYTES = 50_000_000


def _instant(value: date | datetime, zone: tzinfo) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=zone) if value.tzinfo is None else value
    return start_of_day(value, zone)


def _skipped(event: Any) -> bool:
    transparency = str(event.get("TRANSP", "OPAQUE")).strip().upper()
    status = str(event.get("STATUS", "")).strip().upper()
    return transparency == "TRANSPARENT" or status == "CANCELLED"


def busy_from_ics(
    data: bytes | str, start: datetime, end: datetime, zone: tzinfo, *, source: str = "calendar"
) -> list[Interval]:
    """Busy intervals (UTC, sorted, merged) of the events in one iCalendar text that overlap [start, end).

    Events are returned whole, not clipped. Raise UserError naming ``source`` when the text is not iCalendar.
    """
    import recurring_ical_events  # icalendar and its expansion load when a calendar is read, not with the daemon
    from icalendar import Calendar

    require_aware(start, "start")
    require_aware(end, "end")
    try:
        calendars = Calendar.from_ical(data, multiple=True)
    except Exception as error:  # icalendar raises ValueError, KeyError, IndexError… on bad input
        raise UserError([Problem(file=source, key="", message=f"not a valid iCalendar file: {error}")]) from error
    if not calendars:
        raise UserError([Problem(file=source, key="", message="not a valid iCalendar file: no complete VCALENDAR")])
    intervals: list[Interval] = []
    for calendar in calendars:
        try:
            events = recurring_ical_events.of(calendar, components=["VEVENT"]).between(start, end)
        except Exception as error:  # bad RRULE, DTSTART missing, unknown TZID…
            raise UserError([Problem(file=source, key="", message=f"cannot expand events: {error}")]) from error
        for event in events:
            if _skipped(event) or "DTSTART" not in event:
                continue
            first = event.decoded("DTSTART")
            last = event.decoded("DTEND") if "DTEND" in event else None
            if last is None:
                if "DURATION" in event:
                    last = first + event.decoded("DURATION")
                elif isinstance(first, datetime):
                    continue  # RFC 5545: a point in time, takes no time at all
                else:
                    last = first + timedelta(days=1)
            intervals.append((_instant(first, zone), _instant(last, zone)))
    return merge_intervals(intervals)


def _fetch_url(url: str) -> bytes:
    import urllib.request  # with http.client: only for a student whose busy times are at a URL

    request = urllib.request.Request(url, headers={"User-Agent": "mentor-agent (busy times)"})
    with urllib.request.urlopen(request, timeout=URL_TIMEOUT) as response:
        data: bytes = response.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ValueError(f"larger than {MAX_BYTES} bytes")
    return data


def read_source(source: str | Path, fetch: Fetch = _fetch_url) -> bytes:
    """The bytes of one configured calendar: a file path, or an http(s) URL (fetched only when configured)."""
    text = str(source)
    try:
        if text.lower().startswith(("http://", "https://")):
            return fetch(text)
        return Path(text).expanduser().read_bytes()
    except (OSError, ValueError) as error:  # urllib's URLError is an OSError
        raise UserError([Problem(file=text, key="calendar.busy_ics", message=f"cannot read: {error}")]) from error


def load_busy(
    sources: Sequence[str | Path], start: datetime, end: datetime, zone: tzinfo, *, fetch: Fetch = _fetch_url
) -> list[Interval]:
    """Busy intervals from every source, merged; one UserError lists every source that failed."""
    intervals: list[Interval] = []
    problems: list[Problem] = []
    for source in sources:
        try:
            intervals += busy_from_ics(read_source(source, fetch), start, end, zone, source=str(source))
        except UserError as error:
            problems += error.problems
    if problems:
        raise UserError(problems)
    return merge_intervals(intervals)


def clip(intervals: Sequence[Interval], start: datetime, end: datetime) -> list[Interval]:
    """The parts of ``intervals`` inside [start, end), in UTC."""
    low, high = start.astimezone(UTC), end.astimezone(UTC)
    return [(max(s, low), min(e, high)) for s, e in merge_intervals(intervals) if s < high and e > low]
