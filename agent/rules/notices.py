"""Notices: short messages the agent APPENDs straight into the student's mailbox (never through SMTP).

Each says what happened, when a held message will go and why, and what the student can do about it.
A notice about a message refers to it (In-Reply-To), so mail clients thread it under the student's own message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from email.message import EmailMessage
from email.utils import format_datetime

from agent.rules.envelope import domain_of, new_message_id
from agent.rules.localtime import describe

HOW_TO_STEER = "To cancel it, delete it from the Scheduled folder. To send it now anyway, flag it (it still counts)."


def pronouns(pronoun: str) -> tuple[str, str]:
    """("she", "her"), ("he", "his") or ("they", "their"), as the policy's ``pronoun`` says."""
    return {"she": ("she", "her"), "he": ("he", "his")}.get(pronoun, ("they", "their"))


def both_zones(moment: datetime, mentor_zone: tzinfo, student_zone: tzinfo) -> str:
    mentor = describe(moment, mentor_zone)
    student = describe(moment, student_zone)
    return mentor if mentor == student else f"{mentor} ({student} for you)"


def notice_id(student_address: str, made: str) -> str:
    """The Message-ID of a notice that must be told once, made of ``made`` (what it is about): looked for in her
    mailbox before it is appended, so that an APPEND whose answer was lost, or a stop before it was noted, does not
    tell it twice."""
    return f"<{made}.mentor-agent@{domain_of(student_address)}>"


def build_notice(
    *,
    student_name: str,
    student_address: str,
    title: str,
    lines: Sequence[str],
    now: datetime,
    about: str | None = None,
    message_id: str | None = None,
) -> bytes:
    """``message_id``: the notice's own (a notice owed until it is in her mailbox is looked for by it before it
    is appended again); by default a new one."""
    message = EmailMessage()
    message["From"] = f"mentor-agent <{student_address}>"
    message["To"] = f"{student_name} <{student_address}>"
    message["Subject"] = f"[mentor-agent] {title}"
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id or new_message_id(domain_of(student_address))
    message["Auto-Submitted"] = "auto-generated"
    message["X-Mentor-Agent"] = "notice"
    if about:
        message["In-Reply-To"] = about
        message["References"] = about
    message.set_content("\n\n".join(lines) + "\n\n— mentor-agent\n")
    return message.as_bytes()


def scheduled_lines(
    subject: str,
    mentor_name: str,
    due: datetime | None,
    reason: str,
    mentor_zone: tzinfo,
    student_zone: tzinfo,
    digest_with: Sequence[str] = (),
) -> tuple[str, list[str]]:
    if due is None:
        title = f"Held: {subject} (to {mentor_name})"
        when = f"“{subject}” is held until {mentor_name} replies."
    else:
        title = f"Scheduled: {subject} (to {mentor_name}, {describe(due, mentor_zone)})"
        when = f"“{subject}” goes to {mentor_name} {both_zones(due, mentor_zone, student_zone)}."
    lines = [when, f"Why: {reason}."]
    if digest_with:
        listed = "\n".join(f"  • {other}" for other in digest_with)
        lines.append(f"It goes together with these, as one digest:\n{listed}")
    lines.append(HOW_TO_STEER)
    return title, lines


HOW_TO_STEER_MANY = (
    "To cancel one, delete it from the Scheduled folder. To send one now anyway, flag it (it still counts)."
)
MAX_LISTED = 40  # a burst notice lists this many held messages, then says how many more


@dataclass(frozen=True)
class Held:
    """One held message, as a burst notice lists it."""

    subject: str
    due: datetime | None
    reason: str
    digest: str | None = None


def held_lines(
    mentor_name: str, held: Sequence[Held], mentor_zone: tzinfo, student_zone: tzinfo
) -> tuple[str, list[str]]:
    """One notice for a burst of held messages to one mentor, earliest first; a digest's members together."""
    groups: dict[str, list[Held]] = {}
    for entry in held:
        groups.setdefault(entry.digest or f"single:{id(entry)}", []).append(entry)
    ordered = sorted(
        groups.values(), key=lambda group: (group[0].due is None, group[0].due.timestamp() if group[0].due else 0.0)
    )
    listed: list[str] = []
    for group in ordered[:MAX_LISTED]:
        first = group[0]
        when = (
            f"goes {both_zones(first.due, mentor_zone, student_zone)}"
            if first.due
            else f"held until {mentor_name} replies"
        )
        if len(group) == 1:
            listed.append(f"  • “{first.subject}” {when}: {first.reason}.")
        else:
            members = "\n".join(f"      – “{entry.subject}”" for entry in group)
            listed.append(f"  • {len(group)} together, as one digest, {when}: {first.reason}.\n{members}")
    if len(ordered) > MAX_LISTED:
        listed.append(f"  … and {len(ordered) - MAX_LISTED} more, each after the one before.")
    lines = [
        f"{len(held)} messages to {mentor_name} wait in the Scheduled folder, to keep your agreement:",
        "\n".join(listed),
        HOW_TO_STEER_MANY,
    ]
    return f"Scheduled: {len(held)} messages to {mentor_name}", lines
