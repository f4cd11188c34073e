"""Reading iMIP messages: every iTIP object (REQUEST, REPLY, COUNTER, CANCEL…) in a received mail, checked, with
the attendee's comment cleaned of quoted text; anything unreadable is one :class:`InviteError`."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from email.message import Message
from typing import Any
from urllib.parse import unquote

from agent.rules.addresses import normal_address
from agent.rules.invites.objects import (
    CALENDAR_TYPES,
    InviteError,
    ItipObject,
)

_MAILTO = re.compile(r"^\s*mailto:", re.IGNORECASE)
_CHECKED = ("UID", "SEQUENCE", "DTSTART", "DTEND", "DURATION", "RECURRENCE-ID", "ATTENDEE", "ORGANIZER")


def _address(value: Any) -> str:
    """A calendar user address as the agent compares it: the mailto: URI's address, percent-decoded (RFC 6068),
    in one spelling however its domain is written (:func:`agent.rules.addresses.normal_address`)."""
    return normal_address(unquote(_MAILTO.sub("", str(value)).strip().strip("<>")))


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
        stamp=_stamp(event),
    )


def _stamp(event: Any) -> datetime | None:
    """DTSTAMP, when the answer was written (RFC 5546 §2.1.5 orders one attendee's answers by it), or None when it is
    missing or unreadable: a reply is read all the same, only not ordered."""
    try:
        return _aware(event.decoded("DTSTAMP")) if "DTSTAMP" in event else None
    except (InviteError, ValueError, TypeError, KeyError):
        return None


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
        from icalendar import Calendar  # loads with the first calendar part, not with the daemon

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
