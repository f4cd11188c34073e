"""What cut a send off, as she is told it: a send whose answer was never noted is in doubt after a stop, and after a
dropped connection too (the session after it finishes the same way). Her notice said "mentor-agent stopped" in both
cases, which is untrue of a daemon that kept running (a hostile round's finding: a digest's other messages, left in
Sending when the connection dropped while the first one's notice was appended). On the in-memory mailbox."""

from __future__ import annotations

import asyncio

import pytest

from agent.reconcile.recovery import recover
from agent.store.ledger import ATTENTION, SENDING
from tests.agent_process import OUTBOX
from tests.test_left_claimed_on_fake import stopped_after_the_claim
from tests.test_passes_on_fake import Pass, mail, one_a_day

__all__ = ["one_a_day"]  # the fixture


def handed_over_unanswered(made: Pass) -> None:
    """ "first" claimed and handed to SMTP, its answer never noted (what a cut leaves in the ledger)."""
    made.server.put(OUTBOX, mail("first"))
    stopped_after_the_claim(made)
    [row] = made.world.ledger.in_states("claimed")
    made.world.ledger.update(row.key, state=SENDING, sent_at=made.world.now())


@pytest.mark.parametrize(
    ("after_stop", "said"),
    [(True, "mentor-agent stopped (or its connection dropped) while"), (False, "a connection dropped while")],
    ids=["first session after a stop", "a session after a dropped connection"],
)
def test_a_send_cut_off_is_in_doubt_and_her_notice_says_what_cut_it(
    one_a_day: Pass, after_stop: bool, said: str
) -> None:
    handed_over_unanswered(one_a_day)
    asyncio.run(recover(one_a_day.world, after_stop=after_stop))
    [row] = one_a_day.world.ledger.in_states(ATTENTION)
    assert row.detail.startswith(said), row.detail
    [notice] = one_a_day.server.messages("INBOX").values()
    text = notice.replace(b"\r\n", b" ").decode()
    assert "In doubt: first" in text and said in text
    assert ("stopped" in text) == after_stop, "a daemon that kept running is not said to have stopped"
