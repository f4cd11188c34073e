"""Mail that must not go (issue 20, the tester's findings), on whole passes over the in-memory mailbox and the real
aiosmtpd server: a Sent copy put back into the outbox is the message already sent (whatever the agent added to
it), a client's own header does not make a copy another message, an empty Date is replaced, and a message without
one clear From never goes, whenever it was taken in."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from agent.rules.envelope import parse_envelope
from agent.store.ledger import SCHEDULED
from tests.agent_process import OUTBOX, STUDENT, parse, policy_text
from tests.helpers import ledger_row
from tests.servers.smtp import SmtpServer
from tests.test_headers_on_fake import _bare
from tests.test_passes_on_fake import SENT, Pass


@pytest.fixture
def open_pass(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Pass]:
    made = Pass(tmp_path, smtp_server, policy_text())
    try:
        yield made
    finally:
        made.world.ledger.close()


def _twice(p: Pass) -> None:
    p.run()
    p.run()


@pytest.mark.parametrize(
    "raw",
    [_bare("undated", date=False, message_id="<u1@med.example.edu>"), _bare("no id").replace(b"Message-ID: ", b"X: ")],
    ids=["without a Date", "without a Message-ID"],
)
def test_the_sent_copy_of_a_message_the_agent_completed_put_back_does_not_go_again(open_pass: Pass, raw: bytes) -> None:
    open_pass.server.put(OUTBOX, raw)
    _twice(open_pass)
    (filed,) = open_pass.server.messages(SENT).values()
    open_pass.server.put(OUTBOX, filed)  # the student drags the Sent copy back into the outbox
    _twice(open_pass)
    assert len(open_pass.smtp.messages) == 1, "the message already sent went to the mentor a second time"
    assert open_pass.subjects("Needs attention") == [parse_envelope(raw).subject]


def test_the_sent_copy_of_the_second_of_two_sharing_an_id_put_back_does_not_go_again(open_pass: Pass) -> None:
    open_pass.server.put(OUTBOX, _bare("first of two", message_id="<v@med.example.edu>"))
    open_pass.server.put(OUTBOX, _bare("second of two", message_id="<v@med.example.edu>"))
    _twice(open_pass)
    assert len(open_pass.smtp.messages) == 2
    (second,) = [raw for raw in open_pass.server.messages(SENT).values() if b"second of two" in raw]
    open_pass.server.put(OUTBOX, second)
    _twice(open_pass)
    assert len(open_pass.smtp.messages) == 2, "a copy of the sent 'second of two' went again"
    assert open_pass.subjects("Needs attention") == ["second of two"]


def test_the_sent_copy_of_a_digest_put_back_does_not_go_again(tmp_path: Path, smtp_server: SmtpServer) -> None:
    digests = Pass(tmp_path, smtp_server, policy_text(over_limit="batch"))
    try:
        for n in range(3):
            digests.server.put(OUTBOX, _bare(f"p{n}", message_id=f"<p{n}@med.example.edu>"))
        _twice(digests)
        (filed,) = digests.server.messages(SENT).values()  # the digest "3 updates from Sam — p0, p1, p2"
        assert len(digests.smtp.messages) == 1
        digests.server.put(OUTBOX, filed)  # she drags the digest's Sent copy back into the outbox
        _twice(digests)
        assert len(digests.smtp.messages) == 1, "the digest already sent went to the mentor a second time"
        assert digests.subjects("Needs attention") == [parse_envelope(filed).subject]
        assert any("Not sent" in subject for subject in digests.subjects("INBOX")), "she is told why"
    finally:
        digests.world.ledger.close()


def test_a_copy_with_a_header_its_mail_program_added_is_the_same_message(open_pass: Pass) -> None:
    raw = _bare("copy with x header", message_id="<cx@med.example.edu>")
    open_pass.server.put(OUTBOX, raw)
    open_pass.server.put(OUTBOX, raw.replace(b"Subject:", b"X-Mozilla-Status: 0001\r\nReceived: by x\r\nSubject:", 1))
    _twice(open_pass)
    assert len(open_pass.smtp.messages) == 1, "the same message (one client header more) went to the mentor twice"


def test_an_empty_date_is_replaced_like_a_missing_one(open_pass: Pass) -> None:
    raw = _bare("empty date", date=False).replace(b"Subject: empty date", b"Subject: empty date\r\nDate: ")
    open_pass.server.put(OUTBOX, raw)
    _twice(open_pass)
    (received,) = open_pass.smtp.messages
    dates = [str(d).strip() for d in parse(received.content).get_all("Date") or []]
    assert len(dates) == 1 and dates[0], f"sent with Date {dates!r}"


@pytest.mark.parametrize(
    "raw",
    [
        _bare("two froms", sender=f"{STUDENT}, someoneelse@elsewhere.example"),
        _bare("two from fields").replace(b"To:", b"From: other@elsewhere.example\r\nTo:", 1),
    ],
    ids=["two addresses in From", "two From fields"],
)
def test_a_message_without_one_clear_from_is_held(open_pass: Pass, raw: bytes) -> None:
    open_pass.server.put(OUTBOX, raw)
    _twice(open_pass)
    assert open_pass.smtp.messages == [], "From with two mailboxes and no Sender (RFC 5322 3.6.2) went out"
    assert open_pass.subjects("Needs attention") == [parse_envelope(raw).subject]


def test_two_addresses_in_from_with_a_sender_go(open_pass: Pass) -> None:
    raw = _bare("two authors", sender=f"{STUDENT}, coauthor@med.example.edu").replace(
        b"To:", f"Sender: {STUDENT}\r\nTo:".encode(), 1
    )
    open_pass.server.put(OUTBOX, raw)
    _twice(open_pass)
    assert len(open_pass.smtp.messages) == 1


def test_a_message_without_from_scheduled_by_an_older_version_is_not_sent(open_pass: Pass) -> None:
    raw = _bare("no from, scheduled before upgrade", sender=None, message_id="<nfu@med.example.edu>")
    uid = open_pass.server.put("Scheduled", raw)
    envelope = parse_envelope(raw)
    row = ledger_row(envelope, sender="", state=SCHEDULED, folder="Scheduled", uid=uid)
    open_pass.world.ledger.add(replace(row))
    _twice(open_pass)
    open_pass.run()
    assert open_pass.smtp.messages == [], "sent without From"
    assert open_pass.subjects("Needs attention") == [envelope.subject]


def test_two_messages_with_the_same_headers_and_different_text_are_two(open_pass: Pass) -> None:
    open_pass.server.put(OUTBOX, _bare("same head", message_id="<sh@med.example.edu>", body="First text."))
    open_pass.server.put(OUTBOX, _bare("same head", message_id="<sh@med.example.edu>", body="Other text."))
    _twice(open_pass)
    bodies = sorted(parse(r.content).get_content().strip() for r in open_pass.smtp.messages)
    assert bodies == ["First text.", "Other text."], "the second held as 'a copy'"
    assert open_pass.subjects("Needs attention") == []
    assert len({parse(r.content)["Message-ID"] for r in open_pass.smtp.messages}) == 2
