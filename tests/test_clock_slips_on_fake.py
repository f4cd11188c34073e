"""Clocks that are wrong, found by a hostile hunt (whole passes on the in-memory mailbox, with a clock the test moves):

- a copy in Sent dated ahead by her phone's clock held every later message to the mentor until then (for ever,
  beyond the engine's 400-day horizon), with "only -30d since the last message" for the reason;
- the clock stepped back (an NTP correction) between two drops: the later message went before the earlier one;
- the second round: a copy in Sent dated a day behind by her phone counted yesterday (two in her day of one); a send
  of the agent's own while its clock read a year ahead holds the next message, and was told as "only -366d since
  the last message";
- the third round: writing "now" back over a time ahead of it (tried, to end that hold) broke the limits for good
  after one pass under a clock behind: which clock was wrong, the one then or the one now, the agent cannot tell."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.store.ledger import SCHEDULED
from tests.agent_process import OUTBOX, policy_text
from tests.servers.smtp import SmtpServer
from tests.test_passes_on_fake import SENT, Pass, mail

START = datetime(2026, 6, 3, 15, 0, tzinfo=UTC)  # a Wednesday, 10:00 in Chicago


def made(tmp_path: Path, smtp: SmtpServer, policy: str) -> tuple[Pass, list[datetime]]:
    made = Pass(tmp_path, smtp, policy)
    clock = [START]
    made.world.clock = lambda: clock[0]
    return made, clock


@pytest.mark.parametrize("ahead", [timedelta(hours=3), timedelta(days=30), timedelta(days=500)])
def test_a_copy_in_sent_dated_ahead_holds_nothing_back(
    tmp_path: Path, smtp_server: SmtpServer, ahead: timedelta
) -> None:
    run, _ = made(tmp_path, smtp_server, policy_text(max_per_day=5))
    run.server.put(SENT, mail("sent from her phone, its clock ahead", at=START + ahead), when=START)
    run.server.put(OUTBOX, mail("through the agent", at=START))
    run.run()
    assert run.received() == ["through the agent"], "5 a day, no gap, always open: it goes now"
    assert not run.world.ledger.in_states(SCHEDULED)
    (at,) = (at for (at,) in run.world.ledger.db.execute("SELECT at FROM items WHERE source != 'agent'"))
    assert datetime.fromisoformat(at) == START, "her copy counts as sent when her server stored it, not in the future"


def test_held_messages_go_in_the_order_she_handed_them_over_when_the_clock_steps_back(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    run, clock = made(tmp_path, smtp_server, policy_text(max_per_day=1))
    run.server.put(OUTBOX, mail("zero", at=START))
    run.run()
    clock[0] = START + timedelta(hours=1)
    run.server.put(OUTBOX, mail("first written", at=clock[0]))
    run.run()
    clock[0] = START + timedelta(minutes=10)  # an NTP correction steps the clock back 50 minutes
    run.server.put(OUTBOX, mail("second written", at=START + timedelta(hours=1, minutes=5)))
    run.run()
    for day in range(1, 4):
        clock[0] = START + timedelta(days=day)
        run.run()
        run.run()
    assert run.received() == ["zero", "first written", "second written"]


def test_a_send_recorded_ahead_of_now_is_said_so_and_never_written_back(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """Sent while the clock read a year ahead, then the clock put right: the agent cannot tell which clock was wrong
    (a clock behind now looks the same), so nothing is written back (done once, a pass under a clock behind broke the
    limits for good); the student is told why the next one waits, truly, and what to do (not "only -366d")."""
    run, clock = made(tmp_path, smtp_server, policy_text(max_per_day=5, min_gap="1h"))
    clock[0] = START + timedelta(days=365)
    run.server.put(OUTBOX, mail("while ahead", at=clock[0]))
    run.run()
    clock[0] = START + timedelta(minutes=5)  # put right
    run.server.put(OUTBOX, mail("after the fix", at=clock[0]))
    run.run()
    (held,) = run.world.ledger.in_states(SCHEDULED)
    assert "-" not in held.reason.split("between")[0] and "clock was ahead when it went" in held.reason, held.reason
    assert "flag this one to send it now" in held.reason


def test_a_pass_under_a_clock_behind_changes_nothing_recorded(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """One a day: A went Wednesday; a pass runs with the clock 55 years behind (a board without its clock battery,
    before NTP), then the clock is right again. B still waits for Thursday (a write-back of 'now' moved A to 1971)."""
    run, clock = made(tmp_path, smtp_server, policy_text(max_per_day=1))
    run.server.put(OUTBOX, mail("A", at=START))
    run.run()
    run.server.put(OUTBOX, mail("B", at=START))
    run.run()
    clock[0] = datetime(1971, 8, 31, 15, 0, tzinfo=UTC)
    run.run()
    clock[0] = START + timedelta(minutes=10)
    run.run()
    assert run.received() == ["A"], "one a day: B goes Thursday"
    clock[0] = START + timedelta(days=1)
    run.run()
    assert run.received() == ["A", "B"]


def test_a_copy_in_sent_counts_when_her_server_stored_it_not_by_her_phones_clock(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    run, clock = made(tmp_path, smtp_server, policy_text(max_per_day=1))
    run.server.put(SENT, mail("from her phone", at=START - timedelta(days=1)), when=START)  # its clock a day behind
    clock[0] = START + timedelta(minutes=1)
    run.server.put(OUTBOX, mail("through the agent", at=clock[0]))
    run.run()
    assert run.received() == [], "her phone's message reached the mentor today: one a day"


@pytest.mark.parametrize("ahead", [timedelta(days=30), timedelta(days=365)])
def test_a_copy_her_program_appended_with_a_time_ahead_holds_nothing_back(
    tmp_path: Path, smtp_server: SmtpServer, ahead: timedelta
) -> None:
    """Her program APPENDs its Sent copy with a time of its own (INTERNALDATE), its clock ahead: counted then, it held
    every message to the mentor until that date (a regression of 04cddb4, found by the last hostile round)."""
    run, _ = made(tmp_path, smtp_server, policy_text(max_per_day=5))
    run.server.put(SENT, mail("from her phone", at=START + ahead), when=START + ahead)
    run.server.put(OUTBOX, mail("through the agent", at=START))
    run.run()
    assert run.received() == ["through the agent"]
