"""Questions that wait for a mentor become the agenda of the next meeting instead of a digest.

With ``over_limit = "agenda"`` in a policy, a message the agreement holds back *over a limit* (the day's or
the week's count, or too many messages awaiting a reply) is not sent by e-mail at all: it goes as a line of
the description of the next meeting invitation to that mentor. A message whose subject holds ``[agenda]``
goes that way for any mentor with meeting windows, whatever its pacing. A message that waits only for the
mentor's e-mail hours or for ``min_gap`` is not over a limit: it goes by e-mail as usual, and so does a
message that answers one of the mentor's own messages (it keeps its thread) and one the student flagged.
When a meeting with her is already agreed, the questions go with its updated invitation instead of a new one
(``agent.reconcile.agenda_ahead``).

Pure: the daemon (``agent.reconcile.agenda_desk``) marks the messages in the ledger, starts the meeting round
and files them once the invitation left. The ledger's ``digest`` column says where a question stands:
``agenda`` (waits for a round), ``agenda:<token>`` (listed in the round started from source
``agenda:<token>``); ``detail`` starting with :data:`OFF` says it went back to e-mail (no meeting time, the
invitation did not go) and must not be taken onto an agenda again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes
from email import policy as email_policy

from agent.rules.htmltext import html_to_text
from agent.rules.mimetext import first_header
from agent.rules.pacing import DAY, UNANSWERED, WEEK, Decision

AGENDA_TAG = re.compile(r"\s*\[agenda\]\s*", re.IGNORECASE)
PENDING = "agenda"  # the digest column of a question that waits for a meeting round
OFF = "agenda off:"  # the detail column of a question sent back to e-mail: never taken onto an agenda again
OVER_LIMIT_RULES = (DAY, WEEK, UNANSWERED)
LINE_LIMIT = 100
_GREETING = re.compile(
    r"^(?:(?:dear|hi|hello|hey|good (?:morning|afternoon|evening))\b.{0,60},|(?:hi|hello|hey)\b[^,]{0,40}[!.]?)$",
    re.IGNORECASE,
)


def attached(token: str) -> str:
    """The digest column of a question listed in the round started from source ``source(token)``."""
    return f"{PENDING}:{token}"


def source(token: str) -> str:
    """The round's ``source``, by which a crash between marking and proposing finds the round (or not)."""
    return f"agenda:{token}"


def token_of(digest: str | None) -> str | None:
    """The round token of an attached question; None for one still waiting for a round (or no question)."""
    if digest is None or not digest.startswith(PENDING + ":"):
        return None
    return digest[len(PENDING) + 1 :]


def on_agenda(digest: str | None) -> bool:
    return digest is not None and (digest == PENDING or digest.startswith(PENDING + ":"))


def tagged(subject: str) -> bool:
    """The student's per-message choice: ``[agenda]`` in the subject."""
    return bool(AGENDA_TAG.search(subject))


def over_limit(decision: Decision, now: datetime) -> bool:
    """Whether the plan holds this message back over a limit (not just for her hours or the gap)."""
    waits = decision.at is None or decision.at > now
    return waits and decision.rule in OVER_LIMIT_RULES


@dataclass(frozen=True)
class Question:
    """One held message as the agenda lists it."""

    subject: str
    line: str  # a short first line of its text ("" when it has none)


def clean_subject(subject: str) -> str:
    """The subject as one line, without ``[agenda]``."""
    return " ".join(AGENDA_TAG.sub(" ", subject).split()) or "(no subject)"


def first_line(text: str, limit: int = LINE_LIMIT) -> str:
    """The first line that says something: greetings, quotes and empty lines skipped, cut at ``limit``."""
    for raw in text.splitlines():
        line = " ".join(raw.split())
        if not line or line.startswith(">") or _GREETING.match(line):
            continue
        return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
    return ""


def question_of(raw: bytes, subject: str) -> Question:
    """The question a held message asks: its subject (without ``[agenda]``) and a short first line."""
    from agent.rules.mimewalk import walk  # with the first question held for an agenda, not at start

    message = message_from_bytes(raw, policy=email_policy.compat32)
    extract = walk(message)
    text = "\n".join(b.text if b.kind == "plain" else html_to_text(b.text) for b in extract.plain)
    return Question(clean_subject(subject or first_header(message, "subject")), first_line(text))


def only_as_written(raw: bytes) -> str | None:
    """Why a message may only go as the student wrote it, so never as a line of an invitation: a signed or encrypted
    part anywhere in it (see :mod:`agent.rules.mimewalk`), or a file, which an invitation's description cannot carry
    (it was dropped without a word); None when it may be an agenda question (what a digest could not carry, as a
    forwarded 8-bit message, is no reason)."""
    from agent.rules.mimewalk import SEALED_WHY, walk  # with the first question held for an agenda, not at start

    found = walk(message_from_bytes(raw, policy=email_policy.compat32))
    if SEALED_WHY in found.whole:
        return SEALED_WHY
    files = [a.filename or f"a file ({a.maintype}/{a.subtype})" for a in found.attachments]
    if files:
        return f"it carries {', '.join(files[:3])}{' and more' if len(files) > 3 else ''}, which an agenda cannot"
    return None


def describe(questions: Sequence[Question], student: str) -> str:
    """The invitation's DESCRIPTION: plain lines, numbered, as every calendar client shows them."""
    count = len(questions)
    lines = [f"Agenda: {count} question{'s' if count != 1 else ''} {student} kept for this meeting", ""]
    for number, question in enumerate(questions, start=1):
        lines.append(f"{number}. {question.subject}")
        if question.line:
            lines.append(f"   {question.line}")
    lines += ["", "They were not sent as e-mails; this meeting is where they are asked."]
    return "\n".join(lines)


def topic(questions: Sequence[Question]) -> str:
    if not questions:
        return "agenda"
    first = questions[0].subject
    return first if len(questions) == 1 else f"{first} and {len(questions) - 1} more"


def held_reason(name: str) -> str:
    return f"over the agreed limit with {name}: goes as the agenda of the next meeting invitation, not as an e-mail"


def proposed_lines(name: str, subjects: Sequence[str]) -> tuple[str, list[str]]:
    listed = "\n".join(f"  • {s}" for s in subjects)
    return (
        f"On the agenda for {name}: {len(subjects)} question(s)",
        [
            f"These messages to {name} wait over the agreed limit, so they are not sent as e-mails: they are the "
            f"agenda of a meeting invitation to {name} (its description lists them):\n{listed}",
            "They stay in Scheduled until the invitation has gone, then move to Sent. To send them as e-mails "
            "instead, call the meeting off (`mentor-agent withdraw`): they then go as the agreement allows.",
        ],
    )


def changed_lines(
    name: str, subjects: Sequence[str], added: Sequence[str], removed: Sequence[str]
) -> tuple[str, list[str]]:
    """The invitation still waited, so its agenda changed: what it lists now."""
    listed = "\n".join(f"  • {s}" for s in subjects) or "  (no questions: the meeting itself is still offered)"
    what = [f"{len(added)} more question(s)"] if added else []
    what += [f"{len(removed)} taken off"] if removed else []
    lines = [f"The meeting invitation to {name} had not gone yet, so it was rebuilt. It now lists:\n{listed}"]
    if removed:
        lines.append(
            "Taken off (removed from Scheduled, flagged to go now, or edited so that an agenda cannot carry it): "
            + ", ".join(f"“{s}”" for s in removed)
            + "."
        )
    if not subjects:
        lines.append("To call the meeting off as well: `mentor-agent withdraw`.")
    lines.append("The questions stay in Scheduled until the invitation has gone, then move to Sent.")
    return f"Agenda for {name}: {', '.join(what)}", lines


def update_lines(name: str, when: str, subjects: Sequence[str]) -> tuple[str, list[str]]:
    listed = "\n".join(f"  • {s}" for s in subjects)
    return (
        f"On the agenda of your meeting with {name} ({when}): {len(subjects)} question(s)",
        [
            f"Your meeting with {name} on {when} is agreed, so these questions go with its invitation, updated to "
            f"list them (the same meeting, not a new one):\n{listed}",
            "The update is an e-mail like any other: it goes when the agreement allows. The questions stay in "
            "Scheduled until it has gone, then move to Sent.",
        ],
    )


def filed_lines(name: str, subjects: Sequence[str]) -> tuple[str, list[str]]:
    listed = "\n".join(f"  • {s}" for s in subjects)
    return (
        f"Sent as the agenda of your meeting invitation to {name}",
        [
            f"The meeting invitation to {name} has gone, listing these questions in its description:\n{listed}",
            "They are filed in Sent and count as delivered with the invitation (one e-mail); none of them is sent "
            "again as a message of its own.",
        ],
    )


def released_lines(name: str, subjects: Sequence[str], why: str) -> tuple[str, list[str]]:
    listed = "\n".join(f"  • {s}" for s in subjects)
    return (
        f"Back to e-mail: {len(subjects)} question(s) for {name}",
        [
            f"These questions were to be the agenda of a meeting with {name}, but {why}:\n{listed}",
            "They go as e-mails when the agreement allows (each still counts).",
        ],
    )
