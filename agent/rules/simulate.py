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
from agent.rules.pacing import Engine, History, Queued, Reply
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


def simulate(policy: Policy, events: Sequence[Event], *, run_on: timedelta = RUN_ON) -> list[Outcome]:
    """What the engine does with ``events``: one outcome per send event, in input order.

    ``sent_at`` is shown on the mentor's wall clock (its offset is the real one, also in a DST change).
    """
    ordered = sorted(enumerate(events), key=lambda pair: (instant(pair[1].at), pair[0]))
    stream = deque(event for _, event in ordered)
    sends = [event for event in events if event.type == "send"]
    if not sends:
        return []
    end = after(ordered[-1][1].at, run_on)
    engine = Engine(policy, History())
    queue: list[Queued] = []
    flagged: list[Queued] = []  # the flagged ones among them, kept apart so no step looks through the queue
    results: dict[str, tuple[datetime, str | None, str]] = {}
    told: dict[str, tuple[datetime | None, str, str | None]] = {}  # last told to the student: when, why, digest
    now = instant(ordered[0][1].at)
    while True:
        group = engine.next_group(queue, now, flagged) if queue else []
        release = group[0].at if group else None
        for decision in group:  # a reason changes only when the time it explains changes
            before = told.get(decision.id)
            if before is None or before[0] != decision.at or before[2] != decision.digest:
                reason = decision.reason
                if before is not None and decision.rule is None and decision.at is not None and (
                    before[0] is None or decision.at < before[0]
                ):
                    reason = before[1].split("; goes ")[0] + "; a reply released it early"
                told[decision.id] = (decision.at, reason, decision.digest)
        if stream and (release is None or instant(stream[0].at) <= release):
            event = stream.popleft()
            now = max(now, instant(event.at))
            if event.type == "send":
                queued = Queued(event.id, event.at, event.subject, event.thread, event.group, event.flagged)
                queue.append(queued)
                if queued.forced:
                    flagged.append(queued)
            else:
                engine.answer(Reply(event.at, event.to))
            continue
        if release is None or release > end:
            break
        now = max(now, release)
        engine.commit(group)
        members = {decision.id for decision in group}
        if all(q.id in members for q in queue[: len(members)]):
            del queue[: len(members)]  # the usual case: the oldest go first
        else:
            queue = [q for q in queue if q.id not in members]
        if flagged:
            flagged = [q for q in flagged if q.id not in members]
        for decision in group:
            results[decision.id] = (wall(release, policy.zone), decision.digest, told[decision.id][1])
    outcomes = []
    for event in sends:
        sent_at, digest, reason = results.get(event.id, (None, None, told.get(event.id, (None, "", None))[1]))
        if sent_at is None:
            reason = f"still held at the end of the simulation: {reason}" if reason else "still held"
        outcomes.append(Outcome(event.id, event.subject, event.at, sent_at, digest, reason))
    return outcomes
