"""``mentor-agent simulate``: run the pacing engine over a list of events, with no network and no clock.

Each input line is one JSON event:
  {"at": "2026-11-23T09:00:00-06:00", "type": "send", "id": "m1", "subject": "Research question"}
  {"at": "2026-11-24T15:00:00-06:00", "type": "reply", "to": "m1"}
A ``send`` event may also carry ``"thread": true`` (it answers a mentor's message: never in a digest),
``"group": "…"`` (messages with different groups are never merged) and ``"flagged": true`` (the student asked
for it to go now). Simulated time runs until everything is sent or 60 days after the last event.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agent.errors import Problem, UserError
from agent.rules.localtime import after, instant, wall
from agent.rules.pacing import Decision, Head, Planner, Queued, Reply
from agent.rules.policy import Policy

RUN_ON = timedelta(days=60)


@dataclass(frozen=True)
class Event:
    at: datetime
    type: str
    id: str = ""
    to: str = ""
    subject: str = ""
    thread: bool = False
    group: str = ""
    flagged: bool = False


@dataclass(frozen=True)
class Outcome:
    id: str
    subject: str
    dropped: datetime
    sent_at: datetime | None
    digest: str | None
    reason: str

    def as_json(self, zone: Any) -> dict[str, Any]:
        return {
            "id": self.id,
            "sent_at": wall(self.sent_at, zone).isoformat() if self.sent_at else None,
            "digest": self.digest,
            "reason": self.reason,
        }


LAST_YEAR = 9000  # events from this year on are refused: plans would run past 9999-12-31
FIRST_YEAR = 2  # events before this year are refused: a day or a week back from them is before 0001-01-01


def _event(number: int, source: str, data: Any) -> Event:
    def problem(key: str, message: str) -> UserError:
        return UserError([Problem(file=source, key=key, message=message, line=number)])

    if not isinstance(data, dict):
        raise problem("", "each line must be a JSON object")
    unknown = set(data) - {"at", "type", "id", "to", "subject", "thread", "group", "flagged"}
    if unknown:
        raise problem(sorted(unknown)[0], "unknown key")
    kind = data.get("type")
    if kind not in ("send", "reply"):
        raise problem("type", 'must be "send" or "reply"')
    try:
        at = datetime.fromisoformat(str(data.get("at")))
    except ValueError:
        raise problem("at", f"{data.get('at')!r} is not an ISO-8601 time") from None
    if at.tzinfo is None:
        raise problem("at", f"{data['at']!r} has no offset; write e.g. 2026-11-23T09:00:00-06:00")
    if at.year >= LAST_YEAR:
        raise problem(
            "at",
            f"{data['at']!r} is too late to plan from: a plan reaches a year or more past its last event and the "
            f"calendar ends with the year 9999; give a time before the year {LAST_YEAR}",
        )
    if at.year < FIRST_YEAR:
        raise problem(
            "at",
            f"{data['at']!r} is too early to plan from: the rules look back a week and the calendar starts with the "
            f"year 1; give a time from the year {FIRST_YEAR} on",
        )
    if kind == "send" and not isinstance(data.get("id"), str | int):
        raise problem("id", "a send event needs an id")
    if kind == "reply" and not isinstance(data.get("to"), str | int):
        raise problem("to", "a reply event needs the id of the message it answers")
    flags = {key: data.get(key, False) for key in ("thread", "flagged")}
    for key, value in flags.items():
        if not isinstance(value, bool):
            raise problem(key, "must be true or false")
    return Event(
        at=at,
        type=kind,
        id=str(data.get("id", "")),
        to=str(data.get("to", "")),
        subject=str(data.get("subject", "")),
        thread=flags["thread"],
        group=str(data.get("group", "")),
        flagged=flags["flagged"],
    )


def read_events(lines: Iterable[str], source: str = "<events>") -> list[Event]:
    events: list[Event] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            raise UserError([Problem(file=source, key="", message=f"not JSON: {error.msg}", line=number)]) from None
        event = _event(number, source, data)
        if event.type == "send":
            if event.id in seen:
                raise UserError([Problem(file=source, key="id", message=f"{event.id!r} used twice", line=number)])
            seen.add(event.id)
        events.append(event)
    for event in events:
        if event.type == "reply" and event.to not in seen:
            raise UserError([Problem(file=source, key="to", message=f"no send event has id {event.to!r}")])
    return events


def load_events(path: Path) -> list[Event]:
    try:
        with path.open(encoding="utf-8") as handle:
            return read_events(handle, str(path))
    except OSError as error:
        raise UserError([Problem(file=str(path), key="", message=f"cannot read: {error.strerror}")]) from error


class _Told:
    """What the student was last told about some messages: when, why, in which digest.

    The messages of one digest are told the same things, so they share one of these (found through
    ``parent``, as in a union-find): updating the digest's time is one step, not one per message.
    """

    __slots__ = ("at", "digest", "parent", "reason")

    def __init__(self, at: datetime | None, reason: str, digest: str | None) -> None:
        self.parent: _Told | None = None
        self.at, self.reason, self.digest = at, reason, digest

    def root(self) -> _Told:
        node = self
        while node.parent is not None:
            node = node.parent
        step = self
        while step.parent is not None and step.parent is not node:  # shorten the path for the next look-up
            step.parent, step = node, step.parent
        return node


class _Notices:
    """The reasons told to the student, updated after each event for the group that goes first.

    A reason changes only when the time it explains (or the digest) changes. When a reply brings a time
    forward, the message keeps its old explanation and learns that a reply released it early.
    """

    def __init__(self) -> None:
        self.told: dict[str, _Told] = {}
        self.head = ""  # the first message of the group the cohorts below belong to
        self.known = 0  # how many of its messages have been told something
        self.cohorts: dict[str, _Told] = {}  # its messages' shared notices, by reason
        self.shared: tuple[datetime | None, str | None] = (None, None)  # the (at, digest) they all share

    def update(self, head: Head) -> None:
        decision = head.decision
        if head.forced:
            self._one(decision)
            return
        if decision.id != self.head:
            self.head, self.known, self.cohorts = decision.id, 0, {}
        if self.cohorts and self.shared != (decision.at, decision.digest):
            cohorts: dict[str, _Told] = {}
            for node in self.cohorts.values():
                node.reason = self._changed(node, decision)
                node.at, node.digest = decision.at, decision.digest
                kept = cohorts.setdefault(node.reason, node)
                if kept is not node:
                    node.parent = kept
            self.cohorts = cohorts
        self.shared = (decision.at, decision.digest)
        if head.size > self.known:
            node = self.cohorts.get(decision.reason) or _Told(decision.at, decision.reason, decision.digest)
            self.cohorts[decision.reason] = node
            for ident in head.ids(self.known):
                self.told[ident] = node
            self.known = head.size

    def _one(self, decision: Decision) -> None:
        before = self.told.get(decision.id)
        if before is not None:
            before = before.root()
            if before.at == decision.at and before.digest == decision.digest:
                return
        node = _Told(decision.at, decision.reason, decision.digest)
        if before is not None:
            node.reason = self._changed(before, decision)
        self.told[decision.id] = node

    @staticmethod
    def _changed(before: _Told, decision: Decision) -> str:
        if decision.rule is None and decision.at is not None and (before.at is None or decision.at < before.at):
            return before.reason.split("; goes ")[0] + "; a reply released it early"
        return decision.reason

    def reason(self, ident: str) -> str:
        node = self.told.get(ident)
        return node.root().reason if node is not None else ""


def simulate(policy: Policy, events: Sequence[Event], *, run_on: timedelta = RUN_ON) -> list[Outcome]:
    """What the engine does with ``events``: one outcome per send event, in input order.

    ``sent_at`` is shown on the mentor's wall clock (its offset is the real one, also in a DST change).
    The engine is kept between events (:class:`agent.rules.pacing.Planner`), so each event costs the same however
    many messages wait.
    """
    ordered = sorted(enumerate(events), key=lambda pair: (instant(pair[1].at), pair[0]))
    stream = deque(event for _, event in ordered)
    sends = [event for event in events if event.type == "send"]
    if not sends:
        return []
    end = after(ordered[-1][1].at, run_on)
    planner = Planner(policy)
    notices = _Notices()
    results: dict[str, tuple[datetime, str | None]] = {}
    now = instant(ordered[0][1].at)
    while True:
        head = planner.head(now)
        if head is not None:
            notices.update(head)
        release = head.decision.at if head is not None else None
        if stream and (release is None or instant(stream[0].at) <= release):
            event = stream.popleft()
            now = max(now, instant(event.at))
            if event.type == "send":
                planner.add(Queued(event.id, event.at, event.subject, event.thread, event.group, event.flagged))
            else:
                planner.answer(Reply(event.at, event.to))
            continue
        if head is None or release is None or release > end:
            break
        now = max(now, release)
        sent_at = wall(release, policy.zone)
        for ident in head.ids():
            results[ident] = (sent_at, head.decision.digest)
        planner.send(head)
    outcomes = []
    for event in sends:
        reason = notices.reason(event.id)
        if event.id in results:
            sent_at, digest = results[event.id]
            outcomes.append(Outcome(event.id, event.subject, event.at, sent_at, digest, reason))
            continue
        reason = f"still held at the end of the simulation: {reason}" if reason else "still held"
        outcomes.append(Outcome(event.id, event.subject, event.at, None, None, reason))
    return outcomes
