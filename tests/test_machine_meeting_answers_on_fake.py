"""A meeting answer records only what she said (docs/answers.md, docs/meetings.md), found by a hostile hunt:

- one written by a machine (RFC 3834's signs: Outlook's decline while away, a vacation program) was applied as hers:
  an automatic ACCEPTED recorded a meeting and put it on the student's calendar, an automatic DECLINED offered the
  next time;
- an ACCEPTED that came after the time had begun recorded an agreed meeting in the past.
(On the in-memory mailbox and the real aiosmtpd server, as tests/test_meetings_on_fake.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.servers.smtp import SmtpServer
from tests.test_meeting_desk import event_of, gmail, ics
from tests.test_meetings_on_fake import Desk, make, sent_uid


@pytest.fixture
def sequential(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Desk]:
    yield from make(tmp_path, smtp_server, strategy="sequential", proposals=3, timeout="3d")


def said(desk: Desk, words: str) -> int:
    """How many notices say ``words`` (subject or text, on one line)."""
    found = 0
    for message in desk.inbox("notice"):
        body = message.get_body(("plain",))
        text = " ".join(f"{message['Subject']} {body.get_content() if body is not None else ''}".split())
        found += words in text
    return found


MACHINE = ["Auto-Submitted: auto-generated", "Auto-Submitted: auto-replied", "X-Autoreply: yes"]


@pytest.mark.parametrize("header", MACHINE)
def test_an_automatic_accept_records_no_meeting_and_she_is_told_once(sequential: Desk, header: str) -> None:
    sequential.propose()
    sequential.settle()
    uid = sent_uid(sequential)
    sequential.server.put("INBOX", f"{header}\r\n".encode() + gmail(ics(uid, "ACCEPTED")))
    sequential.settle()
    sequential.restart()  # read again after a restart: still told once
    sequential.settle()
    assert sequential.statuses()[uid] == "sent"
    assert sequential.inbox("meeting-copy") == [], "nothing on her calendar"
    assert len(sequential.notices("not taken as hers")) == 1
    assert sequential.notices("accepted:") == []


def test_an_automatic_decline_while_she_is_away_offers_no_next_time(sequential: Desk) -> None:
    sequential.propose()
    sequential.settle()
    uid = sent_uid(sequential)
    sequential.server.put("INBOX", b"Auto-Submitted: auto-generated\r\n" + gmail(ics(uid, "DECLINED")))
    sequential.settle()
    assert sequential.statuses()[uid] == "sent"
    assert len(sequential.invitations()) == 1, "no next time offered"
    assert len(sequential.notices("not taken as hers")) == 1


def test_her_own_accept_is_still_recorded(sequential: Desk) -> None:
    sequential.propose()
    sequential.settle()
    uid = sent_uid(sequential)
    sequential.server.put("INBOX", b"Auto-Submitted: no\r\n" + gmail(ics(uid, "ACCEPTED")))
    sequential.settle()
    assert sequential.statuses()[uid] == "accepted"


def test_an_accept_after_the_time_began_records_no_meeting(sequential: Desk) -> None:
    sequential.propose()
    sequential.settle()
    uid = sent_uid(sequential)
    start = event_of(sequential.smtp.messages[0].content).decoded("DTSTART")
    sequential.now = start + timedelta(hours=1)  # the offer still open (a three-day timeout)
    sequential.settle()
    sequential.reply(uid, "ACCEPTED")
    sequential.settle()
    assert sequential.statuses()[uid] != "accepted"
    assert sequential.inbox("meeting-copy") == []
    assert said(sequential, "only after that time had begun: no meeting was recorded") == 1
