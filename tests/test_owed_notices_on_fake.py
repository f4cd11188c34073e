"""Every notice is owed until it is in her mailbox, not only those of Needs attention
(tests/test_attention_notices_on_fake.py).

Before, a notice such as "Delayed by a mail server problem", "Went after all" or one of the meeting desk's was
appended once: an APPEND the server refused (a full mailbox, a moment's NO), cut, or a stop right before it left her
untold, and nothing told it again ("Went after all" only when more mail reached Sent, or at a restart). Now
``World.notify`` keeps each notice in the ledger before its APPEND, under a Message-ID of its own, and the last step
of a pass tells what is still owed, looked for first: told once.

On the in-memory mailbox and the real aiosmtpd server.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from agent.reconcile.context import World
from tests.agent_process import OUTBOX
from tests.test_attention_notices_on_fake import killed_at, passes, told
from tests.test_passes_on_fake import SENT, Pass, mail, one_a_day

__all__ = ["one_a_day"]  # the fixture

NOT_SENT = "Not sent: first"


def unsendable(made: Pass, subject: str = "first") -> None:
    """A message she drops with no recipient: to Needs attention at once, and she is told (``World.notify``)."""
    made.server.put(OUTBOX, mail(subject, to="").replace(b"To: \r\n", b""))


def test_a_notice_the_server_refused_is_told_by_a_later_pass_once(one_a_day: Pass) -> None:
    unsendable(one_a_day)
    one_a_day.server.fail("append", "INBOX", refused=True, times=2)  # NO to the notice, and to the pass's retry
    passes(one_a_day, 1, step=timedelta(minutes=1))
    assert one_a_day.subjects("Needs attention") == ["first"]
    assert told(one_a_day, NOT_SENT) == 0 and one_a_day.world.owed_notices()
    passes(one_a_day, 3)
    assert told(one_a_day, NOT_SENT) == 1, one_a_day.subjects("INBOX")
    assert one_a_day.world.owed_notices() == {}


def test_a_notice_whose_answer_is_lost_pass_after_pass_is_told_once(one_a_day: Pass) -> None:
    unsendable(one_a_day)
    one_a_day.server.fail("append", "INBOX", after=True, times=3)  # stored, then the connection drops: three times
    passes(one_a_day, 5)
    assert told(one_a_day, NOT_SENT) == 1, one_a_day.subjects("INBOX")
    assert one_a_day.world.owed_notices() == {}


def test_a_stop_right_before_a_notice_leaves_it_owed_to_the_next_start(
    one_a_day: Pass, monkeypatch: pytest.MonkeyPatch
) -> None:
    unsendable(one_a_day)
    killed_at(one_a_day, monkeypatch, World, "_append_notice")
    assert told(one_a_day, NOT_SENT) == 0
    passes(one_a_day, 2)  # the next start
    assert told(one_a_day, NOT_SENT) == 1, one_a_day.subjects("INBOX")


def test_notices_owed_are_told_oldest_first(one_a_day: Pass) -> None:
    unsendable(one_a_day, "first")
    one_a_day.server.fail("append", "INBOX", refused=True, times=2)
    passes(one_a_day, 1, step=timedelta(minutes=1))
    unsendable(one_a_day, "second")
    one_a_day.server.fail("append", "INBOX", refused=True, times=1)
    passes(one_a_day, 1, step=timedelta(minutes=1))  # its notice refused too; the retry waits for the back-off
    assert len(one_a_day.world.owed_notices()) == 2
    passes(one_a_day, 2)
    notices = [s.removeprefix("[mentor-agent] ") for s in one_a_day.subjects("INBOX")]
    assert notices == [NOT_SENT, "Not sent: second"]


def test_a_went_after_all_notice_the_server_refused_is_told_without_more_mail_in_sent(one_a_day: Pass) -> None:
    """Before, a refused "Went after all" was tried again only when something new reached Sent, or at a restart."""
    one_a_day.smtp.drop_after_data()  # accepted, then the line broke: in doubt
    one_a_day.server.put(OUTBOX, mail("first"))
    passes(one_a_day, 1)
    first = one_a_day.smtp.messages[-1].content
    one_a_day.server.fail("append", "INBOX", refused=True, times=2)
    one_a_day.server.put(SENT, first)  # her provider filed what its server took
    passes(one_a_day, 1, step=timedelta(minutes=1))
    assert told(one_a_day, "first") == 1, "so far only its In doubt"
    passes(one_a_day, 3)  # nothing new in Sent, no restart
    went = [s for s in one_a_day.subjects("INBOX") if "went after all" in s.lower()]
    assert len(went) == 1, one_a_day.subjects("INBOX")
