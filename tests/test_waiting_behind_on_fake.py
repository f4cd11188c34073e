"""A backlog to one mentor: what waits behind the message going now leaves the Outbox in the same pass.

The pass that sends a mentor's first message puts the ones waiting behind it in Scheduled while it sends (planned as
if it went at once); the student is told in the next pass, once, with the times planned from the real send. A send
that fails only makes the next pass plan again. (On the in-memory mailbox and the real aiosmtpd server.)
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from agent.store.ledger import DONE, SCHEDULED
from tests.agent_process import MENTOR, OUTBOX, policy_text
from tests.servers.smtp import SmtpServer
from tests.test_passes_on_fake import Pass, mail


@pytest.fixture
def hourly(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Pass]:
    made = Pass(tmp_path, smtp_server, policy_text(min_gap="1h"))
    try:
        yield made
    finally:
        made.world.ledger.close()


def notices(made: Pass) -> list[str]:
    return [subject for subject in made.subjects("INBOX") if "Scheduled" in subject]


def test_the_messages_behind_the_first_leave_the_outbox_with_it_and_she_is_told_once(hourly: Pass) -> None:
    for n in range(4):
        hourly.server.put(OUTBOX, mail(f"backlog {n}"))
    hourly.run()
    assert hourly.received() == ["backlog 0"]
    assert hourly.subjects(OUTBOX) == [], "nothing waits in the Outbox for a second pass"
    assert sorted(hourly.subjects("Scheduled")) == ["backlog 1", "backlog 2", "backlog 3"]
    assert notices(hourly) == [], "told in the next pass, with the real send's times"
    hourly.run()
    hourly.run()  # and never again while nothing changes
    assert len(notices(hourly)) == 1, hourly.subjects("INBOX")
    ledger = hourly.world.ledger
    (sent,) = ledger.in_states(DONE)
    assert sent.sent_at is not None
    due = {row.subject: row.due for row in ledger.in_states(SCHEDULED)}
    assert due == {f"backlog {n}": sent.sent_at + timedelta(hours=n) for n in (1, 2, 3)}
    assert hourly.received() == ["backlog 0"]


def test_a_first_message_refused_lets_the_next_go_in_the_next_pass(hourly: Pass) -> None:
    hourly.smtp.refuse(MENTOR, "550 5.1.1 no such user", times=1)
    for n in range(3):
        hourly.server.put(OUTBOX, mail(f"backlog {n}"))
    hourly.run()
    assert hourly.received() == []
    assert sorted(hourly.subjects("Scheduled")) == ["backlog 1", "backlog 2"]
    hourly.run()  # the plan without the refused one: the next is due at once
    assert hourly.received() == ["backlog 1"]
    hourly.run()
    assert hourly.received() == ["backlog 1"]
    assert hourly.subjects("Scheduled") == ["backlog 2"]
    (sent,) = hourly.world.ledger.in_states(DONE)
    (waiting,) = hourly.world.ledger.in_states(SCHEDULED)
    assert sent.sent_at is not None and waiting.due == sent.sent_at + timedelta(hours=1)
    assert any("backlog 2" in subject for subject in notices(hourly)), hourly.subjects("INBOX")
