"""A mentor's words with a calendar answer (COMMENT, X-RESPONSE-COMMENT, or the text Outlook writes) are quoted
in the student's notice: parsing, then the real daemon with Dovecot and aiosmtpd."""

from __future__ import annotations

import pytest

from agent.rules.invites import parse_itip
from tests.agent_process import Agent, agent, eventually
from tests.test_meeting_desk import event_of, gmail, ics, meeting_policy, outlook, propose

__all__ = ["agent"]


def with_lines(text: str, *lines: str) -> str:
    return text.replace("SUMMARY:Mentoring", "\r\n".join(["SUMMARY:Mentoring", *lines]))


def test_comment_and_x_response_comment_are_read() -> None:
    plain = ics("u1", "DECLINED")
    commented = with_lines(plain, "COMMENT:Rounds until 16:15\\, could we do Thursday?")
    (item,) = parse_itip(gmail(commented))
    assert item.comment == "Rounds until 16:15, could we do Thursday?"
    (item,) = parse_itip(gmail(with_lines(plain, "X-RESPONSE-COMMENT:Gern\\nbis dann")))
    assert item.comment == "Gern\nbis dann"
    (item,) = parse_itip(gmail(plain))  # Gmail's own "has accepted" text is not the mentor's
    assert item.comment == ""


def test_outlooks_text_part_is_the_comment_and_the_quoted_invitation_is_not() -> None:
    calendar = ics("u1", "ACCEPTED").replace(
        "PRODID:-//Google Inc//Google Calendar 70.9054//EN", "PRODID:Microsoft Exchange Server 2010"
    )
    raw = outlook(calendar).replace(
        b'Content-Type: text/plain; charset="us-ascii"\r\n\r\n\r\n',
        b'Content-Type: text/plain; charset="us-ascii"\r\n\r\nLooking forward to it.\r\n'
        b"Please bring your CV.\r\n\r\n-----Original Appointment-----\r\nFrom: Sam Patel\r\n",
    )
    (item,) = parse_itip(raw)
    assert item.comment == "Looking forward to it.\nPlease bring your CV."
    (item,) = parse_itip(outlook(calendar))  # nothing typed: nothing quoted
    assert item.comment == ""


@pytest.mark.servers
def test_the_mentors_comment_is_quoted_in_the_students_notice(agent: Agent) -> None:
    agent.policy(meeting_policy(strategy="sequential", proposals=2))
    agent.start()
    propose(agent)
    first = agent.smtp.wait_for(1, timeout=15)[0]
    uid = str(event_of(first.content)["UID"])
    eventually(lambda: "sent" in {status for status in _statuses(agent).values()})
    answer = with_lines(ics(uid, "DECLINED"), "COMMENT:I am on call that week\\, sorry.")
    agent.dovecot.append(agent.user, "INBOX", gmail(answer))
    notice = eventually(lambda: [n for n in agent.notices() if "declined" in n.get_content()], timeout=20)[0]
    text = notice.get_content().replace("\r\n", "\n")
    assert "Dr. Ana Rivera wrote with the answer:\n  > I am on call that week, sorry." in text, text


def _statuses(agent: Agent) -> dict[str, str]:
    ledger = agent.ledger()
    try:
        return {uid: status for uid, status in ledger.db.execute("SELECT uid, status FROM meetings")}
    finally:
        ledger.close()
