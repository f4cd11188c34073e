"""The messages of the parts of a split digest that were never started, after a crash or a failure part-way:
they go back to the pacing engine's queue (Scheduled, untouched, in their place by arrival) and go again as
one digest — the remaining parts of that release, decided by the mentor's rules like any release — never as
one e-mail per message at once. A refused login part-way puts them back to Scheduled (no Needs attention)
with one notice, and the parts that went are in Sent.

On the in-memory mailbox (tests/fakes/memory_mailbox.py) with one mentor's policy, and the real aiosmtpd
server; whole daemon passes (intake.carry_out) after the failure, so what the mentor gets is what the daemon
would send. The crash itself is in tests/test_split_digest_recovery.py; with a real daemon in
tests/test_split_digest_crash.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest

from agent.config.settings import Digest
from agent.errors import LoginRefused
from agent.mail.smtp import Delivery, Sender, SendStopped
from agent.reconcile.context import World
from agent.reconcile.delivery import Item, deliver_all
from agent.reconcile.digest_delivery import PART_ACCEPTED
from agent.reconcile.digest_delivery import mark_part as mark
from agent.reconcile.history import Seen, scan_sent
from agent.reconcile.intake import carry_out, know_mentors
from agent.reconcile.recovery import recover
from agent.rules.policy import PolicyBook, load_policies
from agent.store.ledger import ATTENTION, DONE, SCHEDULED, Row
from agent.store.status import collect
from tests.agent_process import MENTOR, policy_text
from tests.servers.smtp import SmtpServer
from tests.test_delivery_on_fake import Setup, notice

MESSAGES = 6  # two to a part: a release of three e-mails


class Crash(BaseException):
    """The daemon killed at a crash point (SIGKILL in production): nothing after it runs."""


class Paced(Setup):
    """The fake-mailbox World of tests/test_delivery_on_fake.py, with Rivera's policy (batching) loaded."""

    def __init__(self, tmp_path: Path, smtp: SmtpServer, policy: str) -> None:
        (tmp_path / "rivera.toml").write_text(policy)
        super().__init__(tmp_path, smtp, "always")
        # Mid-week and mid-day in Chicago, whatever the wall clock says: a run at her week's turn (Monday 00:00
        # there) counted this week's e-mails as last week's.
        self.now = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)
        self.world.ledger.close()
        self.settings = self.settings.model_copy(update={"digest": Digest(max_bytes=10_000)})
        self.world = self._world()

    def _world(self) -> World:
        world = super()._world()
        world.book = PolicyBook(load_policies(self.settings.policies_dir))
        know_mentors(world)
        return world

    def passes(self, count: int = 4, step: timedelta = timedelta(minutes=1)) -> None:
        """The daemon's next passes, the clock moving on between them."""
        for _ in range(count):
            run(carry_out(self.world))
            self.now += step


def question(n: int) -> bytes:
    """A message to Rivera about 3 kB long: with max_bytes = 10 000, two of them fill one digest part."""
    body = "".join(f"Line {i} of question {n}, long enough to fill the part.\r\n" for i in range(60))
    return (
        f"From: Student <student@example.org>\r\nTo: {MENTOR}\r\nSubject: Question {n}\r\n"
        f"Message-ID: <q{n}.{time.monotonic_ns()}@student.example.org>\r\n"
        f"Date: Tue, 24 Nov 2026 09:00:00 +0000\r\n\r\n{body}"
    ).encode()


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


@pytest.fixture
def paced(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Paced]:
    made = Paced(tmp_path, smtp_server, policy_text(over_limit="batch"))
    try:
        yield made
    finally:
        made.close()


def carried(raw: bytes) -> list[str]:
    text = message_from_bytes(raw).as_string()
    return [f"Question {n}" for n in range(10) if f"question {n}," in text]


def emails(setup: Setup) -> list[list[str]]:
    """What the mentor got: the questions each e-mail carried, in order."""
    return [carried(received.content) for received in setup.smtp.messages]


def questions_filed(setup: Setup) -> list[str]:
    return sorted(q for raw in setup.server.messages("Sent Items").values() for q in carried(raw))


ALL = [f"Question {n}" for n in range(MESSAGES)]


def release(setup: Paced) -> list[Row]:
    rows = [setup.row(question(n), "Scheduled") for n in range(MESSAGES)]
    ledger = setup.world.ledger
    for n, row in enumerate(rows):  # waiting a while, in this order
        ledger.update(row.key, arrived=setup.now - timedelta(hours=1) + timedelta(seconds=n))
    return [ledger.get(row.key) or row for row in rows]


def states(setup: Setup, rows: list[Row]) -> list[str]:
    return [setup.state(row) for row in rows]


def kept(setup: Setup) -> list[str]:
    """The copies and part lists kept for recovery (agent/reconcile/digest_delivery.py): let go once done."""
    return sorted(path.name for path in (setup.settings.state_dir / "digests").glob("*"))


def test_the_release_goes_as_three_emails_of_two(paced: Paced) -> None:
    rows = release(paced)
    run(deliver_all(paced.world, [Item(rows)]))
    assert emails(paced) == [ALL[0:2], ALL[2:4], ALL[4:6]], "the plan the other tests count against"


def test_after_a_crash_between_parts_the_rest_goes_as_the_remaining_parts_not_one_by_one(
    paced: Paced, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash_point(point: str) -> None:
        if point == "part_accepted":
            raise Crash(point)

    monkeypatch.setattr("agent.reconcile.delivery.crash_point", crash_point)
    rows = release(paced)
    with pytest.raises(Crash):
        run(deliver_all(paced.world, [Item(rows)]))
    monkeypatch.undo()
    assert emails(paced) == [ALL[0:2]]
    run(recover(paced.restart()))
    assert states(paced, rows)[2:] == [SCHEDULED] * 4, "back in the engine's queue, not sent at once"
    assert sorted(paced.subjects("Scheduled")) == ALL[2:]
    paced.passes()
    assert emails(paced) == [ALL[0:2], ALL[2:4], ALL[4:6]], "no more e-mails than planned, each question once"
    assert questions_filed(paced) == ALL
    assert states(paced, rows) == [DONE] * MESSAGES
    assert paced.subjects("Needs attention") == [] and paced.server.messages("Sending") == {}
    assert kept(paced) == [], "nothing kept for recovery once all is done"


def refuse_mail_from(setup: Setup, reply: str, number: int) -> None:
    count = [0]

    def gate(stage: str, _: int) -> str | None:
        if stage != "MAIL":
            return None
        count[0] += 1
        return reply if count[0] == number else None

    setup.smtp.state.gate = gate


def test_after_a_refused_part_the_parts_never_started_go_as_one_digest(paced: Paced) -> None:
    refuse_mail_from(paced, "550 5.7.1 not allowed", 2)
    rows = release(paced)
    run(deliver_all(paced.world, [Item(rows)]))
    assert states(paced, rows) == [DONE, DONE, ATTENTION, ATTENTION, SCHEDULED, SCHEDULED]
    paced.smtp.state.gate = None
    paced.passes()
    assert emails(paced) == [ALL[0:2], ALL[4:6]], "the third part as it was, not two e-mails"
    assert paced.subjects("Needs attention") == ["Question 2", "Question 3"]
    assert kept(paced) == [], "nothing kept for recovery once all is done"


def lose_answer_to_mail(setup: Setup, number: int) -> None:
    """The connection drops right after the ``number``-th e-mail's DATA: the server has it, the agent never hears."""
    count = [0]

    def gate(stage: str, _: int) -> str | None:
        if stage == "MAIL":
            count[0] += 1
            if count[0] == number:
                setup.smtp.drop_after_data()
        return None

    setup.smtp.state.gate = gate


def test_after_a_lost_answer_the_parts_never_started_go_as_one_digest(paced: Paced) -> None:
    lose_answer_to_mail(paced, 2)
    rows = release(paced)
    run(deliver_all(paced.world, [Item(rows)]))
    assert states(paced, rows) == [DONE, DONE, ATTENTION, ATTENTION, SCHEDULED, SCHEDULED]
    assert notice("In doubt: Question 2", paced)
    paced.smtp.state.gate = None
    paced.passes()
    assert emails(paced) == [ALL[0:2], ALL[2:4], ALL[4:6]], "the one in doubt not again, the rest as one"
    assert kept(paced) == [], "nothing kept for recovery once all is done"


def test_stopped_part_way_the_rest_goes_as_one_digest_after_the_restart(
    paced: Paced, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Sender.send
    calls = [0]

    async def send(self: Sender, raw: bytes, sender: str, recipients: list[str]) -> Delivery:
        calls[0] += 1
        if calls[0] == 2:  # the daemon was told to stop while the second part waited to be retried
            raise SendStopped("stopping")
        return await real(self, raw, sender, recipients)

    monkeypatch.setattr(Sender, "send", send)
    rows = release(paced)
    run(deliver_all(paced.world, [Item(rows)]))
    monkeypatch.undo()
    assert states(paced, rows) == [DONE, DONE] + [SCHEDULED] * 4
    paced.restart()
    paced.passes()
    assert emails(paced) == [ALL[0:2], ALL[2:4], ALL[4:6]], "each once, no more e-mails than planned"
    assert kept(paced) == [], "nothing kept for recovery once all is done"


def test_a_refused_login_part_way_puts_the_rest_back_to_scheduled_with_one_notice(
    paced: Paced, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Sender.send
    calls = [0]

    async def send(self: Sender, raw: bytes, sender: str, recipients: list[str]) -> Delivery:
        calls[0] += 1
        if calls[0] == 2:  # the connection was lost and the new login refused (a password changed meanwhile)
            raise LoginRefused("535 5.7.8 authentication failed")
        return await real(self, raw, sender, recipients)

    monkeypatch.setattr(Sender, "send", send)
    rows = release(paced)
    run(deliver_all(paced.world, [Item(rows)]))
    monkeypatch.undo()
    assert states(paced, rows) == [DONE, DONE] + [SCHEDULED] * 4, "untouched, to go later"
    assert paced.subjects("Needs attention") == []
    assert sorted(paced.subjects("Scheduled")) == ALL[2:]
    assert questions_filed(paced) == ALL[0:2], "the part that went is in Sent"
    told = [subject for subject in paced.subjects("INBOX") if "Digest split" not in subject]
    assert len(told) == 1 and told[0].endswith("Not sending: the mail server refused the login"), told
    paced.world.smtp_gate = type(paced.world.smtp_gate)("SMTP")  # the student fixed the password
    paced.passes()
    assert emails(paced) == [ALL[0:2], ALL[2:4], ALL[4:6]], "the rest as planned, each once"
    assert states(paced, rows) == [DONE] * MESSAGES
    assert kept(paced) == [], "nothing kept for recovery once all is done"


def test_the_rest_keeps_its_place_before_newer_messages(paced: Paced) -> None:
    refuse_mail_from(paced, "550 5.7.1 not allowed", 2)
    rows = release(paced)
    run(deliver_all(paced.world, [Item(rows)]))
    paced.smtp.state.gate = None
    newer = paced.row(question(9), "Scheduled")  # arrived after the release was decided
    paced.passes()
    assert emails(paced)[1:] == [ALL[4:6], ["Question 9"]], "the rest first, then the newer one"
    assert states(paced, [*rows[4:], newer]) == [DONE] * 3

    assert kept(paced) == [], "nothing kept for recovery once all is done"


@pytest.mark.parametrize("point", ["claimed", "queued"])
def test_a_crash_before_a_release_was_handed_to_smtp_sends_it_as_planned(
    paced: Paced, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    """Claimed (or next in line), never marked sending: after the restart the release goes as it was planned,
    three e-mails of two, not one e-mail for each message left claimed."""

    def crash_point(name: str) -> None:
        if name == point:
            raise Crash(name)

    monkeypatch.setattr("agent.reconcile.delivery.crash_point", crash_point)
    rows = release(paced)
    with pytest.raises(Crash):
        run(deliver_all(paced.world, [Item(rows)]))
    monkeypatch.undo()
    assert paced.smtp.messages == []
    run(recover(paced.restart()))
    assert states(paced, rows) == [SCHEDULED] * MESSAGES, "back in the engine's queue"
    paced.passes()
    assert emails(paced) == [ALL[0:2], ALL[2:4], ALL[4:6]]
    assert states(paced, rows) == [DONE] * MESSAGES
    assert paced.server.messages("Sending") == {} and paced.subjects("Needs attention") == []
    assert kept(paced) == [], "nothing kept for recovery once all is done"


def test_a_first_part_refused_holds_back_only_its_own_messages(paced: Paced) -> None:
    """The first e-mail refused (550): its messages need attention, the others were never tried and go as one."""
    refuse_mail_from(paced, "550 5.7.1 not allowed", 1)
    rows = release(paced)
    run(deliver_all(paced.world, [Item(rows)]))
    assert states(paced, rows) == [ATTENTION, ATTENTION] + [SCHEDULED] * 4
    assert paced.subjects("Needs attention") == ["Question 0", "Question 1"]
    paced.smtp.state.gate = None
    paced.passes()
    assert emails(paced) == [ALL[2:4], ALL[4:6]]
    assert kept(paced) == [], "nothing kept for recovery once all is done"


def test_a_first_part_whose_answer_was_lost_puts_only_its_messages_in_doubt(paced: Paced) -> None:
    def gate(stage: str, _: int) -> str | None:
        if stage == "MAIL" and not paced.smtp.messages:
            paced.smtp.drop_after_data()
        return None

    paced.smtp.state.gate = gate
    rows = release(paced)
    run(deliver_all(paced.world, [Item(rows)]))
    assert states(paced, rows) == [ATTENTION, ATTENTION] + [SCHEDULED] * 4, "the others certainly never went"
    paced.smtp.state.gate = None
    paced.passes()
    assert emails(paced) == [ALL[0:2], ALL[2:4], ALL[4:6]], "the one in doubt not again"
    assert kept(paced) == [], "nothing kept for recovery once all is done"


def test_the_rest_is_paced_again_with_one_a_day_it_waits_for_the_next_day(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """The rules hold for every e-mail of a split release: with one a day, only its first part goes; the rest waits
    in Scheduled and goes one e-mail a day (the student is told when), never past the mentor's limit."""
    paced = Paced(tmp_path, smtp_server, policy_text(max_per_day=1, over_limit="batch"))
    paced.now = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # 09:00 in Chicago: her day has room for the passes
    try:
        rows = release(paced)
        run(deliver_all(paced.world, [Item(rows)]))
        assert emails(paced) == [ALL[0:2]], "one e-mail today, not three"
        assert states(paced, rows)[2:] == [SCHEDULED] * 4
        assert sorted(paced.subjects("Scheduled")) == ALL[2:]
        paced.passes(3, timedelta(minutes=30))
        assert emails(paced) == [ALL[0:2]], "not a second time today"
        paced.now += timedelta(days=1)
        paced.passes(2)
        assert emails(paced) == [ALL[0:2], ALL[2:4]], "the next day, the next part"
        paced.now += timedelta(days=1)
        paced.passes(2)
        assert emails(paced) == [ALL[0:2], ALL[2:4], ALL[4:6]]
        assert states(paced, rows) == [DONE] * MESSAGES
        assert kept(paced) == [], "nothing kept for recovery once all is done"
    finally:
        paced.close()


def counted_this_week(setup: Setup) -> int:
    """The e-mails to Rivera this week as `status` and the pacing count them."""
    (mentor,) = collect(setup.world.book, setup.world.ledger, setup.now)["mentors"]
    return int(mentor["this_week"]["sent"])


def in_doubt_items(setup: Setup, rows: list[Row]) -> set[str | None]:
    return {got.item for row in rows if (got := setup.world.ledger.get(row.key)) and got.state == ATTENTION}


def test_a_later_part_in_doubt_is_counted_once_with_its_providers_copy_in_sent(paced: Paced) -> None:
    """Left by the first hostile round of issue 21: the second e-mail of a split digest in doubt (its answer lost),
    filed in Sent by the provider, was counted twice (in doubt, and as sent without the agent): her next message
    waited longer than agreed. Its messages are known by that e-mail's own Message-ID now."""
    paced.provider_files_in_sent()
    lose_answer_to_mail(paced, 2)
    rows = release(paced)
    run(deliver_all(paced.world, [Item(rows)]))
    paced.smtp.state.gate = None
    second = message_from_bytes(paced.smtp.messages[1].content)["Message-ID"]
    assert in_doubt_items(paced, rows) == {second}
    paced.passes()
    run(scan_sent(paced.world, Seen()))
    assert len(paced.smtp.messages) == 3
    assert counted_this_week(paced) == 3, "each e-mail once: none again from Sent"


def test_a_later_part_left_in_doubt_by_a_crash_is_counted_once_with_its_providers_copy_in_sent(
    paced: Paced, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same after a kill: the second e-mail accepted, the daemon killed before it wrote so; recover() puts its
    messages in doubt, known by that e-mail's Message-ID."""

    def mark_part(world: World, item: str, index: int, state: str) -> None:
        if index == 1 and state == PART_ACCEPTED:
            raise Crash("killed after the second e-mail's 250")
        mark(world, item, index, state)

    paced.provider_files_in_sent()
    monkeypatch.setattr("agent.reconcile.delivery.mark_part", mark_part)
    rows = release(paced)
    with pytest.raises(Crash):
        run(deliver_all(paced.world, [Item(rows)]))
    monkeypatch.undo()
    run(recover(paced.restart()))
    second = message_from_bytes(paced.smtp.messages[1].content)["Message-ID"]
    assert in_doubt_items(paced, rows) == {second}
    paced.passes()
    run(scan_sent(paced.world, Seen()))
    assert len(paced.smtp.messages) == 3
    assert counted_this_week(paced) == 3
