"""Delivery, filing and crash recovery (agent/reconcile/delivery.py, sent_filing.py, recovery.py, attention.py)
on the in-memory mailbox (tests/fakes/memory_mailbox.py) and the real aiosmtpd server: seconds, not minutes.

The in-doubt paths are driven directly: a connection that drops right after a claim, SMTP accepted and then
filing in Sent failed, a message left in Sending marked ``sending`` or ``claimed`` at start, and the
answers that send a message to Needs attention. Each ends the same way: nothing lost, nothing sent twice.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.config.settings import Folders, Settings, Smtp
from agent.mail.claim import CLAIM_KEYWORD
from agent.mail.session import MailboxError
from agent.reconcile import delivery
from agent.reconcile.context import World
from agent.reconcile.delivery import Item, claim, deliver_all
from agent.reconcile.prepared import prepare
from agent.reconcile.recovery import recover
from agent.reconcile.sent_filing import SENT_WAIT, follow_filing
from agent.rules.envelope import parse_envelope
from agent.rules.policy import PolicyBook
from agent.store.ledger import (
    ACCEPTED,
    ATTENTION,
    CANCELLED,
    CLAIMED,
    DONE,
    QUEUED,
    SCHEDULED,
    SENDING,
    Ledger,
    Row,
)
from agent.store.taken_drafts import HANDED_OVER
from tests.fakes.memory_mailbox import MemoryMailbox, MemoryServer
from tests.servers.smtp import Received, SmtpServer


def message(n: int, to: str = "") -> bytes:
    return (
        f"From: Student <student@example.org>\r\nTo: {to or f'person{n}@example.org'}\r\nSubject: Question {n}\r\n"
        f"Message-ID: <d{n}.{time.monotonic_ns()}@student.example.org>\r\n"
        "Date: Tue, 24 Nov 2026 09:00:00 +0000\r\n\r\n"
        f"Hello {n}.\r\n"
    ).encode()


class Setup:
    """A World on the fake mailbox, with the real SMTP server; ``restart()`` is a new session after a crash."""

    def __init__(self, tmp_path: Path, smtp: SmtpServer, file_in_sent: str) -> None:
        self.server = MemoryServer(sent="Sent Items")
        self.box = MemoryMailbox(self.server, agent_id="here")
        self.smtp = smtp
        self.settings = Settings(
            smtp=Smtp(host="127.0.0.1", port=smtp.port, security="plain", timeout=10, file_in_sent=file_in_sent),  # type: ignore[arg-type]
            state_dir=tmp_path / "state",
            policies_dir=tmp_path,
        )
        self.now = datetime.now(UTC)  # the World's clock: tests move it on (a provider's filing deadline)
        self.world = self._world()

    def _world(self) -> World:
        folders = self.box.resolve_folders(Folders())
        ledger = Ledger(self.settings.ledger_path)
        return World(
            self.settings, self.box, folders, ledger, PolicyBook([]), smtp_login=lambda: None, clock=lambda: self.now
        )

    def provider_files_in_sent(self) -> None:
        """The SMTP server files each accepted message in Sent before it says 250, as Gmail or Microsoft do."""

        def file(received: Received) -> None:
            self.server.put("Sent Items", received.content, ["\\Seen"])

        self.smtp.state.on_accept = file

    def restart(self) -> World:
        """The daemon again after a crash: a fresh session and World over the same ledger and mailbox."""
        self.world.ledger.close()
        self.box.connect()
        self.world = self._world()
        return self.world

    def row(self, raw: bytes, folder: str, state: str = SCHEDULED) -> Row:
        """A message in ``folder`` and its ledger row, as intake leaves it."""
        uid = self.server.put(folder, raw)
        envelope = parse_envelope(raw)
        row = Row(
            key=envelope.key,
            message_id=envelope.message_id or "",
            mentor="rivera",
            subject=envelope.subject,
            sender=envelope.sender,
            recipients=envelope.recipients,
            arrived=datetime.now(UTC),
            state=state,
            folder=folder,
            uid=uid,
            due=None,
            digest=None,
            reason="",
            standalone=False,
            group_key="",
            forced=False,
            told="",
            attempts=0,
            item=None,
            sent_at=None,
            detail="",
        )
        self.world.ledger.add(row)
        return row

    def state(self, row: Row) -> str:
        found = self.world.ledger.get(row.key)
        assert found is not None
        return found.state

    def subjects(self, folder: str) -> list[str]:
        return [parse_envelope(raw).subject for raw in self.server.messages(folder).values()]

    def received(self) -> list[str]:
        return [parse_envelope(r.content).subject for r in self.smtp.messages]

    def close(self) -> None:
        self.world.ledger.close()


@pytest.fixture(params=["always"])
def setup(request: pytest.FixtureRequest, tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Setup]:
    made = Setup(tmp_path, smtp_server, request.param)
    try:
        yield made
    finally:
        made.close()


def notice(title: str, setup: Setup) -> bool:
    """Whether the student got a notice with ``title`` in INBOX (the notices folder)."""
    return any(subject.endswith(title) for subject in setup.subjects("INBOX"))


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


# -- the normal path ---------------------------------------------------------------------------------------------
def test_a_due_message_is_claimed_sent_once_and_filed_once(setup: Setup) -> None:
    rows = [setup.row(message(n), "Scheduled") for n in range(3)]
    run(deliver_all(setup.world, [Item([row]) for row in rows]))
    assert sorted(setup.received()) == ["Question 0", "Question 1", "Question 2"]
    assert sorted(setup.subjects("Sent Items")) == ["Question 0", "Question 1", "Question 2"]
    assert setup.server.messages("Sending") == {} and setup.server.messages("Scheduled") == {}
    assert [setup.state(row) for row in rows] == [DONE] * 3
    assert all("\\Seen" in setup.server.flags("Sent Items", uid) for uid in setup.server.messages("Sent Items"))


def test_a_backlog_is_filed_in_sent_in_runs_while_the_rest_still_goes_out(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery, "FILE_RUN", 2)
    in_sent_at_each_send: list[int] = []
    setup.smtp.state.on_accept = lambda _: in_sent_at_each_send.append(len(setup.server.messages("Sent Items")))
    rows = [setup.row(message(n), "Scheduled") for n in range(7)]
    run(deliver_all(setup.world, [Item([row]) for row in rows]))
    assert max(in_sent_at_each_send) > 0, "the first ones were in Sent before the last went"
    assert sorted(setup.received()) == [f"Question {n}" for n in range(7)]
    assert sorted(setup.subjects("Sent Items")) == [f"Question {n}" for n in range(7)], "each filed once"
    assert setup.server.messages("Sending") == {}
    assert [setup.state(row) for row in rows] == [DONE] * 7


def test_filing_that_fails_while_a_backlog_goes_out_stops_it_and_nothing_is_lost_or_sent_twice(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery, "FILE_RUN", 2)
    setup.smtp.state.on_accept = lambda _: time.sleep(0.05)  # a backlog that takes a while to go out
    setup.server.fail("move_many", "Sending")  # the first run's filing: the IMAP connection drops
    rows = [setup.row(message(n), "Scheduled") for n in range(12)]
    with pytest.raises(MailboxError):
        run(deliver_all(setup.world, [Item([row]) for row in rows]))
    went = len(setup.received())
    assert 2 <= went < 12, "the e-mails in flight went to their end; the rest waited"
    # Accepted (to be filed), or only queued and never handed to SMTP (recover() takes those back): none in doubt.
    assert {setup.state(row) for row in rows} == {ACCEPTED, QUEUED}
    world = setup.restart()  # the daemon reconnects after a MailboxError
    run(recover(world))  # files what was accepted; what never went waits to go again
    rest = world.ledger.in_states(SCHEDULED, CLAIMED)
    assert len(rest) == 12 - went
    run(deliver_all(world, [Item([row]) for row in rest]))
    assert sorted(setup.received()) == sorted(f"Question {n}" for n in range(12)), "each sent once"
    assert sorted(setup.subjects("Sent Items")) == sorted(f"Question {n}" for n in range(12)), "each filed once"
    assert setup.server.messages("Sending") == {}
    assert [setup.state(row) for row in rows] == [DONE] * 12
    assert not any("doubt" in subject.lower() for subject in setup.subjects("INBOX"))


class CtrlC:
    """Ctrl-C pressed from another thread (the SMTP server's, the mailbox's), once, into the loop ``deliver_all``
    runs in."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.loop: asyncio.AbstractEventLoop | None = None

    def press(self) -> None:
        loop, self.loop = self.loop, None
        if loop is not None:
            loop.call_soon_threadsafe(self.world.stopping.set)

    def deliver(self, items: list[Item]) -> None:
        async def go() -> None:
            self.loop = asyncio.get_running_loop()
            await deliver_all(self.world, items)

        run(go())


def the_rest_goes_once_after_a_restart(setup: Setup, rows: list[Row]) -> None:
    """The daemon again: what was left goes, and each of ``rows`` is then sent once and filed once."""
    world = setup.restart()
    run(recover(world))
    rest = world.ledger.in_states(SCHEDULED, CLAIMED)
    run(deliver_all(world, [Item([row]) for row in sorted(rest, key=lambda row: row.subject)]))
    assert sorted(setup.received()) == sorted(row.subject for row in rows), "each sent once"
    assert sorted(setup.subjects("Sent Items")) == sorted(row.subject for row in rows), "each filed once"
    assert [setup.state(row) for row in rows] == [DONE] * len(rows)


def later_claims_wait_for_the_first_email(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bool]]:
    """Stages of 2, then 3; each claim after the first waits (up to 5 s) until the first e-mail is accepted, as a
    backlog's later claims come while it goes out. Returns the claims made: (messages, whether one had gone)."""
    monkeypatch.setattr(delivery, "FIRST_CLAIM", 2)
    monkeypatch.setattr(delivery, "CLAIM_RUN", 3)
    first_accepted = threading.Event()
    accepted = setup.smtp.state.on_accept

    def on_accept(received: Received) -> None:
        first_accepted.set()
        if accepted is not None:
            accepted(received)

    setup.smtp.state.on_accept = on_accept
    claims: list[tuple[int, bool]] = []
    move_many = setup.box.move_many

    def claim_after_the_first(folder: str, uids: Sequence[int], target: str, *, claim: bool = True) -> Any:
        if folder == "Scheduled":
            if claims:
                first_accepted.wait(5)
            claims.append((len(uids), first_accepted.is_set()))
        return move_many(folder, uids, target, claim=claim)

    monkeypatch.setattr(setup.box, "move_many", claim_after_the_first)
    return claims


def test_a_backlog_is_claimed_in_stages_and_the_first_go_out_before_the_last_are_claimed(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    claims = later_claims_wait_for_the_first_email(setup, monkeypatch)
    rows = [setup.row(message(n), "Scheduled") for n in range(9)]
    run(deliver_all(setup.world, [Item([row]) for row in rows]))
    assert claims == [(2, False), (3, True), (3, True), (1, True)], "a first small stage, then runs, while sending"
    assert sorted(setup.received()) == [f"Question {n}" for n in range(9)], "each once"
    assert sorted(setup.subjects("Sent Items")) == [f"Question {n}" for n in range(9)], "each filed once"
    assert setup.server.messages("Sending") == {} and setup.server.messages("Scheduled") == {}
    assert [setup.state(row) for row in rows] == [DONE] * 9


def test_a_later_stages_claim_that_fails_lets_the_first_go_and_sends_each_once_after_the_restart(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first e-mail's acceptance arms a dropped connection for the next claim (the second stage's MOVE), which
    # happens on the server and whose answer is lost.
    armed: list[bool] = []

    def drop_the_next_claim(_: Received) -> None:
        if not armed:
            armed.append(True)
            setup.server.fail("move_many", "Scheduled", after=True)

    setup.smtp.state.on_accept = drop_the_next_claim
    later_claims_wait_for_the_first_email(setup, monkeypatch)
    rows = [setup.row(message(n), "Scheduled") for n in range(9)]
    with pytest.raises(MailboxError):
        run(deliver_all(setup.world, [Item([row]) for row in rows]))
    went = setup.received()
    assert sorted(went) == ["Question 0", "Question 1"], "the first stage went out, and nothing else"
    assert not any("doubt" in subject.lower() for subject in setup.subjects("INBOX"))
    the_rest_goes_once_after_a_restart(setup, rows)
    assert setup.server.messages("Sending") == {} and setup.server.messages("Scheduled") == {}


def test_stopped_while_a_backlog_goes_out_the_stages_not_claimed_stay_where_they_were(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctrl_c = CtrlC(setup.world)
    setup.smtp.state.on_accept = lambda _: ctrl_c.press()  # as the first e-mail is accepted
    later_claims_wait_for_the_first_email(setup, monkeypatch)
    rows = [setup.row(message(n), "Scheduled") for n in range(9)]
    ctrl_c.deliver([Item([row]) for row in rows])
    went = len(setup.received())
    assert 1 <= went < 9
    untouched = [row for row in rows if setup.state(row) == SCHEDULED]
    assert untouched, "a stage never claimed keeps its state"
    assert all(
        parse_envelope(raw).subject in {row.subject for row in untouched}
        for raw in setup.server.messages("Scheduled").values()
    )
    the_rest_goes_once_after_a_restart(setup, rows)


def test_a_backlog_held_by_the_daily_limit_claims_no_further_stage(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery, "FIRST_CLAIM", 2)
    monkeypatch.setattr(delivery, "CLAIM_RUN", 3)
    world = setup.world
    world.settings = world.settings.model_copy(
        update={"smtp": world.settings.smtp.model_copy(update={"max_per_day": 1})}
    )
    claims: list[int] = []
    move_many = setup.box.move_many

    def claim_once_held(folder: str, uids: Sequence[int], target: str, *, claim: bool = True) -> Any:
        if folder == "Scheduled":
            for _ in range(500):  # a later stage's claim is under way when the sending is held
                if not claims or world.held_until is not None:
                    break
                time.sleep(0.01)
            claims.append(len(uids))
        return move_many(folder, uids, target, claim=claim)

    monkeypatch.setattr(setup.box, "move_many", claim_once_held)
    rows = [setup.row(message(n), "Scheduled") for n in range(9)]
    run(deliver_all(world, [Item([row]) for row in rows]))
    assert len(setup.received()) == 1 and world.held_until is not None
    assert claims == [2, 3], "the stage under way was claimed; none after the hold"
    assert len(setup.server.messages("Scheduled")) == 4, "the later stages stay where they were"
    assert [setup.state(row) for row in rows[5:]] == [SCHEDULED] * 4, "untouched"


def test_stopped_while_the_first_stage_is_claimed_no_later_stage_is_claimed(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery, "FIRST_CLAIM", 2)
    monkeypatch.setattr(delivery, "CLAIM_RUN", 3)
    rows = [setup.row(message(n), "Scheduled") for n in range(9)]
    for row in rows[:2]:  # the first stage is gone (she deleted it) ...
        assert row.uid is not None
        setup.server.folders["Scheduled"].messages.pop(row.uid)
    ctrl_c = CtrlC(setup.world)
    move_many = setup.box.move_many

    def stop_during_the_first_claim(folder: str, uids: Sequence[int], target: str, *, claim: bool = True) -> Any:
        ctrl_c.press()  # ... and Ctrl-C comes while it is being claimed
        return move_many(folder, uids, target, claim=claim)

    monkeypatch.setattr(setup.box, "move_many", stop_during_the_first_claim)
    ctrl_c.deliver([Item([row]) for row in rows])
    assert setup.received() == [] and setup.server.messages("Sending") == {}
    assert len(setup.server.messages("Scheduled")) == 7 and [setup.state(row) for row in rows[2:]] == [SCHEDULED] * 7


def test_a_message_another_agent_claimed_is_left_to_it(setup: Setup) -> None:
    ours, theirs = setup.row(message(1), "Scheduled"), setup.row(message(2), "Scheduled")
    assert theirs.uid is not None
    setup.server.folders["Scheduled"].messages[theirs.uid].flags.add(CLAIM_KEYWORD + "laptop2")
    run(deliver_all(setup.world, [Item([ours]), Item([theirs])]))
    assert setup.received() == ["Question 1"]
    assert setup.state(theirs) == CANCELLED, "the other agent sends it; this one forgets it"
    assert setup.subjects("Scheduled") == ["Question 2"], "left where it was, for the other agent"


# -- in doubt, and recovered -------------------------------------------------------------------------------------
def test_a_connection_drop_right_after_the_claim_sends_once_after_the_restart(setup: Setup) -> None:
    row = setup.row(message(1), "Scheduled")
    setup.server.fail("move_many", "Scheduled", after=True)  # the MOVE happened; the answer was lost
    with pytest.raises(MailboxError):
        run(deliver_all(setup.world, [Item([row])]))
    assert setup.received() == [] and setup.subjects("Sending") == ["Question 1"]
    assert setup.state(row) == CLAIMED
    world = setup.restart()
    run(recover(world))
    again = world.ledger.get(row.key)
    assert again is not None and again.folder == "Sending" and again.state == CLAIMED
    run(deliver_all(world, [Item([again])]))
    assert setup.received() == ["Question 1"]
    assert setup.subjects("Sent Items") == ["Question 1"] and setup.server.messages("Sending") == {}
    assert setup.state(row) == DONE


def test_accepted_but_filing_in_sent_failed_is_filed_once_at_the_restart(setup: Setup) -> None:
    row = setup.row(message(1), "Scheduled")
    setup.server.fail("move_many", "Sending")  # Sending -> Sent: the connection drops
    with pytest.raises(MailboxError):
        run(deliver_all(setup.world, [Item([row])]))
    assert setup.received() == ["Question 1"]
    assert setup.state(row) == ACCEPTED, "the server said yes: never sent again"
    world = setup.restart()
    setup.server.fail("append", "Sent Items")  # and the first try to file it fails too
    run(recover(world))
    assert setup.state(row) == ACCEPTED, "still to be filed"
    world = setup.restart()  # the daemon reconnects after a MailboxError
    run(recover(world))
    assert setup.received() == ["Question 1"], "sent once"
    assert setup.subjects("Sent Items") == ["Question 1"], "filed once"
    assert setup.server.messages("Sending") == {}
    assert setup.state(row) == DONE


def test_a_message_left_sending_at_start_goes_to_needs_attention_in_doubt(setup: Setup) -> None:
    row = setup.row(message(1), "Sending", state=SENDING)
    world = setup.restart()
    run(recover(world))
    assert setup.received() == [], "never sent a second time by itself"
    assert setup.subjects("Needs attention") == ["Question 1"]
    assert setup.state(row) == ATTENTION
    assert notice("In doubt: Question 1", setup)


def test_a_claim_left_in_sending_at_start_is_sent_once(setup: Setup) -> None:
    row = setup.row(message(1), "Sending", state=CLAIMED)
    world = setup.restart()
    run(recover(world))
    claimed = run(claim(world, [world.ledger.get(row.key) or row]))
    assert list(claimed) == [row.key]
    run(deliver_all(world, [Item([claimed[row.key]])]))
    assert setup.received() == ["Question 1"]
    assert setup.subjects("Sent Items") == ["Question 1"]
    assert setup.state(row) == DONE


def test_a_claim_whose_message_went_back_is_scheduled_again(setup: Setup) -> None:
    row = setup.row(message(1), "Scheduled", state=CLAIMED)  # claimed in the ledger, never moved
    world = setup.restart()
    run(recover(world))
    assert setup.state(row) == SCHEDULED and setup.received() == []


def test_the_line_cut_after_data_is_in_doubt_and_not_sent_again(setup: Setup) -> None:
    row = setup.row(message(1), "Scheduled")
    setup.smtp.drop_after_data()
    run(deliver_all(setup.world, [Item([row])]))
    assert setup.state(row) == ATTENTION
    assert setup.subjects("Needs attention") == ["Question 1"]
    assert notice("In doubt: Question 1", setup)
    run(recover(setup.restart()))
    assert len(setup.received()) == 1


def test_a_refusal_goes_to_needs_attention_and_a_temporary_failure_is_retried_once(setup: Setup) -> None:
    refused, later = setup.row(message(1), "Scheduled"), setup.row(message(2), "Scheduled")
    setup.smtp.fail_next("550 5.7.1 not allowed")
    run(deliver_all(setup.world, [Item([refused])]))
    setup.smtp.fail_next("451 4.3.0 try again later")
    run(deliver_all(setup.world, [Item([later])]))
    assert setup.state(refused) == ATTENTION and setup.subjects("Needs attention") == ["Question 1"]
    assert setup.state(later) == DONE and setup.received() == ["Question 2"], "a 451 retried, sent once"
    assert notice("Not sent: Question 1", setup)


def test_one_messages_failure_never_cuts_another_short_into_doubt(setup: Setup) -> None:
    other, failing = setup.row(message(1), "Scheduled"), setup.row(message(2, "nobody@example.org"), "Scheduled")
    setup.smtp.state.on_accept = lambda _: time.sleep(0.3)  # its "250" still to come when the other one fails
    setup.smtp.refuse("nobody@example.org", "550 5.1.1 no such user")
    setup.server.fail("move_many", "Sending")  # filing the refused one in Needs attention fails: the IMAP link broke
    with pytest.raises(MailboxError):
        run(deliver_all(setup.world, [Item([other]), Item([failing])]))
    assert setup.state(other) == ACCEPTED, "its own transaction went to the end"
    run(recover(setup.restart()))
    assert setup.state(other) == DONE and setup.received() == ["Question 1"]
    assert not notice("In doubt: Question 1", setup)


# -- a provider that files what it accepts in Sent ([smtp] file_in_sent = "auto") ---------------------------------
@pytest.fixture
def auto(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Setup]:
    made = Setup(tmp_path, smtp_server, "auto")
    try:
        yield made
    finally:
        made.close()


def test_where_the_provider_files_sent_mail_the_agent_files_no_second_copy(auto: Setup) -> None:
    auto.provider_files_in_sent()
    row = auto.row(message(1), "Scheduled")
    run(deliver_all(auto.world, [Item([row])]))
    assert auto.received() == ["Question 1"]
    assert auto.subjects("Sent Items") == ["Question 1"], "the provider's copy, and no second one"
    assert auto.server.messages("Sending") == {}
    assert auto.state(row) == DONE and auto.world.provider_files_sent is True


def test_where_the_provider_does_not_file_the_agent_files_after_the_wait(auto: Setup) -> None:
    row = auto.row(message(1), "Scheduled")
    run(deliver_all(auto.world, [Item([row])]))
    assert auto.subjects("Sent Items") == [] and auto.state(row) == ACCEPTED, "waiting for the provider's copy"
    assert run(follow_filing(auto.world)) is not None, "looked for again soon"
    auto.now += SENT_WAIT
    run(follow_filing(auto.world))
    assert auto.subjects("Sent Items") == ["Question 1"] and auto.server.messages("Sending") == {}
    assert auto.state(row) == DONE and auto.world.provider_files_sent is False
    assert auto.received() == ["Question 1"]


def test_sending_at_start_with_the_providers_copy_in_sent_was_accepted(auto: Setup) -> None:
    raw = message(1)
    row = auto.row(raw, "Sending", state=SENDING)
    auto.server.put("Sent Items", raw, ["\\Seen"])  # the provider filed it: the server did accept it
    world = auto.restart()
    run(recover(world))
    assert auto.state(row) == DONE, "proved sent: not in doubt"
    assert auto.subjects("Sent Items") == ["Question 1"] and auto.server.messages("Sending") == {}
    assert auto.subjects("Needs attention") == [] and auto.received() == []


# -- digests (agent/reconcile/digest_delivery.py) ----------------------------------------------------------------
def test_a_digest_goes_as_one_email_and_only_the_digest_is_filed(setup: Setup) -> None:
    rows = [setup.row(message(n, "rivera@example.org"), "Scheduled") for n in range(3)]
    run(deliver_all(setup.world, [Item(rows)]))
    assert len(setup.smtp.messages) == 1, "one e-mail for the three"
    (filed,) = setup.server.messages("Sent Items").values()
    assert all(f"Question {n}".encode() in filed for n in range(3))
    assert setup.server.messages("Sending") == {}
    assert [setup.state(row) for row in rows] == [DONE] * 3
    assert not list((setup.settings.state_dir / "digests").glob("*.eml")), "the kept copy is let go once filed"


def test_a_signed_part_in_a_release_goes_alone_as_written_and_the_student_is_told(setup: Setup) -> None:
    signed = (
        "From: Student <student@example.org>\r\nTo: rivera@example.org\r\nSubject: Wrapped signature\r\n"
        "Date: Mon, 23 Nov 2026 09:00:00 -0500\r\n"  # as every mail program writes it: nothing to add
        f"Message-ID: <w.{time.monotonic_ns()}@student.example.org>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="w"\r\n\r\n--w\r\n'
        'Content-Type: multipart/signed; protocol="application/pgp-signature"; boundary="s"\r\n\r\n'
        "--s\r\nContent-Type: text/plain\r\n\r\nSigned words.\r\n--s\r\n"
        "Content-Type: application/pgp-signature\r\n\r\n-----BEGIN PGP SIGNATURE-----\r\nx\r\n"
        "-----END PGP SIGNATURE-----\r\n--s--\r\n--w--\r\n"
    ).encode()
    rows = [setup.row(message(0, "rivera@example.org"), "Scheduled"), setup.row(signed, "Scheduled")]
    rows.append(setup.row(message(1, "rivera@example.org"), "Scheduled"))
    run(deliver_all(setup.world, [Item(rows)]))
    contents = [r.content for r in setup.smtp.messages]
    assert len(contents) == 2 and contents.count(signed) == 1, "the signed one alone, byte for byte"
    digest = next(c for c in contents if c != signed)
    assert b"Question 0" in digest and b"Question 1" in digest and b"Signed words" not in digest
    assert notice("Sent on its own, as you wrote it: Wrapped signature", setup)
    assert [setup.state(row) for row in rows] == [DONE] * 3


def test_a_draft_handed_over_by_a_door_goes_in_a_digest_without_its_draft_fields_and_old_date(setup: Setup) -> None:
    """As when it goes alone (agent/reconcile/prepared.py): what its mail program kept on the draft stays home."""
    draft = (
        "From: Student <student@example.org>\r\nTo: rivera@example.org\r\nSubject: Started on Monday\r\n"
        f"Message-ID: <draft.{time.monotonic_ns()}@student.example.org>\r\nDate: Mon, 30 Nov 2026 07:10:00 -0500\r\n"
        "X-Mozilla-Draft-Info: internal/draft; vcard=0\r\nX-Uniform-Type-Identifier: com.apple.mail-draft\r\n"
        "X-Apple-Auto-Saved: 1\r\nFcc: imap://student@example.org/Sent\r\n\r\nA question begun on Monday.\r\n"
    ).encode()
    rows = [setup.row(message(0, "rivera@example.org"), "Scheduled"), setup.row(draft, "Scheduled")]
    setup.world.ledger.log(HANDED_OVER, message=rows[1].key)
    run(deliver_all(setup.world, [Item(rows)]))
    (digest,) = [r.content for r in setup.smtp.messages]
    assert b"A question begun on Monday" in digest
    for kept in (b"X-Mozilla-Draft-Info", b"com.apple.mail-draft", b"X-Apple-Auto-Saved", b"Fcc", b"30 Nov", b"07:10"):
        assert kept not in digest


def test_a_digest_accepted_and_not_filed_is_filed_from_the_kept_copy_at_the_restart(setup: Setup) -> None:
    rows = [setup.row(message(n, "rivera@example.org"), "Scheduled") for n in range(2)]
    setup.server.fail("append", "Sent Items")
    with pytest.raises(MailboxError):
        run(deliver_all(setup.world, [Item(rows)]))
    assert [setup.state(row) for row in rows] == [ACCEPTED] * 2
    assert setup.server.messages("Sent Items") == {}
    run(recover(setup.restart()))
    assert len(setup.smtp.messages) == 1, "sent once"
    (filed,) = setup.server.messages("Sent Items").values()
    assert b"Question 0" in filed and b"Question 1" in filed, "the digest as it went, from the kept copy"
    assert setup.server.messages("Sending") == {}
    assert [setup.state(row) for row in rows] == [DONE] * 2


def test_outlooks_unsent_mark_stays_home_when_a_handed_over_draft_goes_alone(setup: Setup) -> None:
    """Outlook marks a draft ``X-Unsent: 1``: a message carrying it opens at the mentor's as a draft to edit."""
    draft = (
        "From: Student <student@example.org>\r\nTo: rivera@example.org\r\nSubject: Begun in Outlook\r\n"
        f"Message-ID: <draft.{time.monotonic_ns()}@student.example.org>\r\nX-Unsent: 1\r\n\r\nA question.\r\n"
    ).encode()
    row = setup.row(draft, "Scheduled")
    assert b"X-Unsent" not in prepare(draft, row, draft=True).wire


def test_the_agenda_tag_does_not_reach_the_mentor_when_a_question_goes_by_e_mail(setup: Setup) -> None:
    """ "[agenda]" asks the agent for an agenda; a question that goes by e-mail after all (flagged, back from a round
    that ended, a reply to her) carried the tag into her Subject. Written in an encoded word, it is left as it is."""
    raw = (
        "From: Student <student@example.org>\r\nTo: rivera@example.org\r\nSubject: [agenda] Poster feedback\r\n"
        f"Message-ID: <tag.{time.monotonic_ns()}@student.example.org>\r\n\r\nThe [agenda] stays in the text.\r\n"
    ).encode()
    row = setup.row(raw, "Scheduled")
    assert row.mentor is not None
    prepared = prepare(raw, row)
    assert b"\r\nSubject: Poster feedback\r\n" in prepared.wire and b"The [agenda] stays" in prepared.wire
    assert b"\r\nSubject: [agenda] Poster feedback\r\n" in prepare(raw, replace(row, mentor=None)).wire, "not to her"
