"""A digest split into several e-mails ([digest] max_bytes) and a crash while it goes: after ``recover`` every
part the server accepted is in Sent exactly once, the part that was in flight is *in doubt* (the student is
told), and the messages of the parts never started go back to Scheduled and are sent once more, together —
never twice, never lost. The same when the server fails part-way while the daemon runs (a refusal, a temporary
failure, a lost answer). That they go again as one digest under the mentor's rules, with her policy loaded, is
in tests/test_split_digest_rest.py.

On the in-memory mailbox (tests/fakes/memory_mailbox.py) and the real aiosmtpd server; the daemon's crash points
(agent/crashpoints.py) are made to raise here instead of killing the process. The same with a real daemon killed
at a crash point is in tests/test_split_digest_crash.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest

from agent.config.settings import Digest
from agent.mail.smtp import Delivery, Sender
from agent.reconcile.delivery import Item, deliver_all
from agent.reconcile.digest_delivery import (
    PART_ACCEPTED,
    PART_SENDING,
    Part,
    forget,
    load_parts,
    mark_part,
    save_parts,
    saved_path,
)
from agent.reconcile.recovery import recover
from agent.store.ledger import ACCEPTED, ATTENTION, CLAIMED, DONE, SCHEDULED, Row
from tests.servers.smtp import SmtpServer
from tests.test_delivery_on_fake import Setup, notice

PARTS = 3


class Crash(BaseException):
    """The daemon killed at a crash point (SIGKILL in production): nothing after it runs."""


def big(n: int) -> bytes:
    """A message to Rivera about 6 kB long: with max_bytes = 10 000 each goes in a digest part of its own."""
    body = "".join(f"Line {i} of question {n}, long enough to fill the part.\r\n" for i in range(110))
    return (
        f"From: Student <student@example.org>\r\nTo: rivera@example.org\r\nSubject: Question {n}\r\n"
        f"Message-ID: <s{n}.{time.monotonic_ns()}@student.example.org>\r\n"
        f"Date: Tue, 24 Nov 2026 09:00:00 +0000\r\n\r\n{body}"
    ).encode()


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def _split_setup(tmp_path: Path, smtp: SmtpServer, file_in_sent: str) -> Setup:
    made = Setup(tmp_path, smtp, file_in_sent)
    made.world.ledger.close()
    made.settings = made.settings.model_copy(update={"digest": Digest(max_bytes=10_000)})
    made.world = made._world()
    return made


@pytest.fixture
def split(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Setup]:
    made = _split_setup(tmp_path, smtp_server, "always")
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def auto(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Setup]:
    made = _split_setup(tmp_path, smtp_server, "auto")
    try:
        yield made
    finally:
        made.close()


def crash_at(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    def crash_point(point: str) -> None:
        if point == name:
            raise Crash(point)

    monkeypatch.setattr("agent.reconcile.delivery.crash_point", crash_point)


def crash_in_send(monkeypatch: pytest.MonkeyPatch, number: int) -> None:
    """The ``number``-th SMTP transaction: the server accepts it, and the daemon dies before it hears "250"."""
    real = Sender.send
    calls = [0]

    async def send(self: Sender, raw: bytes, sender: str, recipients: list[str]) -> Delivery:
        calls[0] += 1
        delivery = await real(self, raw, sender, recipients)
        if calls[0] == number:
            raise Crash("in send")
        return delivery

    monkeypatch.setattr(Sender, "send", send)


def release(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> list[Row]:
    """Three messages due together, as one release of three e-mails, until the daemon dies; then it is whole."""
    rows = [setup.row(big(n), "Scheduled") for n in range(PARTS)]
    with pytest.raises(Crash):
        run(deliver_all(setup.world, [Item(rows)]))
    monkeypatch.undo()
    return rows


def carried(raw: bytes) -> list[str]:
    """Which questions an e-mail carries (a digest part, or a message sent on its own)."""
    text = message_from_bytes(raw).as_string()
    return [f"Question {n}" for n in range(PARTS) if f"question {n}," in text]


def questions_received(setup: Setup) -> list[str]:
    return sorted(q for received in setup.smtp.messages for q in carried(received.content))


def questions_filed(setup: Setup) -> list[str]:
    return sorted(q for raw in setup.server.messages("Sent Items").values() for q in carried(raw))


def kept_files(setup: Setup) -> list[Path]:
    return list(saved_path(setup.world, "x").parent.glob("*"))


def send_again(setup: Setup) -> None:
    """What the daemon does next: the messages given back to Scheduled go out again, as one release (the engine
    batches them; with the mentor's policy this is tests/test_split_digest_rest.py), and any left claimed."""
    ledger = setup.world.ledger
    waiting = ledger.in_states(SCHEDULED)
    items = [Item([row]) for row in ledger.in_states(CLAIMED)] + ([Item(waiting)] if waiting else [])
    run(deliver_all(setup.world, items))


def states(setup: Setup, rows: list[Row]) -> list[str]:
    return [setup.state(row) for row in rows]


# -- crash after every part was accepted, before filing --------------------------------------------------------
def test_every_accepted_part_is_filed_in_sent_once_after_a_crash(split: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    crash_at(monkeypatch, "accepted")
    rows = release(split, monkeypatch)
    assert len(split.smtp.messages) == PARTS, "the release went as three e-mails"
    assert states(split, rows) == [ACCEPTED] * PARTS
    assert split.server.messages("Sent Items") == {}
    run(recover(split.restart()))
    assert len(split.server.messages("Sent Items")) == PARTS, "every part in Sent, not the first one only"
    assert questions_filed(split) == ["Question 0", "Question 1", "Question 2"]
    assert len(split.smtp.messages) == PARTS, "nothing sent again"
    assert split.server.messages("Sending") == {} and split.server.messages("Needs attention") == {}
    assert states(split, rows) == [DONE] * PARTS
    assert kept_files(split) == [], "the kept copies are let go once filed"


def test_a_second_recovery_files_nothing_twice(split: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    crash_at(monkeypatch, "accepted")
    rows = release(split, monkeypatch)
    world = split.restart()
    split.server.fail("append", "Sent Items", after=True)  # the first part's APPEND is done; the answer is lost
    run(recover(world))
    assert states(split, rows) == [ACCEPTED] * PARTS, "still to be filed"
    run(recover(split.restart()))  # the daemon reconnects after a MailboxError
    assert questions_filed(split) == ["Question 0", "Question 1", "Question 2"], "each part once"
    assert states(split, rows) == [DONE] * PARTS


# -- crash between parts -----------------------------------------------------------------------------------------
def test_parts_never_started_are_sent_once_after_the_restart(split: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    crash_at(monkeypatch, "part_accepted")  # the first part was accepted; the second never began
    rows = release(split, monkeypatch)
    assert len(split.smtp.messages) == 1
    run(recover(split.restart()))
    assert questions_filed(split) == ["Question 0"], "the accepted part is in Sent"
    assert states(split, rows) == [DONE, SCHEDULED, SCHEDULED], "back to the engine, to go as one digest again"
    assert sorted(split.subjects("Scheduled")) == ["Question 1", "Question 2"]
    assert split.subjects("Needs attention") == [], "nothing was in doubt"
    send_again(split)
    assert questions_received(split) == ["Question 0", "Question 1", "Question 2"], "each once"
    assert questions_filed(split) == ["Question 0", "Question 1", "Question 2"]
    assert states(split, rows) == [DONE] * PARTS
    assert split.server.messages("Sending") == {}


def test_the_part_in_flight_is_in_doubt_and_the_student_is_told(split: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    crash_in_send(monkeypatch, 2)  # the server took the second part; the daemon died before it heard so
    rows = release(split, monkeypatch)
    assert len(split.smtp.messages) == 2
    run(recover(split.restart()))
    assert questions_filed(split) == ["Question 0"]
    assert states(split, rows) == [DONE, ATTENTION, SCHEDULED]
    assert split.subjects("Needs attention") == ["Question 1"], "still visible, in one place"
    assert notice("In doubt: Question 1", split)
    send_again(split)
    assert questions_received(split) == ["Question 0", "Question 1", "Question 2"], "nothing twice"
    assert split.server.messages("Sending") == {}


def test_a_part_the_provider_filed_was_accepted(auto: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    auto.provider_files_in_sent()
    crash_in_send(monkeypatch, 2)
    rows = release(auto, monkeypatch)
    run(recover(auto.restart()))
    assert states(auto, rows) == [DONE, DONE, SCHEDULED], "the provider's copy proves the second part went"
    assert questions_filed(auto) == ["Question 0", "Question 1"], "the provider's copies, no second ones"
    assert auto.subjects("Needs attention") == []
    send_again(auto)
    assert questions_received(auto) == ["Question 0", "Question 1", "Question 2"]


def test_a_crash_before_the_first_part_sends_it_all_once(split: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    crash_at(monkeypatch, "sending")
    rows = release(split, monkeypatch)
    assert split.smtp.messages == []
    run(recover(split.restart()))
    assert states(split, rows) == [SCHEDULED] * PARTS, "never handed to SMTP: safe to send, as one digest again"
    assert split.subjects("Needs attention") == []
    send_again(split)
    assert questions_received(split) == ["Question 0", "Question 1", "Question 2"]
    assert states(split, rows) == [DONE] * PARTS


# -- the server fails part-way, with the daemon running --------------------------------------------------------------
def refuse_mail_from(setup: Setup, reply: str, *, from_: int, to: int) -> None:
    """Answer MAIL FROM number ``from_`` to ``to`` (1-based, counting every attempt) with ``reply``."""
    count = [0]

    def gate(stage: str, _: int) -> str | None:
        if stage != "MAIL":
            return None
        count[0] += 1
        return reply if from_ <= count[0] <= to else None

    setup.smtp.state.gate = gate


def test_a_part_refused_after_others_went_files_those_and_tells_only_its_messages(
    split: Setup,
) -> None:
    refuse_mail_from(split, "550 5.7.1 not allowed", from_=2, to=2)
    rows = [split.row(big(n), "Scheduled") for n in range(PARTS)]
    run(deliver_all(split.world, [Item(rows)]))
    assert questions_filed(split) == ["Question 0"], "the part that went is in Sent"
    assert states(split, rows) == [DONE, ATTENTION, SCHEDULED]
    assert split.subjects("Needs attention") == ["Question 1"]
    assert notice("Not sent: Question 1", split) and not notice("Not sent: Question 0", split)
    send_again(split)
    assert questions_received(split) == ["Question 0", "Question 2"], "each once; the refused one not at all"
    assert split.server.messages("Sending") == {}
    assert kept_files(split) == []


def test_a_part_failing_for_a_while_after_others_went_is_retried_without_them(
    split: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_pause(_: Sender, __: float) -> None:
        return None

    monkeypatch.setattr(Sender, "_pause", no_pause)
    refuse_mail_from(split, "451 4.3.0 try again later", from_=2, to=99)
    rows = [split.row(big(n), "Scheduled") for n in range(PARTS)]
    run(deliver_all(split.world, [Item(rows)]))
    assert questions_filed(split) == ["Question 0"]
    assert states(split, rows)[0] == DONE
    assert sorted(split.subjects("Scheduled")) == ["Question 1", "Question 2"], "back to wait, to go again"
    split.smtp.state.gate = None
    run(deliver_all(split.world, [Item([split.world.ledger.get(r.key) or r for r in rows[1:]])]))
    assert questions_received(split) == ["Question 0", "Question 1", "Question 2"], "Question 0 not twice"
    assert questions_filed(split) == ["Question 0", "Question 1", "Question 2"]
    assert states(split, rows) == [DONE] * PARTS
    assert kept_files(split) == []


def test_the_parts_list_is_private_marked_on_disk_and_let_go_with_the_copies(split: Setup) -> None:
    world = split.world
    parts = [Part("<p1@x.org>", ("a", "b")), Part("<p2@x.org>", ("c",))]
    save_parts(world, "<p1@x.org>", parts)
    mark_part(world, "<p1@x.org>", 0, PART_SENDING)
    mark_part(world, "<p1@x.org>", 0, PART_ACCEPTED)
    mark_part(world, "<p1@x.org>", 1, PART_SENDING)
    assert load_parts(world, "<p1@x.org>") == [
        Part("<p1@x.org>", ("a", "b"), PART_ACCEPTED),
        Part("<p2@x.org>", ("c",), PART_SENDING),
    ]
    (kept,) = kept_files(split)
    assert kept.stat().st_mode & 0o777 == 0o600
    forget(world, "<p1@x.org>")
    assert load_parts(world, "<p1@x.org>") is None and kept_files(split) == []
    assert load_parts(world, "<never@x.org>") is None


def test_a_part_whose_answer_was_lost_is_in_doubt_and_only_its_messages(split: Setup) -> None:
    count = [0]

    def gate(stage: str, _: int) -> str | None:
        if stage == "MAIL":
            count[0] += 1
            if count[0] == 2:  # the second e-mail: stored by the server, then the line goes dead
                split.smtp.drop_after_data()
        return None

    split.smtp.state.gate = gate
    rows = [split.row(big(n), "Scheduled") for n in range(PARTS)]
    run(deliver_all(split.world, [Item(rows)]))
    assert questions_filed(split) == ["Question 0"]
    assert states(split, rows) == [DONE, ATTENTION, SCHEDULED]
    assert notice("In doubt: Question 1", split) and split.subjects("Needs attention") == ["Question 1"]
    split.smtp.state.gate = None
    send_again(split)
    assert questions_received(split) == ["Question 0", "Question 1", "Question 2"], "each once"
    assert split.server.messages("Sending") == {} and kept_files(split) == []
