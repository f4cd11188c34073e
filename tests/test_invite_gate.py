"""Issue 20, the gate before SMTP: no invitation leaves after its start less ``min_notice``, whatever path led it there.

A REQUEST left claimed by a crash or a stop, or one whose offer was already withdrawn (a dropped connection between
the withdrawal and its taking back), is checked right before it would be handed to SMTP: it is taken back, never
sent, the offer withdrawn and the student told (the notice survives a failed append). On the in-memory mailbox and
the real aiosmtpd server, whole daemon passes on the virtual clock (tests/test_meetings_on_fake.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path

import pytest

from agent.mail import smtp as smtp_mod
from agent.mail.session import MailboxError
from agent.reconcile import agenda_desk, delivery, meeting_desk
from agent.rules import agenda
from agent.store.ledger import CANCELLED, SCHEDULED
from tests.agent_process import OUTBOX
from tests.servers.smtp import SmtpServer
from tests.test_meetings_on_fake import Desk, chicago_noon, make
from tests.test_passes_on_fake import mail


class Killed(BaseException):
    """kill -9 at a crash point."""


@pytest.fixture
def one_offer(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Desk]:
    yield from make(tmp_path, smtp_server, strategy="sequential", proposals=1, timeout="3d")


def told(desk: Desk) -> str:
    return " ".join(" ".join(str(m.get_content()).split()) for m in desk.inbox("notice"))


def requests(desk: Desk) -> int:
    """How many invitations (REQUESTs) the mentor received."""
    methods = [
        str(part.get_param("method")).upper()
        for received in desk.smtp.messages
        for part in message_from_bytes(received.content).walk()
        if part.get_content_type() == "text/calendar"
    ]
    return methods.count("REQUEST")


def request_state(desk: Desk) -> str:
    (message_id,) = desk.world.ledger.db.execute("SELECT message_id FROM meetings").fetchone()
    (state,) = desk.world.ledger.db.execute("SELECT state FROM messages WHERE message_id = ?", (message_id,)).fetchone()
    return str(state)


def kill_at(monkeypatch: pytest.MonkeyPatch, point: str) -> None:
    def crash(name: str) -> None:
        if name == point:
            raise Killed(name)

    monkeypatch.setattr(delivery, "crash_point", crash)


@pytest.mark.parametrize("point", ["claimed", "queued"])
def test_an_invitation_left_claimed_by_a_crash_is_not_sent_after_its_deadline(
    one_offer: Desk, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    desk = one_offer
    desk.now = chicago_noon(1, desk.now)
    start = desk.propose(topic="Residency").offered[0].utc_start
    kill_at(monkeypatch, point)
    with pytest.raises(Killed):
        desk.settle()
    monkeypatch.undo()
    assert desk.subjects("Sending") and not desk.smtp.messages, "claimed, never handed to SMTP"
    desk.now = start + timedelta(hours=2)  # the machine is down until after the meeting started
    desk.restart()
    desk.settle()
    assert desk.smtp.messages == [], "the invitation never leaves late"
    assert set(desk.statuses().values()) == {"cancelled"}, desk.statuses()
    assert request_state(desk) == CANCELLED and desk.subjects("Sending") == []
    assert "could not leave 1h or more before the meeting" in told(desk), told(desk)


def test_an_invitation_claimed_again_by_a_stop_is_not_sent_after_its_deadline(
    one_offer: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    desk = one_offer
    desk.now = chicago_noon(1, desk.now)
    start = desk.propose(topic="Residency").offered[0].utc_start

    async def stopped(self: object, seconds: float) -> None:  # the stop arrives while a retry waits
        raise smtp_mod.SendStopped("stopped while waiting to try again")

    monkeypatch.setattr(smtp_mod.Sender, "_pause", stopped)
    desk.smtp.fail_next("451 4.3.0 try later")
    desk.settle(passes=1)
    monkeypatch.undo()
    assert desk.subjects("Sending") and not desk.smtp.messages
    desk.now = start + timedelta(hours=5)
    desk.restart()
    desk.settle()
    assert requests(desk) == 0
    assert set(desk.statuses().values()) == {"cancelled"} and request_state(desk) == CANCELLED


def test_a_dropped_connection_while_withdrawing_never_lets_the_invitation_go(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """The pace holds the REQUEST past its deadline: withdrawn; the student's notice of it fails to append (the
    connection drops). Back later: the REQUEST never goes (nor a CANCEL after it), and the notice still comes."""
    made = make(tmp_path, smtp_server, strategy="sequential", proposals=1, timeout="3d", min_gap="3h")
    desk = next(made)
    try:
        desk.now = chicago_noon(1, desk.now)
        # Dropped as the meeting is proposed: the desk does not know it yet (a time is offered only where the pace
        # it knows lets the invitation leave in time), and it goes first: the REQUEST waits 3 hours.
        desk.server.put(OUTBOX, mail("A question first"))
        start = desk.propose(topic="Residency").offered[0].utc_start
        desk.server.fail("append", "INBOX")  # the notice of the withdrawal
        with contextlib.suppress(MailboxError):  # the dropped connection may end the pass
            desk.settle()
        assert len(desk.smtp.messages) == 1
        desk.later(timedelta(hours=3))  # the gap is over; the meeting started
        assert desk.now > start
        desk.restart()
        desk.settle()
        desk.later(timedelta(minutes=2))  # a left-over todo is carried out again after a minute
        desk.settle()
        assert len(desk.smtp.messages) == 1 and requests(desk) == 0
        assert set(desk.statuses().values()) == {"cancelled"} and request_state(desk) == CANCELLED
        assert desk.subjects(OUTBOX) == [] and desk.subjects("Scheduled") == []
        assert "could not leave 1h or more before the meeting" in told(desk), told(desk)
    finally:
        next(made, None)


def test_agenda_questions_are_not_filed_as_sent_when_the_withdrawal_was_cut_short(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """The agenda version: the invitation carrying the second question is withdrawn, the notice's append drops, the
    agent is back a week later. The invitation never goes; the question goes back to e-mail, not filed as sent."""
    made = make(
        tmp_path, smtp_server, strategy="sequential", proposals=1, max_per_day=1, min_gap="7d", over_limit="agenda"
    )
    desk = next(made)
    try:
        desk.now = chicago_noon(1, desk.now)
        desk.server.put(OUTBOX, mail("First question"))
        desk.settle()
        desk.server.put(OUTBOX, mail("Second question"))
        dropped = False
        for step in range(6):
            if step == 1:
                desk.server.fail("append", "INBOX")
            try:
                desk.settle()
                asyncio.run(agenda_desk.pass_once(desk.world))
            except MailboxError:
                assert not dropped
                dropped = True
                desk.later(timedelta(days=7, minutes=5))
                desk.restart()
            desk.later(timedelta(minutes=1))
        assert dropped, "the notice's append failed once"
        assert requests(desk) == 0
        assert "Sent as the agenda" not in told(desk), told(desk)
        ledger = desk.world.ledger
        (key,) = [k for (k,) in ledger.db.execute("SELECT key FROM messages WHERE subject = 'Second question'")]
        row = ledger.get(key)
        as_mail = [
            m
            for m in desk.smtp.messages
            if b"text/calendar" not in m.content.lower() and b"Second question" in m.content
        ]
        assert row is not None and (row.state == SCHEDULED or as_mail), row
        assert row.state == SCHEDULED or row.detail.startswith(agenda.OFF) or as_mail, row
    finally:
        next(made, None)


def test_an_invitation_in_doubt_is_never_said_not_to_have_gone(
    one_offer: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    desk = one_offer
    desk.now = chicago_noon(1, desk.now)
    start = desk.propose(topic="Residency").offered[0].utc_start
    kill_at(monkeypatch, "sending")
    with pytest.raises(Killed):
        desk.settle()
    monkeypatch.undo()
    desk.now = start + timedelta(hours=2)
    desk.restart()
    desk.settle()
    assert desk.smtp.messages == []
    text = told(desk)
    assert "IN DOUBT" in text.upper() or "in doubt" in text, text
    assert "did not go out" not in text, text


def test_a_crash_between_taking_back_and_withdrawing_still_withdraws_the_offer_as_late(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The late REQUEST is taken back first; killed before the offer is recorded withdrawn, the next pass withdraws
    it as late (the student told why), and nothing is sent."""
    made = make(tmp_path, smtp_server, strategy="sequential", proposals=1, timeout="3d", min_gap="3h")
    desk = next(made)
    try:
        desk.now = chicago_noon(1, desk.now)
        desk.server.put(OUTBOX, mail("A question first"))  # as the meeting is proposed: the desk does not know it yet
        desk.propose(topic="Residency")

        async def killed(*_: object, **__: object) -> None:
            raise Killed("withdrawing")

        monkeypatch.setattr(meeting_desk, "_carry", killed)
        with pytest.raises(Killed):
            desk.settle()
        monkeypatch.undo()
        assert set(desk.statuses().values()) == {"planned"} and request_state(desk) == CANCELLED
        desk.restart()
        desk.settle()
        assert len(desk.smtp.messages) == 1 and requests(desk) == 0
        assert set(desk.statuses().values()) == {"cancelled"}
        assert "could not leave 1h or more before the meeting" in told(desk), told(desk)
    finally:
        next(made, None)


def test_an_invitation_left_claimed_for_an_offer_called_off_meanwhile_is_taken_back(
    one_offer: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed with the REQUEST claimed; the student calls the meeting off before the agent is back, in time: the
    REQUEST is taken out of Sending, never sent, and no CANCEL follows (nothing to cancel)."""
    desk = one_offer
    desk.now = chicago_noon(1, desk.now)
    desk.propose(topic="Residency")
    kill_at(monkeypatch, "claimed")
    with pytest.raises(Killed):
        desk.settle()
    monkeypatch.undo()
    desk.restart()
    assert asyncio.run(meeting_desk.call_off(desk.world, desk.rivera))
    desk.settle()
    assert desk.smtp.messages == [], "neither the REQUEST nor a CANCEL"
    assert request_state(desk) == CANCELLED and desk.subjects("Sending") == []
