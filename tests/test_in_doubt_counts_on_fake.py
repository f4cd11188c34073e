"""A message in doubt (the line cut after DATA, or the daemon killed between ``sending`` and ``accepted``) may have
reached the mentor: it counts as sent to her, at the time it was handed to SMTP, for the pacing rules until the
student decides; moved back to the Outbox, it is a new send. (On the in-memory mailbox and the real aiosmtpd
server; the hostile round's finding B.)"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.reconcile.recovery import recover
from agent.store.ledger import ATTENTION, SCHEDULED
from tests.agent_process import OUTBOX, policy_text
from tests.servers.smtp import SmtpServer
from tests.test_passes_on_fake import SENT, Pass, mail

START = datetime(2026, 12, 7, 16, 0, tzinfo=UTC)


class Crash(Exception):
    """The daemon killed at a crash point (nothing after it runs)."""


@pytest.fixture
def hourly(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[tuple[Pass, list[datetime]]]:
    clock = [START]
    made = Pass(tmp_path, smtp_server, policy_text(min_gap="1h"))
    made.world.clock = lambda: clock[0]
    try:
        yield made, clock
    finally:
        made.world.ledger.close()


def test_a_message_in_doubt_counts_so_her_next_waits_the_gap(hourly: tuple[Pass, list[datetime]]) -> None:
    made, clock = hourly
    for n in range(3):
        made.server.put(OUTBOX, mail(f"backlog {n}"))
    made.smtp.drop_after_data()
    for _ in range(3):
        made.run()
    assert made.received() == ["backlog 0"], "min_gap 1h: the one in doubt may have reached her"
    assert made.subjects("Needs attention") == ["backlog 0"]
    assert "[mentor-agent] In doubt: backlog 0" in made.subjects("INBOX")
    due = {row.subject: row.due for row in made.world.ledger.in_states(SCHEDULED)}
    assert due == {"backlog 1": START + timedelta(hours=1), "backlog 2": START + timedelta(hours=2)}
    clock[0] = START + timedelta(hours=1)
    made.run()
    assert made.received() == ["backlog 0", "backlog 1"]


def killed_while_sending(hourly: tuple[Pass, list[datetime]], monkeypatch: pytest.MonkeyPatch, *subjects: str) -> None:
    """``subjects`` dropped in; the daemon killed right after marking the first ``sending`` (before SMTP), then
    restarted 20 minutes later (its recovery run)."""
    made, clock = hourly

    def crash_point(point: str) -> None:
        if point == "sending":
            raise Crash(point)

    monkeypatch.setattr("agent.reconcile.delivery.crash_point", crash_point)
    for subject in subjects:
        made.server.put(OUTBOX, mail(subject))
    with pytest.raises(Crash):
        made.run()
    monkeypatch.undo()
    clock[0] = START + timedelta(minutes=20)  # the restart
    asyncio.run(recover(made.world))


def test_killed_between_sending_and_accepted_it_counts_from_when_it_was_handed_over(
    hourly: tuple[Pass, list[datetime]], monkeypatch: pytest.MonkeyPatch
) -> None:
    made, _ = hourly
    killed_while_sending(hourly, monkeypatch, "backlog 0", "backlog 1")
    (doubt,) = made.world.ledger.in_states(ATTENTION)
    assert doubt.subject == "backlog 0" and doubt.sent_at == START
    made.run()
    made.run()
    assert made.received() == [], "her next waits an hour from when the one in doubt was handed to SMTP"
    (waiting,) = made.world.ledger.in_states(SCHEDULED)
    assert waiting.due == START + timedelta(hours=1)


def test_moved_back_to_the_outbox_it_is_a_new_send(hourly: tuple[Pass, list[datetime]]) -> None:
    made, clock = hourly
    made.server.put(OUTBOX, mail("only one"))
    made.smtp.drop_after_data()
    made.run()
    (doubt,) = made.world.ledger.in_states(ATTENTION)
    assert doubt.sent_at == START
    history = made.world.ledger.history("rivera", START - timedelta(days=1))
    assert [item.at for item in history.sent] == [START], "counted while the student has not decided"
    clock[0] = START + timedelta(minutes=10)
    (uid,) = made.server.messages("Needs attention")
    made.box.move("Needs attention", uid, OUTBOX)  # she decides: send it again
    made.run()
    made.run()
    assert made.received() == ["only one"], "a new send, paced after the hand-over that may have reached her"
    (again,) = made.world.ledger.in_states(SCHEDULED)
    assert again.due == START + timedelta(hours=1)
    history = made.world.ledger.history("rivera", START - timedelta(days=1))
    assert [item.at for item in history.sent] == [START], "the hand-over in doubt still counts"
    clock[0] = START + timedelta(hours=1)
    made.run()
    assert made.received() == ["only one", "only one"], "then it goes, paced as any other"
    history = made.world.ledger.history("rivera", START - timedelta(days=1))
    assert [item.at for item in history.sent] == [START, clock[0]], "both count: the one in doubt and the new send"


def test_moved_back_while_her_next_is_scheduled_her_next_keeps_the_time_she_was_told(
    hourly: tuple[Pass, list[datetime]],
) -> None:
    made, clock = hourly
    made.server.put(OUTBOX, mail("A"))
    made.smtp.drop_after_data()
    made.run()
    clock[0] = START + timedelta(minutes=1)
    made.server.put(OUTBOX, mail("B"))
    made.run()
    made.run()
    (b,) = made.world.ledger.in_states(SCHEDULED)
    assert b.due == START + timedelta(hours=1) and b.told, "told: B goes at 11:00, an hour after A's hand-over"
    clock[0] = START + timedelta(minutes=2)
    (uid,) = made.server.messages("Needs attention")
    made.box.move("Needs attention", uid, OUTBOX)  # she sends A again
    for _ in range(3):
        made.run()
    assert made.received() == ["A"], "neither B nor A again goes at once: A's hand-over at 10:00 still counts"
    due = {row.subject: row.due for row in made.world.ledger.in_states(SCHEDULED)}
    assert due == {"B": START + timedelta(hours=1), "A": START + timedelta(hours=2)}, "B as told; A again after it"
    clock[0] = START + timedelta(hours=1)
    made.run()
    assert made.received() == ["A", "B"]


def _in_doubt_again(made: Pass, clock: list[datetime], at: datetime) -> None:
    """Moved back to the Outbox, then handed over in doubt again at ``at``."""
    (uid,) = made.server.messages("Needs attention")
    made.box.move("Needs attention", uid, OUTBOX)
    made.run()
    made.run()
    clock[0] = at
    made.smtp.drop_after_data()
    made.run()


def test_in_doubt_again_after_moving_back_her_next_waits_for_the_second_hand_over(
    hourly: tuple[Pass, list[datetime]],
) -> None:
    made, clock = hourly
    made.server.put(OUTBOX, mail("A"))
    made.smtp.drop_after_data()
    made.run()  # handed over at 10:00, in doubt
    clock[0] = START + timedelta(minutes=10)
    _in_doubt_again(made, clock, START + timedelta(hours=1))  # and again at 11:00
    clock[0] = START + timedelta(hours=1, minutes=1)
    made.server.put(OUTBOX, mail("B"))
    for _ in range(3):
        made.run()
    assert made.received() == ["A", "A"], "min_gap 1h: B waits an hour from A's second hand-over, not 1 minute"


def test_moved_back_twice_each_hand_over_counts(hourly: tuple[Pass, list[datetime]]) -> None:
    made, clock = hourly
    made.server.put(OUTBOX, mail("A"))
    made.smtp.drop_after_data()
    made.run()
    clock[0] = START + timedelta(minutes=10)
    _in_doubt_again(made, clock, START + timedelta(hours=1))
    clock[0] = START + timedelta(hours=1, minutes=5)
    (uid,) = made.server.messages("Needs attention")
    made.box.move("Needs attention", uid, OUTBOX)  # a second time
    made.run()
    made.run()
    assert made.received() == ["A", "A"], "not a third time at 11:05, five minutes after the second hand-over"
    sent = made.world.ledger.history("rivera", START - timedelta(days=1)).sent
    assert sorted(item.at for item in sent) == [START, START + timedelta(hours=1)]


def _digest_in_doubt_on_day_two(tmp_path: Path, smtp_server: SmtpServer) -> tuple[Pass, list[datetime]]:
    """One a day, over the limit batched: A on day 1; B, C, D as one digest on day 2, its line cut after DATA at
    the next pass (the clock at day 2)."""
    clock = [START]
    made = Pass(tmp_path, smtp_server, policy_text(max_per_day=1, over_limit="batch"))
    made.world.clock = lambda: clock[0]
    made.server.put(OUTBOX, mail("A"))
    made.run()
    made.run()
    for subject in ("B", "C", "D"):
        made.server.put(OUTBOX, mail(subject))
    made.run()
    made.run()
    clock[0] = START + timedelta(days=1)
    made.smtp.drop_after_data()
    return made, clock


def test_a_digest_in_doubt_moved_back_member_by_member_and_in_doubt_again_counts_again(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """One a day, over the limit batched: the digest of B, C, D in doubt on day 2; B and C moved back; their new
    digest in doubt again on day 3. That day's hand-over counts: E, dropped in after it, waits for day 4."""
    made, clock = _digest_in_doubt_on_day_two(tmp_path, smtp_server)
    try:
        made.run()
        made.run()
        for n, subject in enumerate(("B", "C")):
            clock[0] = START + timedelta(days=1, minutes=10 * (n + 1))
            waiting = made.server.messages("Needs attention")
            uid = next(u for u, raw in waiting.items() if f"Subject: {subject}".encode() in raw)
            made.box.move("Needs attention", uid, OUTBOX)
            for _ in range(3):
                made.run()
        clock[0] = START + timedelta(days=2)
        made.smtp.drop_after_data()  # the new digest of B and C, in doubt again
        for _ in range(3):
            made.run()
        before = len(made.received())
        clock[0] = START + timedelta(days=2, minutes=5)
        made.server.put(OUTBOX, mail("E"))
        for _ in range(3):
            made.run()
        assert len(made.received()) == before, "one a day: day 3's hand-over in doubt counts, E waits for day 4"
    finally:
        made.world.ledger.close()


def test_a_digest_in_doubt_whose_copy_shows_up_in_sent_after_a_member_moved_back_counts_once(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    made, clock = _digest_in_doubt_on_day_two(tmp_path, smtp_server)
    try:
        for _ in range(3):
            made.run()
        clock[0] += timedelta(minutes=10)
        uid = next(u for u, raw in made.server.messages("Needs attention").items() if b"Subject: B" in raw)
        made.box.move("Needs attention", uid, OUTBOX)
        for _ in range(3):
            made.run()
        made.server.put(SENT, made.smtp.messages[-1].content)  # it did reach her: the provider's copy, late
        clock[0] += timedelta(minutes=10)
        for _ in range(3):
            made.run()
        times = [item.at for item in made.world.ledger.history("rivera", START - timedelta(days=3)).sent]
        assert sorted(times) == [START, START + timedelta(days=1)], "the day-2 hand-over once, not twice"
    finally:
        made.world.ledger.close()


def test_the_providers_sent_copy_of_a_digest_in_doubt_is_not_counted_a_second_time(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """Found by the hostile round of the status change: the digest of B, C, D in doubt, then the copy its provider
    files in Sent (Gmail, Microsoft 365) was counted as another e-mail sent without the agent, so one e-mail
    counted twice and her next message waited a day more than the agreement says."""
    made, clock = _digest_in_doubt_on_day_two(tmp_path, smtp_server)
    try:
        for _ in range(3):
            made.run()
        assert made.subjects("Needs attention") == ["B", "C", "D"]
        made.server.put(SENT, made.smtp.messages[-1].content)  # the provider's copy of what it accepted
        clock[0] = START + timedelta(days=1, minutes=10)
        for _ in range(3):
            made.run()
        day_two = START + timedelta(days=1)
        history = made.world.ledger.history("rivera", START)
        assert [item.at for item in history.sent] == [START, day_two], "A, and the one digest e-mail"
        clock[0] = START + timedelta(days=2)
        made.server.put(OUTBOX, mail("E"))
        for _ in range(3):
            made.run()
        assert made.received()[-1] == "E", "one a day: day 3 is free"
    finally:
        made.world.ledger.close()
