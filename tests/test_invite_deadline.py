"""Issue 20: an invitation never reaches the mentor after its meeting's start less ``min_notice``.

The REQUEST waits in the Outbox/Scheduled, paced like any e-mail to her; when the pace would let it leave only
after that deadline (here ``min_gap = "3h"`` against ``min_notice = "1h"``), the offer is withdrawn, unsent, and
the student told; a sequential round offers the next time, which meets the same fate until none is left.
On the in-memory mailbox and the real aiosmtpd server (tests/test_meetings_on_fake.py), whole daemon passes on
the virtual clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from agent.store.ledger import CANCELLED
from tests.agent_process import OUTBOX
from tests.servers.smtp import SmtpServer
from tests.test_meeting_desk import event_of
from tests.test_meetings_on_fake import Desk, chicago_noon, make
from tests.test_passes_on_fake import mail


@pytest.fixture
def paced(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Desk]:
    yield from make(tmp_path, smtp_server, strategy="sequential", proposals=2, timeout="3d", min_gap="3h")


def test_an_invitation_the_pace_holds_past_its_notice_is_withdrawn_not_sent_late(paced: Desk) -> None:
    paced.now = chicago_noon(1, paced.now)  # inside her windows and the student's hours
    paced.server.put(OUTBOX, mail("A question first"))
    paced.settle()
    assert len(paced.smtp.messages) == 1, "the question went: the next e-mail to her waits 3 hours"
    proposal = paced.propose(topic="Residency")
    assert proposal.offered, proposal.problem
    first = proposal.offered[0]
    assert first.utc_start - paced.now < timedelta(hours=3), "the meeting starts before the gap is over"
    paced.settle()
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
