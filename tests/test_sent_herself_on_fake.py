"""Send pressed in her mail program on a draft a door handed over (agent/reconcile/doors/sent_herself.py; hostile
round on issue 22, a1 and a2): her program's copy in Sent means the mentor has it, so the agent never sends its
own copy too; the copy it had goes to Needs attention (never deleted) and she is told. Pass by pass, in memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config.settings import Drafts
from agent.store.ledger import CANCELLED
from tests.agent_process import OUTBOX, policy_text
from tests.servers.smtp import SmtpServer
from tests.test_passes_on_fake import SENT, Pass, mail

DRAFT = ("\\Draft", "\\Seen")


@pytest.fixture
def one_a_day(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Pass]:
    made = Pass(tmp_path, smtp_server, policy_text(max_per_day=1))
    made.world.settings = made.settings.model_copy(update={"drafts": Drafts(settle=0)})
    try:
        yield made
    finally:
        made.world.ledger.close()


def told(one: Pass) -> list[str]:
    return [s for s in one.subjects("INBOX") if "Not sent again" in s]


def test_send_pressed_on_a_held_labelled_draft_cancels_the_held_copy(one_a_day: Pass) -> None:
    """a2: held in Scheduled, then Gmail's Send in the still-open compose window: its copy lands in Sent."""
    one_a_day.server.put(OUTBOX, mail("first"))
    one_a_day.run()
    draft = mail("Question")
    one_a_day.server.put(OUTBOX, draft, DRAFT)
    one_a_day.run()
    assert one_a_day.subjects("Scheduled") == ["Question"]
    one_a_day.server.put(SENT, draft)  # Gmail's own copy, under the held message's Message-ID
    one_a_day.run()
    one_a_day.run()
    assert one_a_day.received() == ["first"], "the mentor has it from Gmail already"
    assert one_a_day.subjects("Scheduled") == [] and one_a_day.subjects("Needs attention") == ["Question"]
    assert sorted(one_a_day.subjects(SENT)) == ["Question", "first"]
    assert told(one_a_day) == ["[mentor-agent] Not sent again: Question"]
    assert [r.subject for r in one_a_day.world.ledger.in_states(CANCELLED)] == ["Question"]


def test_send_pressed_while_the_labelled_draft_settles_is_not_sent_again(one_a_day: Pass) -> None:
    """a1: Gmail sent it (its copy in Sent, counted) before the agent took the draft in from the Outbox."""
    draft = mail("Pressed Send by habit")
    one_a_day.server.put(SENT, draft)
    one_a_day.server.put(OUTBOX, draft, DRAFT)
    one_a_day.run()
    one_a_day.run()
    assert one_a_day.received() == []
    assert one_a_day.subjects("Needs attention") == ["Pressed Send by habit"]
    assert told(one_a_day) == ["[mentor-agent] Not sent again: Pressed Send by habit"]


def test_the_agents_own_sent_copy_never_cancels_anything(one_a_day: Pass) -> None:
    one_a_day.server.put(OUTBOX, mail("Question"), DRAFT)
    one_a_day.run()
    one_a_day.run()
    assert one_a_day.received() == ["Question"] and one_a_day.subjects(SENT) == ["Question"]
    assert one_a_day.subjects("Needs attention") == [] and told(one_a_day) == []
