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

Three modules, one name to import from: :mod:`.objects` (parties, meetings, iTIP objects), :mod:`.build` (the
messages the agent writes) and :mod:`.read` (the ones it receives).
"""

from __future__ import annotations

from agent.rules.invites.build import (
    agent_address,
    build_cancel,
    build_request,
    build_student_copy,
    build_suggestion,
    describe_slot,
    make_uid,
    wire_bytes,
)
from agent.rules.invites.objects import CALENDAR_TYPES, PRODID, InviteError, ItipObject, Meeting, Party
from agent.rules.invites.read import parse_itip

__all__ = [
    "CALENDAR_TYPES",
    "PRODID",
    "InviteError",
    "ItipObject",
    "Meeting",
    "Party",
    "agent_address",
    "build_cancel",
    "build_request",
    "build_student_copy",
    "build_suggestion",
    "describe_slot",
    "make_uid",
    "parse_itip",
    "wire_bytes",
]
