"""Notices: short messages the agent APPENDs straight into the student's mailbox (never through SMTP).

Each says what happened, when a held message will go and why, and what the student can do about it.
A notice about a message refers to it (In-Reply-To), so mail clients thread it under the student's own message.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from email.message import EmailMessage
from email.utils import format_datetime

from agent.envelope import domain_of, new_message_id
from agent.localtime import describe

HOW_TO_STEER = (
    "To cancel it, delete it from the Scheduled folder. To send it now anyway, flag it (it still counts)."
)


def both_zones(moment: datetime, mentor_zone: tzinfo, student_zone: tzinfo) -> str:
    mentor = describe(moment, mentor_zone)
    student = describe(moment, student_zone)
    return mentor if mentor == student else f"{mentor} ({student} for you)"


def build_notice(
    *,
    student_name: str,
    student_address: str,
    title: str,
    lines: Sequence[str],
    now: datetime,
    about: str | None = None,
) -> bytes:
    message = EmailMessage()
    message["From"] = f"mentor-agent <{student_address}>"
    message["To"] = f"{student_name} <{student_address}>"
    message["Subject"] = f"[mentor-agent] {title}"
    message["Date"] = format_datetime(now)
    message["Message-ID"] = new_message_id(domain_of(student_address))
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
