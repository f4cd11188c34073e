"""Whether a message carries an iTIP object (RFC 5546): a calendar part with a METHOD (a request, a reply, a
cancel). Such a message is one scheduling object per e-mail and must reach the mentor's calendar as it is: it goes
alone, never folded into a digest. A calendar file without a method is only an attachment."""

from __future__ import annotations

from email import message_from_bytes, policy

CALENDAR_TYPES = ("text/calendar", "application/ics")
# A part is of a calendar type only if its Content-Type names one, in these very letters (any case): a message
# without them anywhere has no calendar part, and is not parsed (most of the intake's CPU for a plain message).
# Looked for in the message lowercased (ASCII only, as a bytes pattern ignores case): a tenth of a regex's time.
_NAMED = tuple(t.encode() for t in CALENDAR_TYPES)


def names_calendar_type(raw: bytes) -> bool:
    """Whether ``raw`` names a calendar type anywhere, in any case (a message that does not has no calendar part)."""
    lowered = raw.lower()
    return any(name in lowered for name in _NAMED)


def carries_itip(raw: bytes) -> bool:
    if not names_calendar_type(raw):
        return False
    message = message_from_bytes(raw, policy=policy.compat32)
    for part in message.walk():
        if part.get_content_type() not in CALENDAR_TYPES:
            continue
        if part.get_param("method"):
            return True
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes) and b"\nMETHOD:" in payload.replace(b"\r\n", b"\n").upper():
            return True
    return False
