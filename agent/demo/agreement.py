"""The demo week's agreement: the student proposes the standards to a mentor (``mentor-agent agree ID --send``),
the daemon paces and sends the proposal, the mentor answers with changed values, the daemon tells the student,
and the student applies them (``mentor-agent agree ID --apply``) — the same code the command runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from agent.config.settings import Student
from agent.demo.scene import Event
from agent.reconcile.agreement import applied_lines, apply_answer, make_proposal
from agent.rules.agreement import standards
from agent.rules.policy import PolicyBook
from agent.store.ledger import Ledger

SHOWN = 3  # standards quoted on the timeline when the proposal is made


@dataclass(frozen=True)
class Agree:
    """The student proposes the standards of a mentor's policy (into the Outbox, as ``--send`` does)."""

    at: datetime
    mentor: str  # policy id
    message_id: str


@dataclass(frozen=True)
class Apply:
    """The student applies the mentor's answer to the policy file, after the notice."""

    at: datetime
    mentor: str


def step_of(item: dict[str, Any], at: datetime) -> Agree | Apply:
    if item["type"] == "agree":
        return Agree(at, item["mentor"], item["message_id"])
    return Apply(at, item["mentor"])


async def propose(
    step: Agree,
    *,
    now: datetime,
    ledger: Ledger,
    book: PolicyBook,
    student: Student,
    outbox: str,
    append: Callable[[str, bytes, datetime], Awaitable[None]],
    show: Callable[[Event], None],
) -> None:
    loaded = book.by_id[step.mentor]
    raw = make_proposal(ledger, loaded, student, now, step.message_id)
    listed = [s.line.strip() for s in standards(loaded.policy)]
    more = (*listed[:SHOWN], f"… {len(listed) - SHOWN} more, each a numbered line to answer with a new value")
    text = (
        f"you propose your standards to {loaded.name} (`mentor-agent agree {loaded.id} --send`): "
        "how often you write, when, and when you ask for a meeting instead"
    )
    show(Event(now, "Outbox", text, mentor=loaded.name, more=tuple(f"  {line}" for line in more)))
    await append(outbox, raw, now)


def apply(
    step: Apply, *, now: datetime, ledger: Ledger, book: PolicyBook, zone: tzinfo, show: Callable[[Event], None]
) -> None:
    loaded = book.by_id[step.mentor]
    applied = apply_answer(ledger, loaded, zone, now)
    shown = replace(applied, path=Path("policies") / applied.path.name)  # not the demo's temporary directory
    lines = applied_lines(loaded.name, shown)
    text = f"you apply the answer (`mentor-agent agree {loaded.id} --apply`)"
    show(Event(now, "policy", text, mentor=loaded.name, more=tuple(f"  {line}" for line in lines)))
