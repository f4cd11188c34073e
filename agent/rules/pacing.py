"""The pacing engine: when may each waiting message to a mentor go out, and why.

Pure: it takes a policy, what the mentor already received (and answered), the queue and ``now``, and
returns one decision per queued message. It never reads the clock or touches the network.

Rules, all read in the mentor's zone (days and windows; durations are real time, so "1d" is 24 hours):
  * at most ``max_per_day`` items per calendar day and ``max_per_week`` per ISO week;
  * at least ``min_gap`` between two items;
  * only inside ``send_windows``;
  * at most ``max_unanswered`` items waiting for a reply; past that, new ones are held until a reply, except
    for one follow-up that may go ``follow_up_after`` the last unanswered item.
An *item* is what lands in the mentor's inbox: one message, or one digest of several. A release whose digest is
split in several e-mails (``[digest] max_bytes``) is as many items, and only those that fit at once go
(:meth:`Engine.room`); the rest wait their turn. A reply to an item
answers it and every item before it (a mentor who answers the latest message has read the earlier ones).

The queue is served first in, first out. Each release time is the earliest instant, no earlier than the
previous release, at which every rule holds. With ``over_limit = "batch"``, the messages that wait for the
same release go out together as one digest — except those that continue a mentor's thread (``standalone``)
and those addressed differently (``group``), which wait their own turn.

Two ways in: :class:`Engine` decides from the whole state (history and queue) at each call, as the daemon does
after each pass; :class:`Planner` keeps that state between events and decides the first group in constant time,
as ``simulate`` does after each event. They give the same decisions (tests/test_pacing_incremental.py). The
module is longer than most because they share the rules and must change together.

Every instant inside the engine is in UTC (:func:`agent.rules.localtime.instant`); durations are added only with
:func:`agent.rules.localtime.after`. The mentor's wall clock is read only to find a day, a week or a window, and
to print. A decision's ``at`` is in UTC.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from agent.rules.durations import format_duration
from agent.rules.localtime import (
    after,
    describe,
    elapsed,
    instant,
    local_date,
    require_aware,
    shift_days,
    start_of_day,
    week_start,
)
from agent.rules.policy import Policy

DAY, WEEK, GAP, WINDOW, UNANSWERED = "day", "week", "gap", "window", "unanswered"
_RULES = (UNANSWERED, WEEK, DAY, GAP, WINDOW)  # also the order in which a delay is explained


@dataclass(frozen=True)
class Queued:
    """A message waiting to go to the mentor."""

    id: str
    arrived: datetime
    subject: str = ""
    standalone: bool = False  # continues a mentor's thread: never folded into a digest
    group: str = ""  # digest compatibility (same recipients); only equal groups share a digest
    forced: bool = False  # the student asked to send it now anyway (flagged): goes now, still counted
    split: bool = False  # the rest of a digest too big for one e-mail: it goes as several again (each counted)


@dataclass(frozen=True)
class SentItem:
    """Something the mentor received: a message, or a digest of several (``ids``)."""

    at: datetime
    ids: tuple[str, ...]
    follow_up: bool = False  # went as the one follow-up allowed while replies were outstanding
    bounced: bool = False  # a delivery report said it never reached her: counted for its day, never unanswered


@dataclass(frozen=True)
class Reply:
    at: datetime
    to: str  # the id of the message the mentor answered


@dataclass(frozen=True)
class History:
    sent: tuple[SentItem, ...] = ()
    replies: tuple[Reply, ...] = ()


@dataclass(frozen=True)
class Decision:
    """What happens to one queued message. ``at`` is ``None`` when it is held until the mentor replies."""

    id: str
    at: datetime | None
    reason: str
    rule: str | None = None  # the rule that delayed it, None if nothing did
    digest: str | None = None  # shared by messages that go together as one digest
    follow_up: bool = False

    def due(self, now: datetime) -> bool:
        return self.at is not None and self.at <= now


class _Ledger:
    """The engine's working view of the history: send times in order and the unanswered streak.

    Planned sends are appended (each is at or after the last one), so a plan can be undone by truncation.
    """

    def __init__(self, history: History) -> None:
        self.items: list[SentItem] = []
        self.times: list[datetime] = []
        self.stamps: list[float] = []  # the same instants as POSIX seconds: bisect without zone arithmetic
        self.index: dict[str, int] = {}
        self.answered = -1  # items up to this index are answered
        self.last_follow_up = -1  # index of the latest follow-up item
        self.bounced: list[int] = []  # indexes of the items that never reached her (in order)
        for item in sorted(history.sent, key=lambda item: instant(item.at)):
            self.record(item)
        for reply in history.replies:
            self.answer(reply)

    def record(self, item: SentItem) -> None:
        at = instant(item.at)
        if self.times and at < self.times[-1]:
            at = self.times[-1]
        if at is not item.at:
            item = replace(item, at=at)
        self.items.append(item)
        self.times.append(item.at)
        self.stamps.append(item.at.timestamp())
        for message in item.ids:
            self.index[message] = len(self.items) - 1
        if item.follow_up:
            self.last_follow_up = len(self.items) - 1
        if item.bounced:
            self.bounced.append(len(self.items) - 1)

    def answer(self, reply: Reply) -> bool:
        """Mark the item holding ``reply.to`` and all before it answered; False if it was not sent (yet)."""
        position = self.index.get(reply.to)
        if position is None or self.items[position].at > instant(reply.at):
            return False
        self.answered = max(self.answered, position)
        return True

    def checkpoint(self) -> tuple[int, int]:
        return len(self.items), self.last_follow_up

    def rollback(self, mark: tuple[int, int]) -> None:
        size, self.last_follow_up = mark
        for item in self.items[size:]:
            for message in item.ids:
                self.index.pop(message, None)
        del self.items[size:]
        del self.times[size:]
        del self.stamps[size:]

    def count_since(self, moment: datetime) -> int:
        return len(self.stamps) - bisect.bisect_left(self.stamps, moment.timestamp())

    def count_after(self, moment: datetime) -> int:
        """Items later than ``moment``: in a plan, those planned but not gone yet."""
        return len(self.stamps) - bisect.bisect_right(self.stamps, moment.timestamp())

    @property
    def unanswered(self) -> int:
        lost = len(self.bounced) - bisect.bisect_right(self.bounced, self.answered)
        return len(self.items) - self.answered - 1 - lost

    @property
    def follow_up_pending(self) -> bool:
        return self.last_follow_up > self.answered

    @property
    def last(self) -> datetime | None:
        return self.times[-1] if self.times else None


@dataclass
class _Blocked:
    """Why the earliest time is later than asked: the first rule that stood in the way, with its figures."""

    rule: str
    count: int = 0
    since_last: timedelta = field(default_factory=timedelta)
    at: datetime | None = None  # the instant the rule was judged at (the day or week a count is of)
    planned: int = 0  # of ``count``: planned in this plan, not gone yet


class Engine:
    """The pacing rules of one policy, applied to one history."""

    def __init__(self, policy: Policy, history: History, *, horizon: timedelta = timedelta(days=400)) -> None:
        self.policy = policy
        self.rules = policy.email
        self.zone = policy.zone
        self.schedule = policy.send_schedule
        self.ledger = _Ledger(history)
        self.horizon = horizon

    # -- the rules, each as "the earliest instant at or after t at which I hold" ----------------------------

    def _unanswered_ok(self, t: datetime) -> tuple[datetime | None, bool]:
        ledger = self.ledger
        if ledger.unanswered < self.rules.max_unanswered:
            return t, False
        if ledger.follow_up_pending or ledger.last is None:
            return None, False
        return max(t, after(ledger.last, self.rules.follow_up_after)), True

    def _gap_ok(self, t: datetime) -> datetime:
        last = self.ledger.last
        return t if last is None else max(t, after(last, self.rules.min_gap))

    def _day_ok(self, t: datetime) -> datetime:
        day = local_date(t, self.zone)
        if self.ledger.count_since(start_of_day(day, self.zone)) < self.rules.max_per_day:
            return t
        return start_of_day(shift_days(day, 1), self.zone)

    def _week_ok(self, t: datetime) -> datetime:
        monday = week_start(local_date(t, self.zone))
        if self.ledger.count_since(start_of_day(monday, self.zone)) < self.rules.max_per_week:
            return t
        return start_of_day(shift_days(monday, 7), self.zone)

    def _next_ok(self, rule: str, t: datetime) -> datetime | None:
        if rule == UNANSWERED:
            return self._unanswered_ok(t)[0]
        if rule == GAP:
            return self._gap_ok(t)
        if rule == DAY:
            return self._day_ok(t)
        if rule == WEEK:
            return self._week_ok(t)
        return self.schedule.next_open(t)

    def earliest(self, start: datetime, now: datetime | None = None) -> tuple[datetime | None, _Blocked | None, bool]:
        """The earliest instant >= ``start`` at which every rule holds, the rule that explains the wait,
        and whether the item would go as the follow-up. ``None`` when only a reply can release it.
        ``now``: what has gone by then (the rest of a count is only planned), for the reason."""
        start = instant(start)
        # Each rule's answer at an instant, asked once in this call: the history does not change meanwhile, and the
        # rules that held at ``start`` before one moved it, or the one that moved it, are asked there again.
        asked: dict[tuple[str, datetime], datetime | None] = {}
        blocked = self._most_binding(start, now, asked)
        t = start
        limit = after(start, self.horizon)
        while t <= limit:
            moved = False
            for rule in _RULES:
                moment = self._asked(rule, t, asked)
                if moment is None:
                    return None, blocked or self._why(rule, start, now), False
                if moment > t:
                    t, moved = moment, True
            if not moved:
                return t, blocked, self._unanswered_ok(t)[1]
        return None, blocked, False

    def _asked(self, rule: str, t: datetime, asked: dict[tuple[str, datetime], datetime | None]) -> datetime | None:
        """:meth:`_next_ok`, remembered in ``asked`` (one :meth:`earliest` call's: the history stands still)."""
        key = (rule, t)
        if key in asked:
            return asked[key]
        moment = asked[key] = self._next_ok(rule, t)
        return moment

    def _most_binding(
        self, start: datetime, now: datetime | None, asked: dict[tuple[str, datetime], datetime | None]
    ) -> _Blocked | None:
        """The rule to explain a delay with: the first that fails at ``start``, counts before clock rules
        ("2nd message today" tells more than "outside her hours")."""
        for rule in _RULES:
            moment = self._asked(rule, start, asked)
            if moment is None or moment > start:
                return self._why(rule, start, now)
        return None

    def _why(self, rule: str, t: datetime, now: datetime | None = None) -> _Blocked:
        if rule in (DAY, WEEK):
            day = local_date(t, self.zone)
            count = self.ledger.count_since(start_of_day(day if rule == DAY else week_start(day), self.zone))
            planned = min(count, self.ledger.count_after(now)) if now is not None else 0
            return _Blocked(rule, count, at=t, planned=planned)
        if rule == GAP and self.ledger.last is not None:
            return _Blocked(rule, since_last=elapsed(self.ledger.last, t))
        if rule == UNANSWERED:
            return _Blocked(rule, self.ledger.unanswered)
        return _Blocked(rule)

    # -- planning ----------------------------------------------------------------------------------------------

    def plan(self, queue: Sequence[Queued], now: datetime) -> list[Decision]:
        """A decision for every queued message. Does not change the history."""
        ordered = sorted(queue, key=lambda q: instant(q.arrived))
        mark = self.ledger.checkpoint()
        try:
            return [d for group in self._groups(ordered, now) for d in group]
        finally:
            self.ledger.rollback(mark)

    def next_group(
        self, queue: Sequence[Queued], now: datetime, forced: Sequence[Queued] | None = None
    ) -> list[Decision]:
        """Decisions for the messages that go out first (one message, or one digest's worth).

        ``queue`` must be in arrival order; this is the cheap call a scheduler makes after every event.
        A caller that keeps its flagged messages apart passes them as ``forced`` (then the call does not
        look through the whole queue for them).
        """
        mark = self.ledger.checkpoint()
        try:
            return next(self._groups(queue, now, forced), [])
        finally:
            self.ledger.rollback(mark)

    def commit(self, decisions: Sequence[Decision]) -> None:
        """Record that the messages of one group went out at their decision's time."""
        first = decisions[0]
        assert first.at is not None, "a held message cannot be committed as sent"
        self.ledger.record(SentItem(first.at, tuple(d.id for d in decisions), first.follow_up))

    def answer(self, reply: Reply) -> bool:
        return self.ledger.answer(reply)

    def room(self, now: datetime, wanted: int, *, follow_up: bool = False) -> int:
        """How many of ``wanted`` e-mails may reach the mentor at ``now``, one after another: the parts of a
        release split in several e-mails (each is one send: counted, spaced by ``min_gap``, inside a window).
        The first is the release the engine decided (its ``follow_up``): it always goes; each further one only
        if every rule still holds at ``now`` with the ones before it counted. Does not change the history."""
        now = instant(require_aware(now, "now"))
        if wanted <= 0:
            return 0
        mark = self.ledger.checkpoint()
        try:
            self.ledger.record(SentItem(max(now, self.ledger.last or now), ("",), follow_up))
            count = 1
            while count < wanted and self.earliest(now)[0] == now:
                self.ledger.record(SentItem(now, ("",)))
                count += 1
            return count
        finally:
            self.ledger.rollback(mark)

    def _groups(
        self, queue: Sequence[Queued], now: datetime, forced: Sequence[Queued] | None = None
    ) -> Iterator[list[Decision]]:
        now = instant(require_aware(now, "now"))
        previous = now
        for head in forced if forced is not None else [q for q in queue if q.forced]:
            forced_at = max(now, self.ledger.last or now)
            self.ledger.record(SentItem(forced_at, (head.id,)))
            previous = forced_at
            yield [Decision(head.id, forced_at, "you flagged it to go now: sent outside the agreement, and counted")]
        taken: set[str] = set()
        batching = self.rules.over_limit == "batch"
        for position, head in enumerate(queue):
            if head.forced or head.id in taken:
                continue
            group = [head]
            if batching and not head.standalone:
                group += [
                    q
                    for q in queue[position + 1 :]
                    if not (q.standalone or q.forced or q.id in taken) and q.group == head.group
                ]
                taken.update(q.id for q in group)
            shared = self.decide_group(head, len(group), previous, now, split=any(q.split for q in group))
            at, follow_up = shared.at, shared.follow_up
            yield [Decision(q.id, at, shared.reason, shared.rule, shared.digest, follow_up) for q in group]
            if at is None:
                # Only a reply releases the head; everything behind it waits too (first in, first out).
                for rest in queue[position + 1 :]:
                    if not (rest.forced or rest.id in taken):
                        yield [Decision(rest.id, None, "waits behind a message held until a reply", UNANSWERED)]
                return
            self.ledger.record(SentItem(at, tuple(q.id for q in group), follow_up))
            previous = at

    def decide_group(
        self, head: Queued, size: int, previous: datetime, now: datetime, *, split: bool = False
    ) -> Decision:
        """The decision shared by the ``size`` messages that go with ``head`` (its ``id`` is the head's): the
        earliest time at or after ``previous``, and why. ``now`` and ``previous`` are UTC instants. ``split``: some
        of them are the rest of a digest too big for one e-mail (the reason must not promise one)."""
        at, blocked, follow_up = self.earliest(previous, now)
        digest = f"digest-{head.id}" if size > 1 else None
        reason = self._reason(blocked, at, follow_up, size, now, split=split)
        if self.rules.over_limit == "batch" and head.standalone and blocked is not None:
            reason += "; it answers the mentor's own message, so it goes on its own to stay in that thread"
        return Decision(head.id, at, reason, blocked.rule if blocked else None, digest, follow_up)

    # -- reasons a person can read -----------------------------------------------------------------------------

    def _reason(
        self, blocked: _Blocked | None, at: datetime | None, follow_up: bool, size: int, now: datetime, *, split: bool
    ) -> str:
        name = self.policy.mentor.name
        rules = self.rules
        follows_up = follow_up and at is not None and (blocked is None or blocked.rule != UNANSWERED)
        if blocked is None:
            why = self._follow_up_text() if follows_up else f"within what you agreed with {name}"
        elif blocked.rule == DAY:
            why = f"{self._count_text(blocked, now)}; you agreed on {rules.max_per_day} a day with {name}"
        elif blocked.rule == WEEK:
            why = f"{self._count_text(blocked, now)}; you agreed on {rules.max_per_week} a week with {name}"
        elif blocked.rule == GAP and blocked.since_last < timedelta(0):  # a clock ahead then, or behind now
            why = (
                f"the last message to {name} is recorded {format_duration(_round_minutes(-blocked.since_last))} from "
                "now, in the future: this computer's clock was ahead when it went, or is behind now; you agreed on at "
                f"least {format_duration(rules.min_gap)} between messages (flag this one to send it now)"
            )
        elif blocked.rule == GAP:
            why = (
                f"only {format_duration(_round_minutes(blocked.since_last))} since the last message; "
                f"you agreed on at least {format_duration(rules.min_gap)} between messages to {name}"
            )
        elif blocked.rule == WINDOW:
            hours = ", ".join(w.spec for w in rules.send_windows)
            why = f"outside {name}'s e-mail hours ({hours}, {self.zone.key})"
        else:
            pronoun = {"she": "she replies", "he": "he replies", "they": "they reply"}[self.policy.mentor.pronoun]
            waiting = "1 message to {} awaits" if blocked.count == 1 else f"{blocked.count} messages to {{}} await"
            why = f"{waiting.format(name)} a reply (you agreed on at most {rules.max_unanswered}); held until {pronoun}"
            if at is not None and follow_up:
                why += f", or as one follow-up after {format_duration(rules.follow_up_after)}"
        if follows_up and blocked is not None:
            why += f"; it goes as {self._follow_up_text()}"
        if at is None:
            return why
        # Nothing blocks it, yet it can wait: for the messages planned before it (first in, first out).
        behind = ", after the message(s) before it" if blocked is None and at > now else ""
        when = "now" if blocked is None and not behind else describe(at, self.zone)
        if size > 1 and split:
            return (
                f"{why}; goes {when}{behind} as the rest of a digest too big for one e-mail: {size} messages in "
                "several e-mails ([digest] max_bytes), each one counted, so some may wait longer"
            )
        if size > 1:
            return f"{why}; goes {when}{behind} in one digest of {size} messages"
        if blocked is None and not behind:
            return f"{why}; sends now"
        return f"{why}; goes {when}{behind}"

    def _follow_up_text(self) -> str:
        """The one message that goes while ``max_unanswered`` wait for a reply, named as what it is."""
        waiting = self.ledger.unanswered
        messages = "1 message" if waiting == 1 else f"{waiting} messages"
        verb = "awaits" if waiting == 1 else "await"
        return (
            f"the one follow-up allowed while {messages} to {self.policy.mentor.name} {verb} a reply (you agreed on "
            f"at most {self.rules.max_unanswered}, and on one follow-up after "
            f"{format_duration(self.rules.follow_up_after)})"
        )

    def _count_text(self, blocked: _Blocked, now: datetime) -> str:
        """ "2nd message today" only when the one before went today; else the day (or week) it is of, and the
        messages planned before it that the count takes in."""
        rule, at = blocked.rule, blocked.at or now
        day, today = local_date(at, self.zone), local_date(now, self.zone)
        if rule == DAY:
            period = "today" if day == today else f"on {day:%a %d %b}"
        else:
            monday = week_start(day)
            period = "this week" if monday == week_start(today) else f"in the week of {monday:%a %d %b}"
        text = f"{_ordinal(blocked.count + 1)} message {period}"
        if blocked.planned:
            before = "the one" if blocked.planned == 1 else f"the {blocked.planned}"
            text += f", counting {before} planned before it"
        return text


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _round_minutes(value: timedelta) -> timedelta:
    seconds = int(value.total_seconds())
    return timedelta(seconds=seconds) if seconds < 60 else timedelta(minutes=seconds // 60)


def plan(policy: Policy, history: History, queue: Sequence[Queued], now: datetime) -> list[Decision]:
    """Decisions for every queued message; see the module docstring for the rules."""
    return Engine(policy, history).plan(queue, now)


@dataclass(frozen=True)
class Head:
    """The messages that go out first, decided once for all of them: ``decision`` is shared (its ``id`` is the
    first message's), ``size`` says how many go together. Built in constant time, however many wait."""

    decision: Decision
    size: int
    forced: bool
    _members: Sequence[Queued] = field(compare=False, repr=False)  # ``size`` of them from ``_start``: ``ids``
    _start: int = field(default=0, compare=False, repr=False)

    def ids(self, skip: int = 0) -> list[str]:
        """The ids of the messages that go, in arrival order, less the first ``skip``. Valid until the next
        :meth:`Planner.send` (adding messages does not change it)."""
        return [q.id for q in self._members[self._start + skip : self._start + self.size]]

    def decisions(self) -> list[Decision]:
        """The same decisions :meth:`Engine.next_group` makes, one per message."""
        return [replace(self.decision, id=ident) for ident in self.ids()]


class _Line:
    """Messages in arrival order, taken from the front: a list and the index of its first live entry."""

    def __init__(self) -> None:
        self.items: list[Queued] = []
        self.start = 0

    def __len__(self) -> int:
        return len(self.items) - self.start

    def take(self, count: int) -> list[Queued]:
        taken = self.items[self.start : self.start + count]
        self.start += count
        if self.start > 64 and self.start * 2 > len(self.items):
            del self.items[: self.start]
            self.start = 0
        return taken


class Planner:
    """The engine kept between events, for a caller that feeds them one by one (``simulate``).

    ``add`` a message, ``answer`` a reply, ask for the ``head`` (the first group, exactly what
    :meth:`Engine.next_group` decides for the same history and queue) and ``send`` it. Each call costs the
    same however many messages wait: the queue is kept in arrival order and, when batching, per digest group,
    so the head's digest is known without looking through the queue, and the messages behind a held head are
    not decided again (they wait behind it).
    """

    def __init__(self, policy: Policy, history: History | None = None) -> None:
        self.engine = Engine(policy, history or History())
        self.batching = policy.email.over_limit == "batch"
        self.line = _Line()  # every waiting message that is not flagged, in arrival order (sent ones skipped)
        self.flagged = _Line()
        self.groups: dict[str, _Line] = {}  # batching: the messages that may share a digest, by group
        self.gone: set[str] = set()  # sent from the middle of ``line`` (with a digest): skipped at the front
        self.last_arrived: datetime | None = None
        self.added: dict[str, int] = {}  # the order of ``add`` calls, for ``waiting``

    def add(self, message: Queued) -> None:
        """Queue ``message``; messages must come in arrival order (as in :meth:`Engine.next_group`)."""
        arrived = instant(message.arrived)
        if self.last_arrived is not None and arrived < self.last_arrived:
            raise ValueError(f"{message.id} arrived before the message queued before it")
        self.last_arrived = arrived
        self.added[message.id] = len(self.added)
        if message.forced:
            self.flagged.items.append(message)
            return
        self.line.items.append(message)
        if self.batching and not message.standalone:
            self.groups.setdefault(message.group, _Line()).items.append(message)

    def answer(self, reply: Reply) -> bool:
        return self.engine.answer(reply)

    def waiting(self) -> list[Queued]:
        """The waiting messages in arrival order (flagged ones included): the queue for the from-scratch call."""
        line = [q for q in self.line.items[self.line.start :] if q.id not in self.gone]
        flagged = self.flagged.items[self.flagged.start :]
        return sorted([*line, *flagged], key=lambda q: self.added[q.id])

    def head(self, now: datetime) -> Head | None:
        """The first group to go, or None when nothing waits."""
        now = instant(require_aware(now, "now"))
        if self.flagged:
            message = self.flagged.items[self.flagged.start]
            forced_at = max(now, self.engine.ledger.last or now)
            decision = Decision(
                message.id, forced_at, "you flagged it to go now: sent outside the agreement, and counted"
            )
            return Head(decision, 1, True, self.flagged.items, self.flagged.start)
        first = self._first()
        if first is None:
            return None
        if self.batching and not first.standalone:
            members = self.groups[first.group]
            return Head(
                self.engine.decide_group(first, len(members), now, now),
                len(members),
                False,
                members.items,
                members.start,
            )
        return Head(self.engine.decide_group(first, 1, now, now), 1, False, self.line.items, self.line.start)

    def send(self, head: Head) -> None:
        """Record that ``head`` went out at its decision's time and take its messages off the queue."""
        at = head.decision.at
        assert at is not None, "a held message cannot be sent"
        if head.forced:
            sent = self.flagged.take(1)
        else:
            first = self._first()
            assert first is not None and first.id == head.decision.id, "send the head just decided"
            if head.size == 1 and not (self.batching and not first.standalone):
                sent = self.line.take(1)
            else:
                sent = self.groups[first.group].take(head.size)
                self.gone.update(q.id for q in sent)
        self.engine.ledger.record(SentItem(at, tuple(q.id for q in sent), head.decision.follow_up))

    def _first(self) -> Queued | None:
        line = self.line
        while line and line.items[line.start].id in self.gone:
            self.gone.discard(line.items[line.start].id)
            line.take(1)
        return line.items[line.start] if line else None
