"""The demo's scene: the terminal timeline it prints, and the mail the simulated student and mentors write
(messages, replies, answers to invitations)."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from agent.rules.invites import ItipObject

# -- the terminal ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    at: datetime
    tag: str
    text: str
    mentor: str = ""  # the mentor's name, for the time in their zone
    key: str = ""  # a ledger key, for the subject
    more: tuple[str, ...] = ()


class Timeline:
    """Prints events as lines: the student's time, the mentor's time, what happened and why."""

    def __init__(
        self, student_zone: tzinfo, zones: dict[str, tzinfo], quiet: bool, echo: Callable[[str], None]
    ) -> None:
        self.zone, self.zones, self.quiet, self.echo = student_zone, zones, quiet, echo
        self.lines: list[str] = []
        self.width = max(80, min(shutil.get_terminal_size((110, 24)).columns, 130))
        self._day = ""
        self._stamp = ""

    def say(self, line: str = "", *, always: bool = False) -> None:
        self.lines.append(line)
        if always or not self.quiet:
            self.echo(line)

    def show(self, event: Event, subject: str = "") -> None:
        if not event.tag:
            return
        mine = event.at.astimezone(self.zone)
        day = f"{mine:%A %d %B}"
        if day != self._day:
            self._day, self._stamp = day, ""
            self.say(f"── {day} " + "─" * max(0, 60 - len(day)))
        theirs = ""
        if event.mentor in self.zones:
            local = event.at.astimezone(self.zones[event.mentor])
            theirs = f"{local:%H:%M} {local.tzname()}"
            if local.date() != mine.date():
                theirs = f"{local:%a} {theirs}"
        stamp = f"  {mine:%H:%M} {mine.tzname():<4} {theirs:<13}"
        shown = stamp if stamp != self._stamp else " " * len(stamp)
        self._stamp = stamp
        text = f"“{subject}”: {event.text}" if subject else event.text
        indent = " " * (len(stamp) + 9)
        wrapped = textwrap.wrap(text, self.width - len(indent)) or [""]
        self.say(f"{shown}{event.tag:<8} {wrapped[0]}")
        for rest in [*wrapped[1:], *event.more]:
            self.say(indent + rest)


# -- the simulated mentors' side ---------------------------------------------------------------------------


def student_mail(
    student: tuple[str, str],
    to: str,
    subject: str,
    at: datetime,
    message_id: str,
    references: tuple[str, ...],
    body: str,
    attachment: tuple[str, str] | None,
) -> bytes:
    """What the student drops in the Outbox: ``references`` are the Message-IDs it answers (the last is
    In-Reply-To); ``attachment`` is (file name, text)."""
    message = EmailMessage()
    message["From"] = formataddr(student)
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(at)
    message["Message-ID"] = message_id
    if references:
        message["In-Reply-To"] = references[-1]
        message["References"] = " ".join(references)
    message.set_content(body + "\n")
    if attachment is not None:
        message.add_attachment(attachment[1].encode(), maintype="text", subtype="plain", filename=attachment[0])
    return message.as_bytes(policy=email_policy.SMTP)


def mentor_mail(
    sender: tuple[str, str],
    student: tuple[str, str],
    subject: str,
    at: datetime,
    message_id: str,
    answering: str,
    body: str,
) -> EmailMessage:
    """A mentor's e-mail to the student (``sender`` and ``student`` are (name, address)) answering a message."""
    message = EmailMessage()
    message["From"] = formataddr(sender)
    message["To"] = formataddr(student)
    message["Subject"] = subject
    message["Date"] = format_datetime(at)
    message["Message-ID"] = message_id
    message["In-Reply-To"] = answering
    message["References"] = answering
    message.set_content(body + "\n")
    return message


def reply_ics(item: ItipObject, attendee: tuple[str, str], at: datetime) -> str:
    """The iTIP REPLY of ``attendee`` (name, address) accepting the REQUEST ``item``, as a calendar app writes it."""

    def stamp(moment: datetime | None) -> str:
        return f"{(moment or at).astimezone(UTC):%Y%m%dT%H%M%SZ}"

    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//mentor-agent demo//simulated mentor//EN",
        "METHOD:REPLY",
        "BEGIN:VEVENT",
        f"UID:{item.uid}",
        f"SEQUENCE:{item.sequence}",
        f"DTSTAMP:{stamp(at)}",
        f"DTSTART:{stamp(item.start)}",
        f"DTEND:{stamp(item.end)}",
    ]
    if item.organizer:
        lines.append(f"ORGANIZER:mailto:{item.organizer}")
    lines += [f"ATTENDEE;CN={attendee[0]};PARTSTAT=ACCEPTED:mailto:{attendee[1]}", "END:VEVENT", "END:VCALENDAR", ""]
    return "\r\n".join(lines)


def header(raw: bytes, name: str) -> str:
    parsed = message_from_bytes(raw, policy=email_policy.default)
    return str(parsed.get(name, "")).strip()
