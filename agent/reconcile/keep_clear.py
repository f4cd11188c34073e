"""What a new meeting time must keep clear: the student's calendars, own hours, agreed meetings and open offers;
and how soon it may start at all, for its invitation to leave in time under the mentor's e-mail pace
(:func:`invite_start`).

The student's calendars (``calendar.busy_ics``) are cached by file mtime and size, URLs for ten minutes
(expanding a big calendar takes about a second). Moved out of :mod:`agent.store.rounds` so that the store
reads and writes rounds only, and does not import the calendars adapter or the reconcile pass.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.calendars.busy import Interval, load_busy
from agent.reconcile.context import World
from agent.reconcile.digest_delivery import is_split_rest
from agent.rules import agenda
from agent.rules.durations import format_duration
from agent.rules.invite_lead import earliest_start
from agent.rules.localtime import after, describe
from agent.rules.pacing import Queued
from agent.rules.policy import LoadedPolicy
from agent.rules.slots import find_slots
from agent.rules.student_hours import outside_hours
from agent.store.ledger import NEW, SCHEDULED, Ledger
from agent.store.rounds import MeetingStore, Stored

log = logging.getLogger("mentor_agent.meetings")
HISTORY_DAYS = 60  # as far back as intake reads what the mentor received (agent.reconcile.intake)
URL_REFRESH = 600.0  # seconds a calendar fetched from a URL is reused
_CALENDARS: dict[tuple[Any, ...], list[Interval]] = {}


def _signature(sources: list[str]) -> tuple[Any, ...]:
    parts: list[Any] = []
    for source in sources:
        if source.lower().startswith(("http://", "https://")):
            parts.append((source, int(time.time() // URL_REFRESH)))
            continue
        try:
            stat = Path(source).expanduser().stat()
            parts.append((source, stat.st_mtime_ns, stat.st_size))
        except OSError:
            parts.append((source, None))
    return tuple(parts)


async def _calendar_busy(world: World, now: datetime, horizon: timedelta) -> list[Interval]:
    """The student's own busy times from ``calendar.busy_ics``, cached by file mtime/size (URLs: 10 min)."""
    sources = list(world.settings.calendar.busy_ics)
    if not sources:
        return []
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    weeks = -(-horizon.days // 7) + 1
    key = (_signature(sources), day, weeks)
    if key not in _CALENDARS:
        zone = world.settings.student.zone
        _CALENDARS.clear()  # one live entry: the calendar or the day changed
        _CALENDARS[key] = await asyncio.to_thread(
            load_busy, sources, after(day, -timedelta(days=1)), after(day, timedelta(weeks=weeks, days=2)), zone
        )
    return _CALENDARS[key]


async def keep_clear(
    world: World, store: MeetingStore, mentor: str, horizon: timedelta, exclude_round: str | None = None
) -> tuple[list[Interval], list[datetime]]:
    """(busy intervals, starts of this mentor's agreed meetings): calendars, agreed meetings, open offers."""
    busy = list(await _calendar_busy(world, world.now(), horizon))
    loaded = world.book.by_id.get(mentor)  # the student's own hours: nothing outside them (agent.rules.student_hours)
    buffer = loaded.policy.meetings.buffer if loaded else timedelta(0)
    student = world.settings.student
    busy += outside_hours(
        student.hours, student.zone, world.now(), after(world.now(), horizon + timedelta(days=1)), buffer
    )
    taken, agreed = offered_and_agreed(store, mentor, exclude_round)
    return busy + taken, agreed


def offered_and_agreed(
    store: MeetingStore, mentor: str, exclude_round: str | None = None
) -> tuple[list[Interval], list[datetime]]:
    """(every meeting offered or agreed in the ledger, starts of this mentor's agreed ones); the part of
    :func:`keep_clear` that needs no mailbox, so ``slots`` and ``propose --dry-run`` keep clear the same."""
    taken: list[Interval] = []
    agreed: list[datetime] = []
    for owner, start, end, status in store.taken(exclude_round=exclude_round):
        taken.append((start, end))
        if status == "accepted" and owner == mentor:
            agreed.append(start)
    return taken, agreed


async def is_free_for(world: World, store: MeetingStore, stored: Stored) -> Any:
    assert stored.state is not None
    rules = stored.state.rules
    try:
        busy, _ = await keep_clear(world, store, stored.mentor, rules.horizon, exclude_round=stored.round_id)
    except Exception as error:  # a calendar that cannot be read right now: judge by the ledger alone
        log.warning("busy times unavailable (%s); checking against agreed meetings and offers only", error)
        busy = [(s, e) for _, s, e, _ in store.taken(exclude_round=stored.round_id)]

    def free(start: datetime, end: datetime) -> bool:
        low, high = after(start, -rules.buffer), after(end, rules.buffer)  # real time, compared as instants
        return not any(s < high and low < e for s, e in busy)

    return free


def why_none(
    loaded: LoadedPolicy, now: datetime, busy: list[Interval], agreed: list[datetime], start: datetime | None = None
) -> str:
    """Why no time is free; ``start``: the earliest start the e-mail pace leaves (:func:`invite_start`)."""
    rules, zone = loaded.policy.meetings, loaded.policy.zone
    if start is not None and find_slots(rules, zone, now, busy, agreed, count=1):
        return (
            f"the e-mail pace agreed with {loaded.name} would hold an invitation so long that no free time up to "
            f"{format_duration(rules.horizon)} from now starts {format_duration(rules.min_notice)} after it could "
            f"leave (not before {describe(start, zone)})"
        )
    if find_slots(rules, zone, now, busy, (), count=1):
        return (
            f"the agreed limit of meetings with {loaded.name} is reached "
            f"({rules.max_per_week} a week, {rules.max_per_month} a month)"
        )
    if find_slots(rules, zone, now, [], agreed, count=1):
        return (
            "your calendar, your own hours ([student] hours) and the meetings already offered or agreed fill "
            "every free time in the windows"
        )
    return f"no meeting window of {loaded.name} lies between {rules.min_notice} and {rules.horizon} from now"


def invite_start(ledger: Ledger, loaded: LoadedPolicy, now: datetime, *, count: int = 1) -> datetime:
    """The earliest start of a meeting offered now to ``loaded``'s mentor whose invitation (the ``count``-th made
    now) can still leave by the start less ``min_notice``, behind every message that waits for her
    (:func:`agent.rules.invite_lead.earliest_start`); the invitation deadline gate would withdraw an earlier one."""
    addresses = loaded.policy.mentor.addresses
    history = ledger.history(loaded.id, after(now, -timedelta(days=HISTORY_DAYS)), addresses)
    rows = ledger.in_states(NEW, SCHEDULED, mentor=loaded.id)
    if loaded.policy.email.over_limit == "agenda":  # what waits over the limit becomes agenda, never e-mail
        rows = [r for r in rows if r.standalone or r.forced or r.detail.startswith(agenda.OFF)]
    queue = [
        Queued(r.key, r.arrived, r.subject, r.standalone, r.group_key, r.forced, is_split_rest(r))
        for r in rows
        if not (agenda.on_agenda(r.digest) and (r.item is not None or not r.forced))  # kept for a meeting's agenda
    ]
    return earliest_start(loaded.policy, history, queue, now, count=count)
