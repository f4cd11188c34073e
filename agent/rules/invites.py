"""iMIP invitations (RFC 6047) built and read without any I/O: plain values and ``now`` in, messages out.

Every message carries one iTIP object (one UID): ``METHOD`` in the VCALENDAR and the same ``method=`` on the
inline ``text/calendar`` part; ``multipart/mixed`` → ``multipart/alternative`` (text/plain, text/calendar)
plus an ``application/ics`` copy as attachment. Times are written in UTC (``Z``), so no VTIMEZONE is needed
and nothing is floating. The calendar bytes go base64-encoded, which keeps their CRLF line ends intact.

The student's own copy of an agreed meeting is a ``METHOD:PUBLISH`` (RFC 5546 §3.2.1): it carries the same
UID and SEQUENCE as the mentor's invitation, so calendars file it as the same event, and it asks nobody for a
reply — a REQUEST with the student as both organizer and attendee makes clients show RSVP buttons to the
organizer, or none at all. A suggestion to the student is a ``METHOD:REQUEST`` whose organizer is the
agent's sub-address of the student (``name+mentor-agent@domain``): it lands in the student's own mailbox,
where the agent reads the REPLY, and the student's client shows Accept/Decline because the student is not
the organizer.
"""

from __future__ import annotations

import base64
import email
import email.policy
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.utils import format_datetime
from typing import Any

from icalendar import Calendar, Event, vCalAddress, vText

from agent.rules.localtime import require_aware
from agent.rules.slots import Slot

PRODID = "-//mentor-agent//mentor-agent 0.1//EN"
CALENDAR_TYPES = frozenset({"text/calendar", "application/ics", "text/x-vcalendar", "application/x-ics"})
_MAILTO = re.compile(r"^\s*mailto:", re.IGNORECASE)
_CHECKED = ("UID", "SEQUENCE", "DTSTART", "DTEND", "DURATION", "RECURRENCE-ID", "ATTENDEE", "ORGANIZER")


class InviteError(ValueError):
    """An invitation or reply that cannot be read; the one exception ``parse_itip`` raises."""


@dataclass(frozen=True)
class Party:
    """A person in an invitation: display name and e-mail address."""

    name: str
    address: str

    def header(self) -> Address:
        return Address(display_name=self.name, addr_spec=self.address)

    def cal_address(self, **params: str) -> vCalAddress:
        value = vCalAddress(f"mailto:{self.address}")
        value.params["CN"] = vText(self.name)
        for key, param in params.items():
            value.params[key.replace("_", "-").upper()] = param
        return value


@dataclass(frozen=True)
class Meeting:
    """What one invitation describes. ``sequence`` is the number to write in this message."""

    uid: str
    sequence: int
    slot: Slot
    summary: str
    location: str = ""
    description: str = ""


@dataclass(frozen=True)
class ItipObject:
    """One VEVENT of a received iTIP message, reduced to what the offer state machine needs."""

    method: str
    uid: str
    sequence: int
    organizer: str | None
    attendees: tuple[tuple[str, str], ...]  # (address lowercased, PARTSTAT upper-cased)
    start: datetime | None = None  # DTSTART (the proposed time in a COUNTER); None when all-day or floating
    end: datetime | None = None
    recurrence_id: datetime | None = None
    comment: str = field(default="", compare=False)

    @property
    def attendee(self) -> str | None:
        """The single attendee's address (a REPLY has exactly one), else None."""
        return self.attendees[0][0] if len(self.attendees) == 1 else None

    @property
    def partstat(self) -> str | None:
        return self.attendees[0][1] if len(self.attendees) == 1 else None


# -- building ----------------------------------------------------------------------------------------------


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


# -- parsing -----------------------------------------------------------------------------------------------


def _address(value: Any) -> str:
    return _MAILTO.sub("", str(value)).strip().strip("<>").lower()


def _aware(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo is not None else None
    if isinstance(value, date):
        return None
    raise InviteError(f"not a date or time: {value!r}")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _read_event(event: Any, method: str) -> ItipObject:
    broken = [f"{name}: {problem}" for name, problem in getattr(event, "errors", []) if name in _CHECKED]
    if broken:
        raise InviteError("malformed " + "; ".join(broken))
    uid = str(event.get("UID", "")).strip()
    if not uid:
        raise InviteError(f"{method} without a UID")
    sequence = int(event.get("SEQUENCE", 0))
    if sequence < 0:
        raise InviteError(f"negative SEQUENCE {sequence}")
    attendees = tuple(
        (_address(a), str(a.params.get("PARTSTAT", "NEEDS-ACTION")).upper()) for a in _as_list(event.get("ATTENDEE"))
    )
    organizer = _address(event["ORGANIZER"]) if "ORGANIZER" in event else None
    start = _aware(event.decoded("DTSTART")) if "DTSTART" in event else None
    end = _aware(event.decoded("DTEND")) if "DTEND" in event else None
    if start is not None and end is None and "DURATION" in event:
        duration = event.decoded("DURATION")
        end = start + duration if isinstance(duration, timedelta) else None
    if start is not None and end is not None and end <= start:
        raise InviteError(f"{method} for {uid} ends before it starts")
    if method == "COUNTER" and (start is None or end is None):
        raise InviteError(f"COUNTER for {uid} proposes no time with a zone")
    recurrence = _aware(event.decoded("RECURRENCE-ID")) if "RECURRENCE-ID" in event else None
    return ItipObject(
        method=method,
        uid=uid,
        sequence=sequence,
        organizer=organizer or None,
        attendees=attendees,
        start=start,
        end=end,
        recurrence_id=recurrence,
        comment=_comment(event),
    )


_COMMENT_CHARS = 1000
# Where the answerer's own words end in the text part Outlook adds: the quoted invitation begins.
_QUOTE_START = re.compile(r"^\s*(-{3,}\s*original|_{10,}|from:\s|when:\s|\*{3,})", re.IGNORECASE)


def _clean_comment(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    text = "\n".join(lines).strip()
    return text if len(text) <= _COMMENT_CHARS else text[: _COMMENT_CHARS - 1].rstrip() + "…"


_TEXT_ESCAPES = re.compile(r"\\([nN,;\\])")


def _unescape(value: str) -> str:
    """RFC 5545 TEXT escapes, which icalendar leaves in the values of X- properties."""
    return _TEXT_ESCAPES.sub(lambda m: "\n" if m[1] in "nN" else m[1], value).strip()


def _comment(event: Any) -> str:
    """What the answerer wrote: COMMENT (RFC 5545; several are joined), else X-RESPONSE-COMMENT."""
    for name in ("COMMENT", "X-RESPONSE-COMMENT"):
        values = [
            _unescape(str(value)) if name.startswith("X-") else str(value).strip()
            for value in _as_list(event.get(name))
        ]
        text = "\n".join(value for value in values if value)
        if text:
            return _clean_comment(text)
    return ""


def _outlook_text(message: Message) -> str:
    """The words Outlook (Exchange) puts in the text part of a calendar answer, before any quoted invitation."""
    for part in message.walk():
        if part.get_content_type() != "text/plain" or part.get_filename():
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        text = payload.decode(part.get_content_charset() or "utf-8", errors="replace")
        own: list[str] = []
        for line in text.replace("\r\n", "\n").split("\n"):
            if _QUOTE_START.match(line):
                break
            own.append(line)
        return _clean_comment("\n".join(own))
    return ""


def _calendar_text(part: Message) -> str | None:
    content_type = part.get_content_type()
    filename = (part.get_filename() or "").lower()
    if content_type not in CALENDAR_TYPES and not (
        content_type == "application/octet-stream" and filename.endswith(".ics")
    ):
        return None
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return None
    for charset in dict.fromkeys([part.get_content_charset() or "utf-8", "utf-8"]):
        try:
            return payload.decode(charset)
        except (LookupError, UnicodeDecodeError):
            continue
    raise InviteError("calendar part is not text in its declared charset or UTF-8")


def _parse(raw: bytes) -> list[ItipObject]:
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    found: dict[ItipObject, None] = {}
    outlook = False
    for part in message.walk():
        text = _calendar_text(part)
        if text is None:
            continue
        calendars = Calendar.from_ical(text, multiple=True)
        if not calendars:
            raise InviteError("calendar part holds no VCALENDAR")
        part_method = str(part.get_param("method") or "").strip().upper()
        for calendar in calendars:
            outlook = outlook or "microsoft" in str(calendar.get("PRODID", "")).lower()
            method = str(calendar.get("METHOD", "")).strip().upper() or part_method
            if not method:
                raise InviteError("no METHOD in the calendar or on its MIME part")
            for event in calendar.walk("VEVENT"):
                found.setdefault(_read_event(event, method), None)
    items = list(found)
    if outlook and any(not item.comment for item in items):  # Outlook writes the answerer's words as mail text
        text = _outlook_text(message)
        items = [item if item.comment or not text else replace(item, comment=text) for item in items]
    return items


def parse_itip(raw: bytes) -> list[ItipObject]:
    """Every iTIP object (REPLY, COUNTER, REQUEST, CANCEL, …) in a mail, duplicates removed, in order.

    Reads ``text/calendar`` and ``application/ics`` parts with or without ``method=`` (the VCALENDAR's METHOD
    wins), any transfer encoding. A mail with no calendar part gives ``[]``; anything unreadable raises
    :class:`InviteError` and nothing else.
    """
    if not isinstance(raw, bytes | bytearray):
        raise InviteError("expected the raw message as bytes")
    try:
        return _parse(bytes(raw))
    except InviteError:
        raise
    except Exception as error:  # icalendar and email raise many types on bad input; callers see one
        raise InviteError(f"unreadable calendar data: {error}") from error
