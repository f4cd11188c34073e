"""A meeting answer records only what was said, and says who said it (docs/answers.md, docs/meetings.md). Two hostile
rounds:

- an answer her calendar sent on its own (Auto-Submitted: Outlook's decline while she is away) was applied without
  a word that no one typed it; the first fix then ignored such answers, and with them every Google Calendar RSVP
  (Google marks the mail it sends for her click auto-generated): they are applied, and the student is told when
  no one typed it;
- an ACCEPTED that came after the time had begun recorded an agreed meeting in the past; then its notice came again
  each time INBOX was read anew (a reconnect).
(On the in-memory mailbox and the real aiosmtpd server, as tests/test_meetings_on_fake.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from agent.mail.session import MailboxError
from tests.fakes.memory_mailbox import MemoryMailbox
from tests.servers.smtp import SmtpServer
from tests.test_meeting_desk import event_of, gmail, ics
from tests.test_meeting_suggest_on_fake import answer, queue, suggestions
from tests.test_meetings_on_fake import Desk, make, sent_uid

GOOGLE = "Sender: Google Calendar <calendar-notification@google.com>\r\nAuto-Submitted: auto-generated\r\n"
ON_ITS_OWN = "sent this answer on its own"


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


def reconnect(desk: Desk) -> None:
    """A new session, as after a dropped connection: INBOX is read anew."""
    desk.box = MemoryMailbox(desk.server)
    desk.restart()


def test_a_google_calendar_rsvp_is_her_answer(sequential: Desk) -> None:
    sequential.propose()
    sequential.settle()
    uid = sent_uid(sequential)
    sequential.server.put("INBOX", GOOGLE.encode() + gmail(ics(uid, "ACCEPTED")))
    sequential.settle()
    assert sequential.statuses()[uid] == "accepted"
    assert said(sequential, ON_ITS_OWN) == 0, "she clicked Yes: nothing says no one typed it"


@pytest.mark.parametrize(
    "header", ["Auto-Submitted: auto-generated", "Auto-Submitted: auto-replied", "X-Autoreply: yes"]
)
def test_an_answer_sent_on_its_own_is_applied_and_said_to_be_so_once(sequential: Desk, header: str) -> None:
    sequential.propose()
    sequential.settle()
    uid = sent_uid(sequential)
    sequential.server.put("INBOX", f"{header}\r\n".encode() + gmail(ics(uid, "ACCEPTED")))
    sequential.settle()
    reconnect(sequential)
    sequential.settle()
    assert sequential.statuses()[uid] == "accepted"
    assert said(sequential, ON_ITS_OWN) == 1


def test_a_decline_while_she_is_away_offers_the_next_time_and_says_so(sequential: Desk) -> None:
    sequential.propose()
    sequential.settle()
    uid = sent_uid(sequential)
    sequential.server.put("INBOX", b"Auto-Submitted: auto-generated\r\n" + gmail(ics(uid, "DECLINED")))
    sequential.settle()
    assert sequential.statuses()[uid] == "declined"
    assert len(sequential.invitations()) == 2, "the next time offered, as for her own decline"
    assert said(sequential, ON_ITS_OWN) == 1


def test_an_accept_after_the_time_began_records_no_meeting_and_is_told_once(sequential: Desk) -> None:
    sequential.propose()
    sequential.settle()
    uid = sent_uid(sequential)
    start = event_of(sequential.smtp.messages[0].content).decoded("DTSTART")
    sequential.now = start + timedelta(hours=1)  # the offer still open (a three-day timeout)
    sequential.settle()
    sequential.reply(uid, "ACCEPTED")
    sequential.settle()
    for _ in range(2):
        reconnect(sequential)
        sequential.settle()
    assert sequential.statuses()[uid] != "accepted"
    assert sequential.inbox("meeting-copy") == []
    assert said(sequential, "only after that time had begun: no meeting was recorded") == 1


# -- a third hostile round: each answer once, and only this answer -------------------------------------------------
def with_id(raw: bytes, message_id: str) -> bytes:
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"message-id:")]
    return b"\r\n".join([*lines, f"Message-ID: {message_id}".encode()]) + b"\r\n\r\n" + body


def test_a_later_answer_reusing_a_message_id_is_applied(sequential: Desk) -> None:
    sequential.propose()
    sequential.settle()
    uid = sent_uid(sequential)
    sequential.server.put("INBOX", with_id(gmail(ics(uid, "TENTATIVE")), "<fixed-1@mail.gmail.com>"))
    sequential.settle()
    sequential.server.put("INBOX", with_id(gmail(ics(uid, "ACCEPTED")), "<fixed-1@mail.gmail.com>"))
    sequential.settle()
    assert sequential.statuses()[uid] == "accepted"


def test_a_drop_while_an_answers_notice_goes_does_not_tell_it_twice(sequential: Desk) -> None:
    sequential.propose()
    sequential.settle()
    uid = sent_uid(sequential)
    sequential.server.put("INBOX", gmail(ics(uid, "TENTATIVE")))
    sequential.server.fail("find_by_message_id", "INBOX")  # the notice's look for itself drops the line
    with pytest.raises(MailboxError):
        sequential.settle()
    for _ in range(2):
        reconnect(sequential)
        sequential.settle()
        sequential.later(timedelta(minutes=2))  # the notice left to do is carried out once it is stale
    sequential.settle()
    assert said(sequential, "tentatively accepted") == 1


def test_a_sender_that_only_names_google_in_its_display_name_does_not_hide_the_note(sequential: Desk) -> None:
    sequential.propose()
    sequential.settle()
    uid = sent_uid(sequential)
    head = b'Sender: "calendar-notification@google.com" <bounce@relay.example.net>\r\nAuto-Submitted: auto-replied\r\n'
    sequential.server.put("INBOX", head + gmail(ics(uid, "DECLINED")))
    sequential.settle()
    assert said(sequential, ON_ITS_OWN) == 1


# -- a fourth hostile round ---------------------------------------------------------------------------------------
def test_a_copy_ignored_once_is_not_told_later_when_her_answers_have_moved_on(sequential: Desk) -> None:
    sequential.propose()
    sequential.settle()
    uid = sent_uid(sequential)
    sequential.reply(uid, "ACCEPTED")
    sequential.settle()
    sequential.reply(uid, "ACCEPTED")  # a second copy (her phone and her desktop): already accepted
    sequential.settle()
    sequential.later(timedelta(hours=1))
    sequential.reply(uid, "DECLINED")
    sequential.settle()
    told = len(sequential.inbox("notice"))
    for _ in range(2):
        reconnect(sequential)
        sequential.settle()
    assert len(sequential.inbox("notice")) == told


def test_a_late_copy_of_her_tentative_answer_leaves_the_agreed_meeting_as_it_is(sequential: Desk) -> None:
    sequential.propose()
    sequential.settle()
    uid = sent_uid(sequential)
    tentative = ics(uid, "TENTATIVE")
    sequential.server.put("INBOX", gmail(tentative))
    sequential.settle()
    sequential.reply(uid, "ACCEPTED")
    sequential.settle()
    sequential.server.put("INBOX", gmail(tentative))  # the copy, late
    sequential.settle()
    assert sequential.statuses()[uid] == "accepted"
    assert said(sequential, "still waiting for a final answer") == 1, "only the first tentative"
    assert said(sequential, "the meeting stands as agreed") == 1


@pytest.fixture
def waiting(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Desk]:
    yield from make(tmp_path, smtp_server, email="suggest_meeting_after = 2\n", min_gap="1h")


@pytest.mark.parametrize(
    ("first", "then", "told"), [("DECLINED", "ACCEPTED", "propose"), ("ACCEPTED", "DECLINED", "withdraw")]
)
def test_her_second_answer_to_a_suggestion_the_other_way_is_told_once(
    waiting: Desk, first: str, then: str, told: str
) -> None:
    queue(waiting, "one", "two", "three")
    (suggestion,) = suggestions(waiting)
    answer(waiting, suggestion, first)
    waiting.settle()
    answer(waiting, suggestion, then)
    waiting.settle()
    reconnect(waiting)
    waiting.settle()
    assert said(waiting, f"mentor-agent {told} rivera") == 1


# -- a fifth hostile round ------------------------------------------------------------------------------------------
SECOND = "ana.rivera@gmail.example.com"


def test_an_answer_not_judged_for_its_sender_counts_once_her_address_is_added(sequential: Desk) -> None:
    """Her accept from her personal address (as attendee too) is nobody's answer while her policy does not list
    it; marked read, it was lost for good when the student added the address."""
    sequential.propose()
    sequential.settle()
    uid = sent_uid(sequential)
    sequential.server.put("INBOX", gmail(ics(uid, "ACCEPTED", attendee=SECOND)))
    sequential.settle()
    assert sequential.statuses()[uid] == "sent"
    path = sequential.settings.policies_dir / "rivera.toml"
    path.write_text(
        path.read_text().replace('["arivera@hospital.example.org"]', f'["arivera@hospital.example.org", "{SECOND}"]')
    )
    reconnect(sequential)
    sequential.settle()
    assert sequential.statuses()[uid] == "accepted"


def test_tentative_after_she_accepted_is_told_and_the_meeting_stands(sequential: Desk) -> None:
    sequential.propose()
    sequential.settle()
    uid = sent_uid(sequential)
    sequential.reply(uid, "ACCEPTED")
    sequential.settle()
    sequential.reply(uid, "TENTATIVE")  # a day later, she is less sure (or a late copy): either way she is told
    sequential.settle()
    assert sequential.statuses()[uid] == "accepted"
    assert said(sequential, "answered “tentative”") == 1
