"""Meetings end to end: the real daemon, Dovecot and aiosmtpd; replies written as Gmail and Outlook write them."""

from __future__ import annotations

import base64
import quopri
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from tests.agent_process import MENTOR, STUDENT, Agent, agent, eventually, mail, parse, policy_text

__all__ = ["agent"]  # the fixture
pytestmark = pytest.mark.servers

MEETINGS = """
[meetings]
windows = ["Mon-Sun 00:00-24:00"]
min_notice = "1h"
horizon = "7d"
duration = "30m"
buffer = "10m"
proposals = {proposals}
strategy = "{strategy}"
reply_timeout = "{timeout}"
max_per_week = 5
max_per_month = 10
"""


ALL_DAY = {"MENTOR_AGENT_STUDENT__HOURS": '["Mon-Sun 00:00-24:00"]'}  # the student meets at any hour


def meeting_policy(
    *, strategy: str = "sequential", proposals: int = 3, timeout: str = "3d", email: str = "", **pacing: Any
) -> str:
    return policy_text(**pacing) + email + MEETINGS.format(strategy=strategy, proposals=proposals, timeout=timeout)


def calendar_of(raw: bytes) -> tuple[str, Any]:
    """(the method= parameter of the inline text/calendar part, its VEVENT)."""
    message = parse(raw)
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            calendar = Calendar.from_ical(payload)
            return str(part.get_param("method")), calendar
    raise AssertionError("no text/calendar part")


def event_of(raw: bytes) -> Any:
    return next(iter(calendar_of(raw)[1].walk("VEVENT")))


def method_of(raw: bytes) -> str:
    return str(calendar_of(raw)[1]["METHOD"])


def ics(
    uid: str,
    partstat: str,
    *,
    method: str = "REPLY",
    sequence: int = 0,
    mailto: str = "mailto",
    organizer: str | None = STUDENT,
    attendee: str = "ARivera@Hospital.example.org",
    start: datetime | None = None,
    end: datetime | None = None,
    stamp: str = "20260303T090000Z",
) -> str:
    start = start or datetime(2026, 3, 10, 21, tzinfo=UTC)
    end = end or start + timedelta(minutes=30)
    lines = [
        "BEGIN:VCALENDAR",
        "PRODID:-//Google Inc//Google Calendar 70.9054//EN",
        "VERSION:2.0",
        f"METHOD:{method}",
        "BEGIN:VEVENT",
        f"DTSTART:{start:%Y%m%dT%H%M%SZ}",
        f"DTEND:{end:%Y%m%dT%H%M%SZ}",
        f"DTSTAMP:{stamp}",
    ]
    if organizer:
        lines.append(f"ORGANIZER;CN=Sam Patel:{mailto}:{organizer}")
    lines += [
        f"UID:{uid}",
        f"ATTENDEE;CN=Ana Rivera;PARTSTAT={partstat}:{mailto}:{attendee}",
        f"SEQUENCE:{sequence}",
        "SUMMARY:Mentoring",
        "END:VEVENT",
        "END:VCALENDAR",
        "",
    ]
    return "\r\n".join(lines)


def gmail(
    text: str,
    *,
    sender: str = "Ana Rivera <arivera@hospital.example.org>",
    to: str = STUDENT,
    auth: str | None = None,
    method: str = "REPLY",
) -> bytes:
    encoded = base64.encodebytes(text.encode()).decode()
    extra = f"Authentication-Results: mx.med.example.edu; {auth}\r\n" if auth else ""
    return (
        f"{extra}From: {sender}\r\nTo: {to}\r\nSubject: Accepted: Mentoring\r\nMIME-Version: 1.0\r\n"
        f"Message-ID: <{time.monotonic_ns()}@mail.gmail.com>\r\n"
        'Content-Type: multipart/mixed; boundary="m"\r\n\r\n--m\r\n'
        'Content-Type: multipart/alternative; boundary="a"\r\n\r\n--a\r\n'
        'Content-Type: text/plain; charset="UTF-8"\r\n\r\nAna Rivera has accepted.\r\n--a\r\n'
        f'Content-Type: text/calendar; charset="UTF-8"; method={method}\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        f"{encoded}\r\n--a--\r\n--m\r\n"
        'Content-Type: application/ics; name="invite.ics"\r\nContent-Disposition: attachment; filename="invite.ics"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n--m--\r\n"
    ).encode()


def outlook(text: str) -> bytes:
    encoded = quopri.encodestring(text.encode()).decode()
    return (
        f'From: "Rivera, Ana" <ARivera@hospital.example.org>\r\nTo: {STUDENT}\r\n'
        f"Subject: Abgelehnt: Mentoring\r\nMIME-Version: 1.0\r\nMessage-ID: <{time.monotonic_ns()}@outlook.com>\r\n"
        'Content-Type: multipart/alternative; boundary="x"\r\n\r\n--x\r\n'
        'Content-Type: text/plain; charset="us-ascii"\r\n\r\n\r\n--x\r\n'
        'Content-Type: text/calendar; charset="utf-8"; method=REPLY\r\n'
        f"Content-Transfer-Encoding: quoted-printable\r\n\r\n{encoded}\r\n--x--\r\n"
    ).encode()


def propose(agent: Agent, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "agent", "propose", "rivera", "--config", str(agent.config), *args],
        cwd=agent.root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def statuses(agent: Agent) -> dict[str, str]:
    ledger = agent.ledger()
    try:
        return {uid: status for uid, status in ledger.db.execute("SELECT uid, status FROM meetings")}
    finally:
        ledger.close()


def inbox_kind(agent: Agent, kind: str) -> list[EmailMessage]:
    return [m for m in agent.folder("INBOX") if m["X-Mentor-Agent"] == kind]


def invitations(agent: Agent) -> list[tuple[str, str, int, bytes]]:
    """(METHOD, UID, SEQUENCE, raw) of every invitation aiosmtpd received, in order."""
    found = []
    for received in agent.smtp.messages:
        event = event_of(received.content)
        found.append((method_of(received.content), str(event["UID"]), int(event["SEQUENCE"]), received.content))
    return found


def test_propose_holds_then_accept_cancels_the_others_after_their_requests(agent: Agent) -> None:
    agent.policy(meeting_policy(strategy="holds", proposals=3))
    agent.start()
    out = propose(agent, "--topic", "Residency applications")
    assert "Proposed to Dr. Ana Rivera" in out and out.count("\n  ") == 3
    received = agent.smtp.wait_for(3, timeout=15)
    requests = invitations(agent)
    assert [m for m, *_ in requests] == ["REQUEST"] * 3
    for received_one in received:
        assert received_one.rcpt_tos == (MENTOR,)
        method, calendar = calendar_of(received_one.content)
        assert method == "REQUEST" and str(calendar["METHOD"]) == "REQUEST"
        event = next(iter(calendar.walk("VEVENT")))
        assert str(event["ORGANIZER"]).lower() == f"mailto:{STUDENT}"
        attendee = event["ATTENDEE"]
        assert str(attendee).lower() == f"mailto:{MENTOR}" and attendee.params["RSVP"] == "TRUE"
        assert "Residency applications" in str(event["SUMMARY"])
    eventually(lambda: len(agent.subjects("Sent")) == 3 or None)
    chosen = requests[1][1]
    agent.dovecot.append(agent.user, "INBOX", gmail(ics(chosen, "ACCEPTED")))
    agent.smtp.wait_for(5, timeout=15)
    sent = invitations(agent)
    cancels = [(uid, seq) for method, uid, seq, _ in sent if method == "CANCEL"]
    assert sorted(uid for uid, _ in cancels) == sorted({requests[0][1], requests[2][1]})
    assert all(seq == 1 for _, seq in cancels)
    order = [uid + method for method, uid, *_ in sent]
    for uid, _ in cancels:
        assert order.index(uid + "REQUEST") < order.index(uid + "CANCEL")
    assert eventually(lambda: statuses(agent).get(chosen) == "accepted")
    copy = eventually(lambda: inbox_kind(agent, "meeting-copy"))[0]
    assert method_of(copy.as_bytes()) == "PUBLISH" and str(event_of(copy.as_bytes())["UID"]) == chosen
    assert eventually(lambda: [n for n in agent.notices() if "accepted" in n.get_content()])
    time.sleep(1)
    assert len(agent.smtp.messages) == 5  # nothing twice


def test_outlook_decline_offers_the_next_time(agent: Agent) -> None:
    agent.policy(meeting_policy(strategy="sequential", proposals=3))
    agent.start()
    propose(agent)
    first = agent.smtp.wait_for(1, timeout=15)[0]
    event = event_of(first.content)
    assert "these would work too" in parse(first.content).get_body(("plain",)).get_content()  # type: ignore[union-attr]
    agent.dovecot.append(
        agent.user, "INBOX", outlook(ics(str(event["UID"]), "DECLINED", mailto="MAILTO", organizer=None))
    )
    second = agent.smtp.wait_for(2, timeout=15)[1]
    following = event_of(second.content)
    assert method_of(second.content) == "REQUEST" and str(following["UID"]) != str(event["UID"])
    assert following.decoded("DTSTART") > event.decoded("DTSTART")
    assert eventually(lambda: statuses(agent).get(str(event["UID"])) == "declined")
    assert eventually(lambda: [n for n in agent.notices() if "declined" in n.get_content()])


def test_counter_inside_the_windows_updates_the_invitation(agent: Agent) -> None:
    agent.policy(meeting_policy(strategy="sequential", proposals=2))
    agent.start()
    propose(agent)
    first = agent.smtp.wait_for(1, timeout=15)[0]
    uid = str(event_of(first.content)["UID"])
    eventually(lambda: statuses(agent).get(uid) == "sent")
    # Noon for the student (America/New_York): inside the student's own hours ([student] hours) too.
    noon = (
        (datetime.now(UTC) + timedelta(days=2))
        .astimezone(ZoneInfo("America/New_York"))
        .replace(hour=12, minute=0, second=0, microsecond=0)
    )
    wanted = noon.astimezone(UTC)
    counter = ics(uid, "NEEDS-ACTION", method="COUNTER", start=wanted, end=wanted + timedelta(minutes=30))
    agent.dovecot.append(agent.user, "INBOX", gmail(counter, method="COUNTER"))
    second = agent.smtp.wait_for(2, timeout=15)[1]
    updated = event_of(second.content)
    assert method_of(second.content) == "REQUEST"
    assert str(updated["UID"]) == uid and int(updated["SEQUENCE"]) == 1
    assert updated.decoded("DTSTART") == wanted


def test_spoofed_and_malformed_replies_change_nothing(agent: Agent) -> None:
    agent.policy(meeting_policy(strategy="sequential"))
    agent.start()
    propose(agent)
    uid = str(event_of(agent.smtp.wait_for(1, timeout=15)[0].content)["UID"])
    eventually(lambda: statuses(agent).get(uid) == "sent")
    agent.dovecot.append(agent.user, "INBOX", gmail(ics(uid, "ACCEPTED"), sender="Mallory <mallory@evil.example>"))
    agent.dovecot.append(agent.user, "INBOX", gmail(ics(uid, "ACCEPTED"), auth="dkim=fail; dmarc=fail"))
    broken = ics(uid, "ACCEPTED").replace("DTSTART:", "DTSTART:not-a-time")
    agent.dovecot.append(agent.user, "INBOX", gmail(broken))
    eventually(lambda: "DKIM or DMARC failure" in agent.log())
    eventually(lambda: [n for n in agent.notices() if "Unreadable calendar answer" in str(n["Subject"])])
    time.sleep(1.5)
    assert statuses(agent)[uid] == "sent"
    assert len(agent.smtp.messages) == 1 and inbox_kind(agent, "meeting-copy") == []
    agent.dovecot.append(agent.user, "INBOX", gmail(ics(uid, "ACCEPTED")))  # the real one still works
    assert eventually(lambda: statuses(agent).get(uid) == "accepted")


def test_meeting_marker_in_the_outbox_becomes_an_invitation(agent: Agent) -> None:
    agent.policy(meeting_policy(strategy="sequential"))
    agent.start()
    body = "Could we talk about my residency applications?\n\nSam\n"
    agent.drop(mail("[meeting] Residency applications", body=body))
    request = agent.smtp.wait_for(1, timeout=15)[0]
    event = event_of(request.content)
    assert "Residency applications" in str(event["SUMMARY"]) and "[meeting]" not in str(event["SUMMARY"])
    assert "residency applications?" in str(event["DESCRIPTION"])
    original = eventually(lambda: [m for m in agent.folder("Sent") if "[meeting]" in str(m["Subject"])])
    assert original
    uid = next(u for u, raw in agent.folder_raw("Sent").items() if b"[meeting]" in raw)
    assert "\\Seen" in agent.dovecot.flags(agent.user, "Sent Items", uid)
    assert eventually(lambda: [n for n in agent.notices() if "became an invitation" in str(n["Subject"])])
    time.sleep(1)
    assert len(agent.smtp.messages) == 1  # the request itself never went as an e-mail


def test_suggestion_accepted_by_the_student_invites_the_mentor(agent: Agent) -> None:
    agent.policy(meeting_policy(email="suggest_meeting_after = 2\n", min_gap="1h"))
    agent.start(**ALL_DAY)  # her own hours never decide the time: the outcome is the same at any hour
    for subject in ("one", "two", "three"):
        agent.drop(mail(subject))
    agent.smtp.wait_for(1, timeout=15)
    suggestion = eventually(lambda: inbox_kind(agent, "suggestion"), timeout=15)[0]
    event = event_of(suggestion.as_bytes())
    organizer = str(event["ORGANIZER"]).lower().removeprefix("mailto:")
    assert organizer == "sam+mentor-agent@med.example.edu"
    reply = ics(
        str(event["UID"]),
        "ACCEPTED",
        organizer=organizer,
        attendee=STUDENT,
        start=event.decoded("DTSTART"),
        end=event.decoded("DTEND"),
    )
    agent.dovecot.append(agent.user, "INBOX", gmail(reply, sender=f"Sam Patel <{STUDENT}>", to=organizer))

    def invitation() -> list[bytes]:
        return [raw for raw in agent.folder_raw("Scheduled").values() if b"X-Mentor-Agent: invite" in raw]

    raw = eventually(invitation, timeout=15)[0]
    invite = event_of(raw)
    assert method_of(raw) == "REQUEST" and str(invite["ATTENDEE"]).lower() == f"mailto:{MENTOR}"
    assert invite.decoded("DTSTART") == event.decoded("DTSTART")
    time.sleep(1.5)
    assert len(inbox_kind(agent, "suggestion")) == 1  # once per waiting streak


def test_a_suggested_time_the_pace_no_longer_reaches_is_withdrawn_from_her_calendar(agent: Agent) -> None:
    """The pace changed between the suggestion and her answer: its invitation could no longer leave min_notice
    before the accepted time. The mentor is offered another time; the student is told, and her calendar's copy of
    the suggestion is cancelled (its UID, a higher SEQUENCE) rather than left standing for a time nobody keeps."""
    agent.policy(meeting_policy(email="suggest_meeting_after = 2\n", min_gap="1h"))
    agent.start(**ALL_DAY)
    for subject in ("one", "two", "three"):
        agent.drop(mail(subject))
    suggestion = eventually(lambda: inbox_kind(agent, "suggestion"), timeout=15)[0]
    event = event_of(suggestion.as_bytes())
    agent.policy(meeting_policy(email="suggest_meeting_after = 2\n", min_gap="3h"))  # now it leaves 6h later
    eventually(lambda: "at least 3h between messages" in agent.log() or None, timeout=15)
    organizer = str(event["ORGANIZER"]).lower().removeprefix("mailto:")
    reply = ics(
        str(event["UID"]),
        "ACCEPTED",
        organizer=organizer,
        attendee=STUDENT,
        start=event.decoded("DTSTART"),
        end=event.decoded("DTEND"),
    )
    agent.dovecot.append(agent.user, "INBOX", gmail(reply, sender=f"Sam Patel <{STUDENT}>", to=organizer))
    withdrawn = eventually(lambda: inbox_kind(agent, "suggestion-withdrawn"), timeout=15)
    cancel = event_of(withdrawn[0].as_bytes())
    assert method_of(withdrawn[0].as_bytes()) == "CANCEL" and str(cancel["UID"]) == str(event["UID"])
    assert int(cancel["SEQUENCE"]) > int(event["SEQUENCE"]) and cancel.decoded("DTSTART") == event.decoded("DTSTART")
    told = eventually(lambda: [n for n in agent.notices() if "not invited" in str(n["Subject"])])[0].get_content()
    assert "You accepted the suggested meeting with Dr. Ana Rivera" in told
    assert "the e-mail pace agreed with Dr. Ana Rivera holds it" in " ".join(told.split())
    raw = eventually(
        lambda: [raw for raw in agent.folder_raw("Scheduled").values() if b"X-Mentor-Agent: invite" in raw]
    )[0]
    offered = event_of(raw).decoded("DTSTART")
    assert offered > event.decoded("DTSTART")  # another time, one the pace reaches
    time.sleep(1)
    assert len(inbox_kind(agent, "suggestion-withdrawn")) == 1 and len(inbox_kind(agent, "suggestion")) == 1


def test_an_unanswered_offer_expires_and_the_next_time_is_offered(agent: Agent) -> None:
    agent.policy(meeting_policy(strategy="sequential", proposals=2, timeout="3s"))
    agent.start()
    propose(agent)
    first = event_of(agent.smtp.wait_for(1, timeout=15)[0].content)
    agent.smtp.wait_for(3, timeout=20)
    sent = invitations(agent)
    assert ("CANCEL", str(first["UID"]), 1) in [(m, u, s) for m, u, s, _ in sent]
    following = [raw for m, u, _, raw in sent if m == "REQUEST" and u != str(first["UID"])]
    assert len(following) == 1 and event_of(following[0]).decoded("DTSTART") > first.decoded("DTSTART")
    assert eventually(lambda: statuses(agent).get(str(first["UID"])) == "expired")
    assert eventually(lambda: [n for n in agent.notices() if "No answer from" in n.get_content()])


def withdraw(agent: Agent, policy: str = "rivera") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", "withdraw", policy, "--config", str(agent.config)],
        cwd=agent.root,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_withdraw_cancels_every_sent_offer_of_the_open_round(agent: Agent) -> None:
    agent.policy(meeting_policy(strategy="holds", proposals=3))
    agent.start()
    propose(agent)
    agent.smtp.wait_for(3, timeout=15)
    requests = [uid for method, uid, *_ in invitations(agent) if method == "REQUEST"]
    eventually(lambda: len(agent.subjects("Sent")) == 3 or None)
    done = withdraw(agent)
    assert done.returncode == 0, done.stderr
    assert "Called off the meeting offer to Dr. Ana Rivera" in done.stdout
    agent.smtp.wait_for(6, timeout=15)
    cancels = [(uid, seq) for method, uid, seq, _ in invitations(agent) if method == "CANCEL"]
    assert sorted(uid for uid, _ in cancels) == sorted(requests) and all(seq == 1 for _, seq in cancels)
    assert eventually(lambda: all(statuses(agent).get(uid) == "cancelled" for uid in requests))
    assert eventually(lambda: [n for n in agent.notices() if "called off" in str(n["Subject"])])
    again = withdraw(agent)  # nothing open any more: says so, non-zero, sends nothing
    assert again.returncode != 0 and "no open meeting offer to Dr. Ana Rivera" in again.stderr
    time.sleep(1)
    assert len(agent.smtp.messages) == 6


def test_withdraw_takes_back_invitations_that_have_not_left(agent: Agent) -> None:
    agent.policy(meeting_policy(strategy="holds", proposals=3, min_gap="1h"))
    agent.start()
    propose(agent)
    first = str(event_of(agent.smtp.wait_for(1, timeout=15)[0].content)["UID"])

    def held(method: str) -> list[bytes]:
        return [
            raw
            for raw in agent.folder_raw("Scheduled").values()
            if b"X-Mentor-Agent: invite" in raw and method_of(raw) == method
        ]

    assert len(eventually(lambda: held("REQUEST") if len(held("REQUEST")) == 2 else None, timeout=15)) == 2
    done = withdraw(agent)
    assert done.returncode == 0, done.stderr
    # The two REQUESTs still held are taken out before they go; the one that went gets a CANCEL, which is not held
    # by the gap: a cancellation goes at once (docs/meetings.md).
    assert eventually(lambda: not held("REQUEST") or None, timeout=15)
    cancel = agent.smtp.wait_for(2, timeout=15)[1]
    assert method_of(cancel.content) == "CANCEL" and str(event_of(cancel.content)["UID"]) == first
    assert eventually(lambda: set(statuses(agent).values()) == {"cancelled"})
    time.sleep(1)
    assert [method for method, *_ in invitations(agent)] == ["REQUEST", "CANCEL"] and not held("CANCEL")
