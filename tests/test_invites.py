"""Invites: the exact shape of what we send, and replies as Gmail, Outlook and odd bridges write them."""

from __future__ import annotations

import base64
import contextlib
import email
import email.policy
import quopri
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from icalendar import Calendar

from agent.rules.invites import (
    InviteError,
    ItipObject,
    Meeting,
    Party,
    agent_address,
    build_cancel,
    build_request,
    build_student_copy,
    build_suggestion,
    describe_slot,
    make_uid,
    parse_itip,
)
from agent.rules.slots import Slot

CHICAGO = ZoneInfo("America/Chicago")
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
STUDENT = Party("Jürgen Müller", "juergen@uni.example")
MENTOR = Party("Dr. Ana Rivera", "arivera@hospital.example.org")
SLOT = Slot(datetime(2026, 3, 10, 16, 0, tzinfo=CHICAGO), datetime(2026, 3, 10, 16, 30, tzinfo=CHICAGO))
LATE = Slot(datetime(2026, 3, 12, 17, 0, tzinfo=CHICAGO), datetime(2026, 3, 12, 17, 30, tzinfo=CHICAGO))
MEETING = Meeting(
    make_uid("r1-0", "uni.example"), 0, SLOT, "Mentoring: Jürgen Müller", "Clinic office 3B", "Mentoring meeting"
)


def request(**changes: object) -> EmailMessage:
    arguments: dict[str, object] = dict(
        organizer=STUDENT, attendee=MENTOR, mentor_zone=CHICAGO, student_zone=BERLIN, now=NOW
    )
    arguments.update(changes)
    return build_request(MEETING, **arguments)  # type: ignore[arg-type]


def wire(message: EmailMessage) -> bytes:
    return message.as_bytes(policy=email.policy.SMTP)


def calendar_of(message: EmailMessage) -> tuple[str, Calendar]:
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            data = part.get_payload(decode=True)
            assert isinstance(data, bytes)
            return part["Content-Type"], Calendar.from_ical(data)
    raise AssertionError("no text/calendar part")


# -- what we send ------------------------------------------------------------------------------------------


def test_request_structure_and_headers() -> None:
    message: Any = email.message_from_bytes(wire(request()), policy=email.policy.default)
    assert message.get_content_type() == "multipart/mixed"
    alternative, attachment = message.get_payload()
    assert alternative.get_content_type() == "multipart/alternative"
    plain, inline = alternative.get_payload()
    assert plain.get_content_type() == "text/plain"
    assert inline.get_content_type() == "text/calendar"
    assert inline.get_content_disposition() is None
    assert "Content-Type: text/calendar; charset=UTF-8; method=REQUEST" in wire(request()).decode()
    assert attachment.get_content_type() == "application/ics"
    assert attachment.get_content_disposition() == "attachment"
    assert inline.get_payload(decode=True) == attachment.get_payload(decode=True)
    assert message["From"].addresses[0].addr_spec == STUDENT.address
    assert message["From"].addresses[0].display_name == STUDENT.name
    assert message["To"].addresses[0].addr_spec == MENTOR.address
    assert message["Message-ID"].startswith("<") and message["Date"]
    assert b"\r\n" in inline.get_payload(decode=True)
    assert b"\n" not in inline.get_payload(decode=True).replace(b"\r\n", b"")


def test_request_calendar_content() -> None:
    _header, calendar = calendar_of(request())
    assert calendar["METHOD"] == "REQUEST"
    (event,) = calendar.walk("VEVENT")
    assert "METHOD" not in event
    assert event["UID"] == MEETING.uid and event["SEQUENCE"] == 0
    assert event.decoded("DTSTART") == datetime(2026, 3, 10, 21, 0, tzinfo=UTC)
    assert event["DTSTART"].to_ical() == b"20260310T210000Z"
    assert event["DTEND"].to_ical() == b"20260310T213000Z"
    assert event["DTSTAMP"].to_ical() == b"20260302T120000Z"
    assert str(event["ORGANIZER"]) == "mailto:juergen@uni.example"
    assert event["ORGANIZER"].params["CN"] == "Jürgen Müller"
    attendee = event["ATTENDEE"]
    assert str(attendee) == "mailto:arivera@hospital.example.org"
    assert dict(attendee.params) == {
        "CN": "Dr. Ana Rivera",
        "CUTYPE": "INDIVIDUAL",
        "ROLE": "REQ-PARTICIPANT",
        "PARTSTAT": "NEEDS-ACTION",
        "RSVP": "TRUE",
    }
    assert event["LOCATION"] == "Clinic office 3B" and event["DESCRIPTION"] == "Mentoring meeting"
    assert not calendar.walk("VTIMEZONE")
    text = calendar.to_ical()
    assert all(len(line) <= 75 for line in text.split(b"\r\n"))


def test_text_part_names_both_zones_and_the_alternatives() -> None:
    message = request(alternatives=[LATE])
    plain = message.get_body(("plain",))
    assert plain is not None
    text = plain.get_content()
    assert "Tuesday 10 March 2026, 16:00–16:30 CDT (Dr. Ana Rivera's time, America/Chicago)" in text
    assert "Tuesday 10 March 2026, 22:00–22:30 CET (Jürgen Müller's time, Europe/Berlin)" in text
    assert "Thursday 12 March 2026, 17:00–17:30 CDT" in text
    assert "Thursday 12 March 2026, 23:00–23:30 CET" in text
    assert "Clinic office 3B" in text


def test_slot_crossing_midnight_in_the_other_zone_is_written_out() -> None:
    late = Slot(datetime(2026, 3, 10, 17, 45, tzinfo=CHICAGO), datetime(2026, 3, 10, 18, 15, tzinfo=CHICAGO))
    assert describe_slot(late, BERLIN) == "Tuesday 10 March 2026, 23:45–Wednesday 11 March 2026, 00:15 CET"


def test_cancel_keeps_uid_and_raises_sequence() -> None:
    cancel = build_cancel(
        Meeting(MEETING.uid, 1, SLOT, MEETING.summary),
        organizer=STUDENT,
        attendee=MENTOR,
        mentor_zone=CHICAGO,
        student_zone=BERLIN,
        now=NOW + timedelta(hours=1),
    )
    header, calendar = calendar_of(cancel)
    assert header == "text/calendar; charset=UTF-8; method=CANCEL"
    (event,) = calendar.walk("VEVENT")
    assert calendar["METHOD"] == "CANCEL" and event["STATUS"] == "CANCELLED"
    assert event["UID"] == MEETING.uid and event["SEQUENCE"] == 1
    assert event["DTSTAMP"].to_ical() == b"20260302T130000Z"
    assert str(event["ATTENDEE"]) == "mailto:arivera@hospital.example.org"
    assert str(event["ORGANIZER"]) == "mailto:juergen@uni.example"
    assert cancel["Message-ID"] != request()["Message-ID"]


def test_student_copy_is_a_publish_with_the_same_uid() -> None:
    copy = build_student_copy(
        MEETING, student=STUDENT, mentor=MENTOR, student_zone=BERLIN, mentor_zone=CHICAGO, now=NOW
    )
    header, calendar = calendar_of(copy)
    assert header.endswith("method=PUBLISH") and calendar["METHOD"] == "PUBLISH"
    (event,) = calendar.walk("VEVENT")
    assert event["UID"] == MEETING.uid
    assert event["ATTENDEE"].params["PARTSTAT"] == "ACCEPTED"
    assert copy["To"] == copy["From"]


def test_suggestion_is_a_request_to_the_student_from_a_sub_address() -> None:
    suggestion = build_suggestion(
        MEETING, student=STUDENT, mentor=MENTOR, waiting=4, student_zone=BERLIN, mentor_zone=CHICAGO, now=NOW
    )
    header, calendar = calendar_of(suggestion)
    assert header.endswith("method=REQUEST")
    (event,) = calendar.walk("VEVENT")
    assert str(event["ORGANIZER"]) == "mailto:juergen+mentor-agent@uni.example"
    assert str(event["ATTENDEE"]) == "mailto:juergen@uni.example"
    assert event["ATTENDEE"].params["RSVP"] == "TRUE"
    plain = suggestion.get_body(("plain",))
    assert plain is not None and "4 messages are waiting for Dr. Ana Rivera" in plain.get_content()
    assert agent_address("a+b@x.example") == "a+mentor-agent@x.example"


def test_own_request_parses_back() -> None:
    (parsed,) = parse_itip(wire(request()))
    assert parsed == ItipObject(
        method="REQUEST",
        uid=MEETING.uid,
        sequence=0,
        organizer=STUDENT.address,
        attendees=((MENTOR.address, "NEEDS-ACTION"),),
        start=SLOT.utc_start,
        end=SLOT.utc_end,
    )


# -- replies as real clients write them --------------------------------------------------------------------


def reply_ics(
    partstat: str = "ACCEPTED",
    *,
    method: str | None = "REPLY",
    mailto: str = "mailto",
    organizer: bool = True,
    sequence: int = 0,
    extra: str = "",
    uid: str = MEETING.uid,
) -> str:
    lines = ["BEGIN:VCALENDAR", "PRODID:-//Google Inc//Google Calendar 70.9054//EN", "VERSION:2.0"]
    if method:
        lines.append(f"METHOD:{method}")
    lines += ["BEGIN:VEVENT", "DTSTART:20260310T210000Z", "DTEND:20260310T213000Z", "DTSTAMP:20260303T090000Z"]
    if organizer:
        lines.append(f"ORGANIZER;CN=Jürgen Müller:{mailto}:juergen@uni.example")
    lines += [
        f"UID:{uid}",
        f"ATTENDEE;CN=Ana Rivera;PARTSTAT={partstat}:{mailto}:ARivera@Hospital.example.org",
        f"SEQUENCE:{sequence}",
        "SUMMARY:Mentoring",
        *([extra] if extra else []),
        "END:VEVENT",
        "END:VCALENDAR",
        "",
    ]
    return "\r\n".join(lines)


def gmail_reply(ics: str) -> bytes:
    encoded = base64.encodebytes(ics.encode()).decode()
    return (
        "From: Ana Rivera <arivera@hospital.example.org>\r\nTo: juergen@uni.example\r\n"
        "Subject: Accepted: Mentoring @ Tue 10 Mar\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="m"\r\n\r\n--m\r\n'
        'Content-Type: multipart/alternative; boundary="a"\r\n\r\n--a\r\n'
        'Content-Type: text/plain; charset="UTF-8"\r\n\r\nAna Rivera has accepted.\r\n--a\r\n'
        'Content-Type: text/html; charset="UTF-8"\r\n\r\n<p>Ana Rivera has accepted.</p>\r\n--a\r\n'
        'Content-Type: text/calendar; charset="UTF-8"; method=REPLY\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        f"{encoded}\r\n--a--\r\n--m\r\n"
        'Content-Type: application/ics; name="invite.ics"\r\nContent-Disposition: attachment; filename="invite.ics"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n--m--\r\n"
    ).encode()


def outlook_reply(ics: str, *, method_param: bool = True) -> bytes:
    encoded = quopri.encodestring(ics.encode()).decode()
    method = "; method=REPLY" if method_param else ""
    return (
        'From: "Rivera, Ana" <ARivera@hospital.example.org>\r\nTo: juergen@uni.example\r\n'
        "Subject: Angenommen: Mentoring\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/alternative; boundary="x"\r\n\r\n--x\r\n'
        'Content-Type: text/plain; charset="us-ascii"\r\n\r\n\r\n--x\r\n'
        f'Content-Type: text/calendar; charset="utf-8"{method}\r\n'
        f"Content-Transfer-Encoding: quoted-printable\r\n\r\n{encoded}\r\n--x--\r\n"
    ).encode()


def test_gmail_reply_with_duplicate_parts_is_read_once() -> None:
    (reply,) = parse_itip(gmail_reply(reply_ics()))
    assert (reply.method, reply.uid, reply.sequence, reply.attendee, reply.partstat) == (
        "REPLY",
        MEETING.uid,
        0,
        "arivera@hospital.example.org",
        "ACCEPTED",
    )
    assert reply.organizer == "juergen@uni.example"


def test_outlook_reply_uppercase_mailto_quoted_printable_no_organizer() -> None:
    (reply,) = parse_itip(outlook_reply(reply_ics("DECLINED", mailto="MAILTO", organizer=False)))
    assert reply.attendee == "arivera@hospital.example.org"
    assert reply.partstat == "DECLINED" and reply.organizer is None


def test_method_missing_on_the_part_falls_back_to_the_body_and_vice_versa() -> None:
    (reply,) = parse_itip(outlook_reply(reply_ics("TENTATIVE"), method_param=False))
    assert reply.method == "REPLY" and reply.partstat == "TENTATIVE"
    (reply,) = parse_itip(outlook_reply(reply_ics(method=None)))
    assert reply.method == "REPLY"


def test_eight_bit_single_part_calendar() -> None:
    raw = (
        "From: a@b.example\r\nContent-Type: text/calendar; charset=utf-8; method=reply\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n" + reply_ics(method="reply")
    ).encode()
    (reply,) = parse_itip(raw)
    assert reply.method == "REPLY" and reply.organizer == "juergen@uni.example"


def test_counter_carries_the_proposed_time() -> None:
    ics = (
        reply_ics(method="COUNTER", sequence=0)
        .replace("20260310T210000Z", "20260312T220000Z")
        .replace("20260310T213000Z", "20260312T223000Z")
    )
    (counter,) = parse_itip(gmail_reply(ics))
    assert counter.method == "COUNTER"
    assert counter.start == datetime(2026, 3, 12, 22, 0, tzinfo=UTC)
    assert counter.end == datetime(2026, 3, 12, 22, 30, tzinfo=UTC)


def test_no_calendar_part_is_nothing() -> None:
    assert parse_itip(b"From: a@b.example\r\nSubject: hi\r\n\r\nJust text.\r\n") == []


MALFORMED = {
    "garbage calendar": "BEGIN:VCALENDAR\r\nthis is not a content line\r\nEND:VCALENDAR\r\n",
    "no uid": reply_ics().replace(f"UID:{MEETING.uid}\r\n", ""),
    "bad sequence": reply_ics().replace("SEQUENCE:0", "SEQUENCE:zero"),
    "negative sequence": reply_ics().replace("SEQUENCE:0", "SEQUENCE:-1"),
    "bad dtstart": reply_ics().replace("DTSTART:20260310T210000Z", "DTSTART:2026XX10T210000Z"),
    "no method anywhere": reply_ics(method=None),
    "counter without time": reply_ics(method="COUNTER").replace("DTSTART:20260310T210000Z\r\n", ""),
    "ends before start": reply_ics().replace("DTEND:20260310T213000Z", "DTEND:20260310T200000Z"),
    "unterminated": "BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\n",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_calendar_is_one_invite_error(name: str) -> None:
    raw = ("From: a@b.example\r\nContent-Type: text/calendar; charset=utf-8\r\n\r\n" + MALFORMED[name]).encode()
    with pytest.raises(InviteError):
        parse_itip(raw)


def test_undecodable_text_and_wrong_types_are_invite_errors() -> None:
    raw = b"Content-Type: text/calendar; charset=utf-8\r\n\r\nBEGIN:VCALENDAR\xff\xfe\r\n"
    with pytest.raises(InviteError):
        parse_itip(raw)
    with pytest.raises(InviteError):
        parse_itip("text, not bytes")  # type: ignore[arg-type]


@given(st.binary(max_size=400))
def test_random_bytes_never_raise_anything_but_invite_error(noise: bytes) -> None:
    for raw in (
        noise,
        b"Content-Type: text/calendar\r\n\r\n" + noise,
        b"Content-Type: text/calendar; method=REPLY\r\n\r\nBEGIN:VCALENDAR\r\n" + noise,
    ):
        with contextlib.suppress(InviteError):
            parse_itip(raw)


@given(st.text(max_size=300))
def test_random_calendar_lines_never_raise_anything_but_invite_error(noise: str) -> None:
    ics = reply_ics(extra="X-NOTE:x").replace("X-NOTE:x", noise.replace("\r", "").replace("\n", "\r\n "))
    with contextlib.suppress(InviteError):
        parse_itip(gmail_reply(ics))
