"""Issue 20: an invitation never reaches the mentor after its meeting's start less ``min_notice``.

The REQUEST waits in the Outbox/Scheduled, paced like any e-mail to her; when the pace would let it leave only
after that deadline (here ``min_gap = "3h"`` against ``min_notice = "1h"``), the offer is withdrawn, unsent, and
the student told; a sequential round offers the next time, which meets the same fate until none is left.
On the in-memory mailbox and the real aiosmtpd server (tests/test_meetings_on_fake.py), whole daemon passes on
the virtual clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.reconcile import agenda_desk
from agent.reconcile.agenda_changes import in_time
from agent.rules import agenda
from agent.rules.meetings import send_by
from agent.rules.policy import PolicyBook, load_policies
from agent.store.ledger import CANCELLED, SCHEDULED, Row
from agent.store.rounds import Stored
from tests.agent_process import MENTOR, OUTBOX, STUDENT, Agent, agent, eventually
from tests.agent_process import mail as agent_mail
from tests.servers.smtp import SmtpServer
from tests.test_meeting_desk import event_of, meeting_policy, propose, statuses
from tests.test_meetings import begin
from tests.test_meetings_on_fake import Desk, chicago_noon, make
from tests.test_passes_on_fake import mail

__all__ = ["agent"]  # the fixture


@pytest.fixture
def paced(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Desk]:
    yield from make(tmp_path, smtp_server, strategy="sequential", proposals=2, timeout="3d", min_gap="3h")


def test_an_invitation_the_pace_holds_past_its_notice_is_withdrawn_not_sent_late(paced: Desk) -> None:
    paced.now = chicago_noon(1, paced.now)  # inside her windows and the student's hours
    # Dropped as the meeting is proposed: the desk does not know it yet (a time is offered only where the pace it
    # knows lets the invitation leave in time), and it goes first.
    paced.server.put(OUTBOX, mail("A question first"))
    proposal = paced.propose(topic="Residency")
    assert proposal.offered, proposal.problem
    first = proposal.offered[0]
    assert first.utc_start - paced.now < timedelta(hours=3), "the meeting starts before the gap is over"
    paced.settle()
    assert len(paced.smtp.messages) == 1, "the question went: the next e-mail to her waits 3 hours"
    sent_at = {}
    for _ in range(12):  # the hours go by
        paced.later(timedelta(minutes=30))
        before = len(paced.smtp.messages)
        paced.settle()
        if len(paced.smtp.messages) > before:
            sent_at[event_of(paced.smtp.messages[-1].content)["UID"]] = paced.now
    uids = list(paced.statuses())
    assert [paced.statuses()[uid] for uid in uids] == ["cancelled", "sent"], "withdrawn, the next time offered"
    assert list(sent_at) == [uids[1]], "the first invitation never left"
    second = paced.world.ledger.db.execute("SELECT start FROM meetings WHERE uid = ?", (uids[1],)).fetchone()[0]
    assert sent_at[uids[1]] <= datetime.fromisoformat(second) - timedelta(hours=1), "the next one in time"
    told = " ".join(" ".join(str(m.get_content()).split()) for m in paced.inbox("notice"))
    assert "could not leave 1h or more before the meeting" in told and "offer is withdrawn" in told, told
    withdrawn = paced.world.ledger.db.execute("SELECT message_id FROM meetings WHERE uid = ?", (uids[0],)).fetchone()
    state = paced.world.ledger.db.execute("SELECT state FROM messages WHERE message_id = ?", (withdrawn[0],)).fetchone()
    assert tuple(state) == (CANCELLED,)
    assert paced.server.messages(OUTBOX) == {} and paced.server.messages("Scheduled") == {}


@pytest.mark.servers
def test_the_daemon_withdraws_an_invitation_its_pace_would_send_late(agent: Agent) -> None:
    """The real daemon (Dovecot, aiosmtpd): an hour between e-mails to her when the times are offered, then a
    week (the student edits the policy), an hour's notice for meetings. Every time offered would now be invited
    only after it started: each offer is withdrawn, no REQUEST goes."""
    agent.policy(meeting_policy(strategy="sequential", proposals=2, min_gap="1h"))
    agent.start()
    agent.drop(agent_mail("A question first"))
    agent.smtp.wait_for(1, timeout=15)
    out = propose(agent, "--topic", "Residency")
    assert "Proposed to Dr. Ana Rivera" in out, out
    eventually(lambda: [s for s in agent.subjects("Scheduled") if s.startswith("Invitation:")], timeout=15)
    agent.policy(meeting_policy(strategy="sequential", proposals=2, min_gap="7d"))
    eventually(lambda: set(statuses(agent).values()) == {"cancelled"} or None, timeout=20)
    told = eventually(lambda: [n for n in agent.notices() if "could not leave" in n.get_content()], timeout=15)
    assert "offer is withdrawn" in told[0].get_content()
    time.sleep(1)
    assert len(agent.smtp.messages) == 1, "no invitation went"
    assert not [s for s in agent.subjects("Scheduled") if s.startswith("Invitation:")]


def test_a_question_joins_no_round_whose_invitation_would_leave_late() -> None:
    """A round is joinable only while each of its invitations may still leave by its start less min_notice (one
    the pace plans later is withdrawn in the pass that plans it; one held for a reply may still go in time)."""
    state, _ = begin()
    offer = state.offers[0]
    stored = Stored("r1", "rivera", state=state, source="agenda:t")
    deadline = send_by(state, offer)
    assert in_time(stored, {offer.uid: request_row(None)}, deadline)
    assert not in_time(stored, {offer.uid: request_row(None)}, deadline + timedelta(seconds=1))


def request_row(due: datetime | None) -> Row:
    return Row(
        key="k",
        message_id="<r@x>",
        mentor="rivera",
        subject="Invitation",
        sender=STUDENT,
        recipients=(MENTOR,),
        arrived=datetime(2026, 3, 2, tzinfo=UTC),
        state=SCHEDULED,
        folder="Scheduled",
        uid=1,
        due=due,
        digest=None,
        reason="",
        standalone=True,
        group_key="",
        forced=False,
        told="",
        attempts=0,
        item=None,
        sent_at=None,
        detail="",
    )


def test_agenda_questions_of_a_withdrawn_invitation_go_back_to_e_mail(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """One a day: the second question waits over the day's limit and becomes a meeting's agenda, its invitation
    planned for tomorrow. Then a week between e-mails (the student edits the policy): the invitation could only
    leave a week later, after the meeting. It is withdrawn, never sent, and the question goes back to e-mail
    (paced as any), the student told."""
    options: dict[str, Any] = {"strategy": "sequential", "proposals": 1, "max_per_day": 1, "over_limit": "agenda"}
    made = make(tmp_path, smtp_server, **options)
    desk = next(made)
    try:
        desk.now = chicago_noon(1, desk.now)
        desk.server.put(OUTBOX, mail("First question"))
        desk.settle()
        assert len(desk.smtp.messages) == 1
        desk.server.put(OUTBOX, mail("Second question"))
        for _ in range(2):
            desk.settle()
            asyncio.run(agenda_desk.pass_once(desk.world))
        assert set(desk.statuses().values()) == {"planned"}, desk.statuses()
        (tmp_path / "policies" / "rivera.toml").write_text(meeting_policy(min_gap="7d", **options))
        desk.world.book = PolicyBook(load_policies(desk.settings.policies_dir))
        for _ in range(4):
            desk.settle()
            asyncio.run(agenda_desk.pass_once(desk.world))
            desk.later(timedelta(minutes=1))
        assert len(desk.smtp.messages) == 1, "no invitation, no second e-mail today"
        assert set(desk.statuses().values()) == {"cancelled"}, desk.statuses()
        ledger = desk.world.ledger
        (key,) = [k for (k,) in ledger.db.execute("SELECT key FROM messages WHERE subject = 'Second question'")]
        row = ledger.get(key)
        assert row is not None and row.detail.startswith(agenda.OFF) and row.digest is None, row
        assert row.state == SCHEDULED and row.item is None, "waits as e-mail, not filed as delivered"
        told = " ".join(" ".join(str(m.get_content()).split()) for m in desk.inbox("notice"))
        assert "could not leave" in told and "Second question" in told, told
    finally:
        next(made, None)
