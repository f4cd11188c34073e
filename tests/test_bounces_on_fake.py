"""What a delivery report about a mentor's message may change (issue 23), pass by pass on the in-memory mailbox
and a real aiosmtpd: only a mail system's report is believed, a bounce through her forwarding address or in
qmail's plain text is told, one of her two addresses failing leaves the message waiting for her answer, and a
report (or a reply from an unknown address) that arrives before the phone's copy reaches Sent is not lost."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.reconcile.history import Seen
from tests.agent_process import MENTOR, OPEN_POLICY, OUTBOX, STUDENT, policy_text
from tests.servers.smtp import SmtpServer
from tests.test_answers_on_fake import CORPUS, Q1, held, notice_texts, notices
from tests.test_passes_on_fake import SENT, Pass, mail

__all__ = ["held"]
DSN = (CORPUS / "dsn" / "postfix_user_unknown.eml").read_bytes()
OTHER = "ana.rivera@med.example.edu"  # her second address


def told(made: Pass) -> list[str]:
    return [s for s in notices(made) if "Not delivered" in s]


def test_a_report_from_a_stranger_is_not_believed(held: Pass) -> None:
    forged = DSN.replace(b"From: MAILER-DAEMON@mx.med.example.edu (Mail Delivery System)", b"From: Pat <pat@x.example>")
    held.server.put("INBOX", forged)
    held.run()
    assert told(held) == []
    assert held.received() == ["Question about the rotation"], "a stranger's made-up report released held mail"
    sent = held.world.ledger.history("rivera", datetime.now(UTC) - timedelta(days=1)).sent
    assert [item.bounced for item in sent] == [False]


def test_a_bounce_through_her_forwarding_address_is_told(held: Pass) -> None:
    forwarded = DSN.replace(
        b"Final-Recipient: rfc822; arivera@hospital.example.org",
        b"Final-Recipient: rfc822; ana.rivera@old-clinic.example.net",
    )
    held.server.put("INBOX", forwarded)
    held.run()
    assert told(held) == ["[mentor-agent] Not delivered to Dr. Ana Rivera: Question about the rotation"]
    assert held.received() == ["Question about the rotation", "second question"]


def test_a_qmail_bounce_is_told(held: Pass) -> None:
    qmail = (
        f"Return-Path: <>\r\nFrom: MAILER-DAEMON@mail.med.example.edu\r\nTo: {STUDENT}\r\nSubject: failure notice\r\n"
        "Message-ID: <qmail-bounce@mail.med.example.edu>\r\n\r\nHi. This is the qmail-send program.\r\n\r\n"
        f"<{MENTOR}>:\r\nRemote host said: 550 5.1.1 No such user here\r\n\r\n"
        f"--- Below this line is a copy of the message.\r\n\r\nTo: {MENTOR}\r\nMessage-ID: {Q1}\r\n\r\nHello.\r\n"
    )
    held.server.put("INBOX", qmail.encode())
    held.run()
    assert told(held) == ["[mentor-agent] Not delivered to Dr. Ana Rivera: Question about the rotation"]
    assert "No such user here" in next(t for t in notice_texts(held) if "Not delivered" in t)


@pytest.fixture
def two_addresses(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Pass]:
    """Her policy lists two addresses; the first question went to both, the second is held."""
    text = OPEN_POLICY.replace(f'addresses = ["{MENTOR}"]', f'addresses = ["{MENTOR}", "{OTHER}"]')
    limits = {"max_per_day": 50, "min_gap": "0", "windows": '"Mon-Sun 00:00-24:00"', "over_limit": "delay"}
    made = Pass(tmp_path, smtp_server, text.format(max_unanswered=1, **limits))
    try:
        made.server.put(OUTBOX, mail("Question about the rotation", to=f"{MENTOR}, {OTHER}", message_id=Q1))
        made.run()
        made.server.put(OUTBOX, mail("second question"))
        made.run()
        assert made.received() == ["Question about the rotation"]
        yield made
    finally:
        made.world.ledger.close()


def test_one_of_her_two_addresses_bouncing_leaves_it_waiting_for_her_answer(two_addresses: Pass) -> None:
    made = two_addresses
    made.server.put("INBOX", DSN)  # her first address failed; nothing says the second did
    made.run()
    assert told(made) == [f"[mentor-agent] Not delivered to Dr. Ana Rivera at {MENTOR}: Question about the rotation"]
    assert OTHER in next(t for t in notice_texts(made) if "Not delivered" in t)
    assert made.received() == ["Question about the rotation"], "she got it at her other address: still waits"
    made.seen = Seen()  # a restart: told once
    made.run()
    assert len(told(made)) == 1
    # Her other address fails too: she never got it.
    made.server.put("INBOX", DSN.replace(MENTOR.encode(), OTHER.encode()))
    made.run()
    assert told(made)[-1] == "[mentor-agent] Not delivered to Dr. Ana Rivera: Question about the rotation"
    assert made.received() == ["Question about the rotation", "second question"]


def test_a_bounce_that_arrives_before_the_phone_copy_reaches_sent_is_told(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    made = Pass(tmp_path, smtp_server, policy_text(max_unanswered=1))
    try:
        phone = "<phone-b@med.example.edu>"
        made.server.put("INBOX", DSN.replace(Q1.encode(), phone.encode()))
        made.run()
        assert told(made) == []
        made.server.put(SENT, mail("from my phone", message_id=phone))  # the phone's late APPEND
        made.run()
        made.run()
        assert told(made) == ["[mentor-agent] Not delivered to Dr. Ana Rivera: Question about the rotation"]
        made.server.put(OUTBOX, mail("next question"))
        made.run()
        assert made.received() == ["next question"], "the bounced phone message holds nothing"
    finally:
        made.world.ledger.close()


def test_a_reply_from_an_unknown_address_before_the_phone_copy_reaches_sent_is_told(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    made = Pass(tmp_path, smtp_server, policy_text(max_unanswered=1))
    try:
        phone, stranger = "<phone-c@med.example.edu>", "ana.md@gmail.example.com"
        soon = datetime.now(UTC) + timedelta(seconds=2)
        made.server.put("INBOX", mail("Re: from my phone", to=STUDENT, sender=stranger, at=soon, In_Reply_To=phone))
        made.run()
        made.server.put(SENT, mail("from my phone", message_id=phone))
        made.run()
        made.run()
        assert len([t for t in notice_texts(made) if stranger in t]) == 1
    finally:
        made.world.ledger.close()
