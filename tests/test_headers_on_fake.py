"""What a submission agent adds and what it cannot fix (issue 20), on whole passes over the in-memory mailbox and
the real aiosmtpd server: a missing Date is added (RFC 6409 section 8), a message without a usable From is held
with a notice, and two different messages that share one Message-ID are two messages."""

from __future__ import annotations

from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from agent.rules.envelope import parse_envelope
from tests.agent_process import MENTOR, OUTBOX, STUDENT, parse, policy_text
from tests.servers.smtp import SmtpServer
from tests.test_passes_on_fake import SENT, Pass


@pytest.fixture
def open_pass(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Pass]:
    made = Pass(tmp_path, smtp_server, policy_text())
    try:
        yield made
    finally:
        made.world.ledger.close()


def _bare(
    subject: str,
    *,
    sender: str | None = STUDENT,
    date: bool = True,
    message_id: str = "<x1@med.example.edu>",
    body: str = "Hello.",
) -> bytes:
    lines = [f"From: {sender}"] if sender is not None else []
    lines += [f"To: {MENTOR}", f"Subject: {subject}", f"Message-ID: {message_id}"]
    if date:
        lines.append("Date: Tue, 24 Nov 2026 09:00:00 +0000")
    return ("\r\n".join(lines) + f"\r\n\r\n{body}\r\n").encode()


def test_a_message_without_date_goes_with_one_added(open_pass: Pass) -> None:
    open_pass.server.put(OUTBOX, _bare("undated", date=False))
    open_pass.run()
    (received,) = open_pass.smtp.messages
    dates = parse(received.content).get_all("Date") or []
    assert len(dates) == 1 and parsedate_to_datetime(str(dates[0])).tzinfo is not None
    (filed,) = open_pass.server.messages(SENT).values()
    assert parse(filed).get_all("Date") == dates, "the Sent copy is what went"
    assert parse(received.content).get_all("Message-ID") == ["<x1@med.example.edu>"]


@pytest.mark.parametrize(
    ("sender", "missing"),
    [(None, "no From"), ("", "no From"), ("Sam Patel", "From"), ("sam at med", "From")],
    ids=["no From field", "an empty From", "a name without an address", "not an address"],
)
def test_a_message_without_a_usable_from_is_held_with_a_notice(
    open_pass: Pass, sender: str | None, missing: str
) -> None:
    open_pass.server.put(OUTBOX, _bare("who from", sender=sender))
    open_pass.run()
    open_pass.run()
    assert open_pass.smtp.messages == [], "never sent without a From"
    assert open_pass.subjects("Needs attention") == ["who from"] and open_pass.subjects(OUTBOX) == []
    (notice,) = [raw for raw in open_pass.server.messages("INBOX").values() if b"Not sent: who from" in raw]
    assert missing in parse(notice).get_content()


def _ids(open_pass: Pass) -> list[str]:
    return [str(parse(r.content)["Message-ID"]) for r in open_pass.smtp.messages]


def test_two_different_messages_sharing_a_message_id_both_go_once(open_pass: Pass) -> None:
    open_pass.server.put(OUTBOX, _bare("first of two", message_id="<same@med.example.edu>"))
    open_pass.server.put(OUTBOX, _bare("second of two", message_id="<same@med.example.edu>"))
    open_pass.run()
    open_pass.run()
    assert sorted(open_pass.received()) == ["first of two", "second of two"]
    assert len(set(_ids(open_pass))) == 2, "the mentor gets two messages, not one twice"
    assert sorted(open_pass.subjects(SENT)) == ["first of two", "second of two"]
    assert open_pass.subjects("Needs attention") == [] and open_pass.subjects(OUTBOX) == []


def test_a_different_message_reusing_a_sent_ones_message_id_goes_too(open_pass: Pass) -> None:
    open_pass.server.put(OUTBOX, _bare("sent before", message_id="<again@med.example.edu>"))
    open_pass.run()
    open_pass.server.put(OUTBOX, _bare("a new one", message_id="<again@med.example.edu>", body="Other."))
    open_pass.run()
    open_pass.run()
    assert open_pass.received() == ["sent before", "a new one"]
    assert len(set(_ids(open_pass))) == 2
    assert sorted(open_pass.subjects(SENT)) == ["a new one", "sent before"]
    assert open_pass.subjects("Needs attention") == []


def test_a_genuine_copy_is_still_recognised(open_pass: Pass) -> None:
    raw = _bare("only once", message_id="<copy@med.example.edu>")
    open_pass.server.put(OUTBOX, raw)
    open_pass.server.put(OUTBOX, raw)  # the same bytes appended twice
    open_pass.run()
    open_pass.server.put(OUTBOX, raw)  # and once more after it went
    open_pass.run()
    assert open_pass.received() == ["only once"]
    assert open_pass.subjects("Needs attention") == ["only once", "only once"]
    assert parse_envelope(next(iter(open_pass.server.messages(SENT).values()))).message_id == "<copy@med.example.edu>"


def test_a_date_that_cannot_be_read_is_held_with_a_notice(open_pass: Pass) -> None:
    raw = _bare("when", date=False).replace(b"Subject: when", b"Subject: when\r\nDate: next Tuesday-ish")
    open_pass.server.put(OUTBOX, raw)
    open_pass.run()
    assert open_pass.smtp.messages == [] and open_pass.subjects("Needs attention") == ["when"]
    (notice,) = [raw for raw in open_pass.server.messages("INBOX").values() if b"Not sent: when" in raw]
    assert "Date cannot be read" in parse(notice).get_content()
