"""Building iMIP messages: a REQUEST to the mentor, its CANCEL, the student's PUBLISH copy and a suggestion to the
student (see :mod:`agent.rules.invites` for the shape every message has)."""

from __future__ import annotations

import base64
import email
import email.policy
import re
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import TYPE_CHECKING

from agent.rules.invites.objects import (
    PRODID,
    Meeting,
    Party,
)
from agent.rules.localtime import require_aware
from agent.rules.slots import Slot

if TYPE_CHECKING:
    from icalendar import vCalAddress


def make_uid(token: str, domain: str) -> str:
    """A UID from a caller-chosen unique token (e.g. a uuid4 hex) and the student's mail domain."""
    return f"{re.sub(r'[^A-Za-z0-9._-]', '-', token)}@{domain}"


def describe_slot(slot: Slot, zone: tzinfo) -> str:
    """'Tuesday 10 March 2026, 16:00–16:30 CDT' in ``zone`` (each date written out on its own)."""
    start, end = slot.start.astimezone(zone), slot.end.astimezone(zone)
    first = f"{start:%A} {start.day} {start:%B %Y, %H:%M}"
    last = f"{end:%H:%M}" if end.date() == start.date() else f"{end:%A} {end.day} {end:%B %Y, %H:%M}"
    return f"{first}–{last} {end.tzname() or ''}".rstrip()


def _when(slot: Slot, first: tuple[str, tzinfo], second: tuple[str, tzinfo]) -> list[str]:
    lines = [f"  {describe_slot(slot, first[1])} ({first[0]}, {first[1]})"]
    if second[1] != first[1] and describe_slot(slot, second[1]) != describe_slot(slot, first[1]):
        lines.append(f"  {describe_slot(slot, second[1])} ({second[0]}, {second[1]})")
    return lines


def _calendar(
    method: str, meeting: Meeting, now: datetime, organizer: Party, attendees: list[vCalAddress], status: str
) -> bytes:
    from icalendar import Calendar, Event  # icalendar loads with the first invitation, not with the daemon

    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)
    event = Event()
    event.add("uid", meeting.uid)
    event.add("sequence", meeting.sequence)
    event.add("dtstamp", require_aware(now, "now").astimezone(UTC))
    event.add("dtstart", meeting.slot.utc_start)
    event.add("dtend", meeting.slot.utc_end)
    event.add("summary", meeting.summary)
    if meeting.location:
        event.add("location", meeting.location)
    if meeting.description:
        event.add("description", meeting.description)
    event.add("status", status)
    event.add("transp", "OPAQUE")
    event.add("organizer", organizer.cal_address())
    for attendee in attendees:
        event.add("attendee", attendee)
    calendar.add_component(event)
    data: bytes = calendar.to_ical()
    return data


def _message_id(method: str, meeting: Meeting, sender: Party) -> str:
    local = re.sub(r"[^A-Za-z0-9.-]", ".", meeting.uid)
    return f"<{method.lower()}.{meeting.sequence}.{local}@{sender.address.rpartition('@')[2]}>"


def _mail(
    method: str,
    ics: bytes,
    text: str,
    *,
    subject: str,
    sender: Party,
    recipient: Party,
    now: datetime,
    message_id: str | None,
    meeting: Meeting,
    attach: bool,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender.header()
    message["To"] = recipient.header()
    message["Subject"] = subject
    message["Date"] = format_datetime(now.astimezone(UTC))
    message["Message-ID"] = message_id or _message_id(method, meeting, sender)
    message.set_content(text)
    message.make_alternative()
    message.attach(_calendar_part(ics, method))
    if attach:
        message.add_attachment(ics, maintype="application", subtype="ics", filename="invite.ics")
        for part in message.iter_attachments():
            del part["MIME-Version"]  # the email package repeats it on the part
    else:
        message.make_mixed()
    return message


def wire_bytes(message: EmailMessage) -> bytes:
    """``message`` as it is appended and sent: CRLF, 7-bit headers; written in UTF-8 (RFC 6532) only when an
    address in From or To has a local part beyond ASCII — the 7-bit policy would make that an encoded-word,
    which is no address at all — and such a message goes with SMTPUTF8 (RFC 6531) anyway."""
    addresses: list[Address] = [a for name in ("From", "To") for a in getattr(message[name], "addresses", ())]
    wide = any(not a.addr_spec.isascii() for a in addresses)
    return message.as_bytes(policy=email.policy.SMTPUTF8 if wide else email.policy.SMTP)


def _calendar_part(ics: bytes, method: str) -> EmailMessage:
    """The inline text/calendar part. Under the compat32 policy it keeps its header exactly as written here —
    ``charset=UTF-8; method=REQUEST``, unquoted, as in INTEROP.md — where the default policy quotes both."""
    part = EmailMessage(policy=email.policy.compat32)
    part["Content-Type"] = f"text/calendar; charset=UTF-8; method={method}"
    part["Content-Transfer-Encoding"] = "base64"
    part.set_payload(base64.encodebytes(ics).decode("ascii"))
    return part


def build_request(
    meeting: Meeting,
    *,
    organizer: Party,
    attendee: Party,
    mentor_zone: tzinfo,
    student_zone: tzinfo,
    now: datetime,
    alternatives: Sequence[Slot] = (),
    attach: bool = True,
    message_id: str | None = None,
) -> EmailMessage:
    """The invitation from the student (organizer) to the mentor (attendee); ``alternatives`` are named in
    the text (the "sequential" strategy) so the mentor can decline and say which other time suits."""
    mentor = (attendee.name, mentor_zone)
    student = (f"{organizer.name}'s time", student_zone)
    lines = [f"{organizer.name} would like to meet you: {meeting.summary}", "", "When:"]
    lines += _when(meeting.slot, (f"{attendee.name}'s time", mentor_zone), student)
    if meeting.location:
        lines += ["", f"Where: {meeting.location}"]
    if meeting.description:
        lines += ["", meeting.description]
    if alternatives:
        lines += ["", "If this time does not suit you, these would work too (decline and reply with one):"]
        for slot in alternatives:
            lines += _when(slot, (mentor[0] + "'s time", mentor_zone), student)
    lines += ["", "Accept or decline with your calendar's buttons, or reply to this e-mail."]
    ics = _calendar(
        "REQUEST",
        meeting,
        now,
        organizer,
        [attendee.cal_address(cutype="INDIVIDUAL", role="REQ-PARTICIPANT", partstat="NEEDS-ACTION", rsvp="TRUE")],
        "CONFIRMED",
    )
    start = describe_slot(meeting.slot, mentor_zone)
    return _mail(
        "REQUEST",
        ics,
        "\n".join(lines) + "\n",
        subject=f"Invitation: {meeting.summary} — {start}",
        sender=organizer,
        recipient=attendee,
        now=now,
        message_id=message_id,
        meeting=meeting,
        attach=attach,
    )


def build_cancel(
    meeting: Meeting,
    *,
    organizer: Party,
    attendee: Party,
    mentor_zone: tzinfo,
    student_zone: tzinfo,
    now: datetime,
    attach: bool = True,
    message_id: str | None = None,
) -> EmailMessage:
    """Withdraw an invitation: same UID and organizer, ``meeting.sequence`` one above the last REQUEST."""
    lines = [f"{organizer.name} withdraws this invitation: {meeting.summary}", "", "It was for:"]
    lines += _when(meeting.slot, (f"{attendee.name}'s time", mentor_zone), (f"{organizer.name}'s time", student_zone))
    lines += ["", "Nothing to do; your calendar will remove it."]
    ics = _calendar(
        "CANCEL",
        meeting,
        now,
        organizer,
        [attendee.cal_address(cutype="INDIVIDUAL", role="REQ-PARTICIPANT", partstat="NEEDS-ACTION", rsvp="FALSE")],
        "CANCELLED",
    )
    start = describe_slot(meeting.slot, mentor_zone)
    return _mail(
        "CANCEL",
        ics,
        "\n".join(lines) + "\n",
        subject=f"Cancelled: {meeting.summary} — {start}",
        sender=organizer,
        recipient=attendee,
        now=now,
        message_id=message_id,
        meeting=meeting,
        attach=attach,
    )


def build_student_copy(
    meeting: Meeting,
    *,
    student: Party,
    mentor: Party,
    student_zone: tzinfo,
    mentor_zone: tzinfo,
    now: datetime,
    message_id: str | None = None,
) -> EmailMessage:
    """The agreed meeting for the student's own calendar (METHOD:PUBLISH; see the module notes)."""
    lines = [f"{mentor.name} accepted: {meeting.summary}", "", "When:"]
    lines += _when(meeting.slot, ("your time", student_zone), (f"{mentor.name}'s time", mentor_zone))
    if meeting.location:
        lines += ["", f"Where: {meeting.location}"]
    lines += ["", "Add it to your calendar with the attached event."]
    ics = _calendar(
        "PUBLISH",
        meeting,
        now,
        student,
        [mentor.cal_address(cutype="INDIVIDUAL", role="REQ-PARTICIPANT", partstat="ACCEPTED")],
        "CONFIRMED",
    )
    return _mail(
        "PUBLISH",
        ics,
        "\n".join(lines) + "\n",
        subject=f"Agreed: {meeting.summary} — {describe_slot(meeting.slot, student_zone)}",
        sender=student,
        recipient=student,
        now=now,
        message_id=message_id,
        meeting=meeting,
        attach=True,
    )


def agent_address(student_address: str, tag: str = "mentor-agent") -> str:
    """The student's sub-address the agent organizes suggestions as: ``name+mentor-agent@domain``."""
    local, _, domain = student_address.partition("@")
    return f"{local.split('+')[0]}+{tag}@{domain}"


def build_suggestion(
    meeting: Meeting,
    *,
    student: Party,
    mentor: Party,
    waiting: int,
    student_zone: tzinfo,
    mentor_zone: tzinfo,
    now: datetime,
    organizer: Party | None = None,
    message_id: str | None = None,
) -> EmailMessage:
    """Suggest to the student that they meet the mentor instead of writing ``waiting`` more e-mails.

    Accepting it (an ordinary calendar REPLY to ``organizer``) is what lets the agent send the real
    invitation to the mentor for the same slot; declining leaves the e-mails queued as they are.
    """
    agent = organizer or Party(f"mentor-agent for {student.name}", agent_address(student.address))
    lines = [
        f"{waiting} messages are waiting for {mentor.name}. A short meeting might serve you both better.",
        "",
        "A free time in the agreed meeting windows:",
    ]
    lines += _when(meeting.slot, ("your time", student_zone), (f"{mentor.name}'s time", mentor_zone))
    lines += [
        "",
        f"Accept this invitation and mentor-agent will invite {mentor.name} for this time.",
        "Decline it to keep the messages queued as they are.",
    ]
    ics = _calendar(
        "REQUEST",
        meeting,
        now,
        agent,
        [student.cal_address(cutype="INDIVIDUAL", role="REQ-PARTICIPANT", partstat="NEEDS-ACTION", rsvp="TRUE")],
        "TENTATIVE",
    )
    return _mail(
        "REQUEST",
        ics,
        "\n".join(lines) + "\n",
        subject=f"Suggestion: {meeting.summary} — {describe_slot(meeting.slot, student_zone)}",
        sender=agent,
        recipient=student,
        now=now,
        message_id=message_id,
        meeting=meeting,
        attach=True,
    )
