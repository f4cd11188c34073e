"""How long answers take, both ways, measured from the mailbox, beside what the agreement hopes for.

* **The mentor's answers**: from each item she received (a message, a digest, an invitation) to her first reply
  that answers it or a later one (a reply answers everything before it, as the pacing engine counts it).
* **The student's answers**: from each reply of hers to the next message the student wrote to her (when the
  agent first saw it in the Outbox, or when it was sent from elsewhere).

Pure: times and ids in, waits and a sentence out. The words state figures and the hope side by side; they never
judge ("usually answers within 2 days; hoped for: within 5 days").
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from agent.rules.durations import say_duration
from agent.rules.localtime import elapsed, instant

PERIOD = timedelta(days=90)  # what "usually" looks back over


@dataclass(frozen=True)
class Asked:
    """Something that waits for an answer: sent at ``at``, known by ``ids``."""

    at: datetime
    ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Answered:
    """An answer at ``at`` to the message ``to`` (and, by the rule above, everything before it)."""

    at: datetime
    to: str = ""


@dataclass(frozen=True)
class Wait:
    asked: datetime
    answered: datetime | None  # None: not answered yet

    @property
    def took(self) -> timedelta | None:
        return None if self.answered is None else elapsed(self.asked, self.answered)


def mentor_waits(items: Sequence[Asked], replies: Sequence[Answered]) -> list[Wait]:
    """One wait per item: until the first reply, at or after it, that answers it or a later item."""
    ordered = sorted(items, key=lambda item: instant(item.at))
    position = {ident: index for index, item in enumerate(ordered) for ident in item.ids}
    waits = []
    for index, item in enumerate(ordered):
        start = instant(item.at)
        found = [
            instant(reply.at) for reply in replies if instant(reply.at) >= start and position.get(reply.to, -1) >= index
        ]
        waits.append(Wait(start, min(found, default=None)))
    return waits


def student_waits(received: Sequence[datetime], written: Sequence[datetime]) -> list[Wait]:
    """One wait per message received from the mentor: until the student's next message to her."""
    writes = sorted(instant(moment) for moment in written)
    waits = []
    for moment in sorted(instant(m) for m in received):
        waits.append(Wait(moment, next((w for w in writes if w >= moment), None)))
    return waits


@dataclass(frozen=True)
class Summary:
    answered: int  # how many waits ended in an answer
    median: timedelta | None
    latest: timedelta | None  # the most recent answer's wait
    open_for: timedelta | None  # the oldest wait still open, until now
    hoped: timedelta  # what the agreement names

    def as_json(self) -> dict[str, float | int | None]:
        def seconds(value: timedelta | None) -> float | None:
            return None if value is None else value.total_seconds()

        return {
            "answered": self.answered,
            "median_seconds": seconds(self.median),
            "latest_seconds": seconds(self.latest),
            "open_seconds": seconds(self.open_for),
            "hoped_seconds": self.hoped.total_seconds(),
        }


def summarize(waits: Sequence[Wait], now: datetime, hoped: timedelta) -> Summary:
    done = sorted((w for w in waits if w.answered is not None), key=lambda w: instant(w.answered or w.asked))
    took = [w.took for w in done if w.took is not None]
    median = timedelta(seconds=statistics.median(t.total_seconds() for t in took)) if took else None
    open_since = [w.asked for w in waits if w.answered is None]
    open_for = elapsed(min(open_since), now) if open_since else None
    return Summary(len(took), median, took[-1] if took else None, open_for, hoped)


def roughly(value: timedelta) -> str:
    """A wait as a person says it: "under an hour", "5 hours", "2 days"."""
    hours = value.total_seconds() / 3600
    if hours < 1:
        return "under an hour"
    if hours < 36:
        count = round(hours)
        return f"{count} hour{'s' if count != 1 else ''}"
    days = round(hours / 24)
    return f"{days} day{'s' if days != 1 else ''}"


def wording(who: str, summary: Summary, *, agreed: bool) -> str:
    """``who`` answers …: the figures, then what was hoped for (or agreed), without judging either."""
    word = "agreed" if agreed else "hoped for"
    hope = f"{word}: within {say_duration(summary.hoped)}"  # as the policy writes it: "36h" is "36 hours"
    verb = "answer" if who == "you" else "answers"
    if summary.median is None or summary.latest is None:
        text = f"{who} {verb}: no answer measured yet"
    else:
        text = f"{who} usually {verb} within {roughly(summary.median)} (latest {roughly(summary.latest)}"
        text += f", {summary.answered} answer{'s' if summary.answered != 1 else ''} in {PERIOD.days} days)"
    if summary.open_for is not None:
        text += f"; one has waited {roughly(summary.open_for)} so far"
    return f"{text}; {hope}"
