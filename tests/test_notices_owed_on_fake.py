"""A notice whose APPEND's answer never came (the connection dropped, or was cut as too slow) may be in her mailbox:
tried again at a later pass, it is looked for first (agent.store.notices_owed). Hostile round on the trickle: a server
that cut every APPEND's answer made her a new copy of the same notice at every reconnect, without end."""

from __future__ import annotations

import contextlib

from agent.mail.session import MailboxError
from agent.store.notices_owed import in_doubt
from tests.agent_process import OUTBOX
from tests.test_passes_on_fake import Pass, mail, one_a_day

__all__ = ["one_a_day"]  # the fixture


def told(made: Pass, words: str) -> int:
    return sum(1 for subject in made.subjects("INBOX") if words in subject)


def test_a_notice_whose_answer_is_lost_pass_after_pass_is_told_once(one_a_day: Pass) -> None:
    one_a_day.server.put(OUTBOX, mail("first"))
    one_a_day.run()
    one_a_day.server.put(OUTBOX, mail("second"))
    one_a_day.server.fail("append", "INBOX", after=True, times=3)  # stored, then the connection drops: three times
    for _ in range(4):
        with contextlib.suppress(MailboxError):
            one_a_day.run()
        one_a_day.box.connect()  # the daemon reconnects
    assert one_a_day.subjects("Scheduled") == ["second"]
    assert told(one_a_day, "second") == 1, one_a_day.subjects("INBOX")
    assert in_doubt(one_a_day.world.ledger) == {}, "settled once found"


def test_a_notice_the_server_refused_is_appended_again_and_told_once(one_a_day: Pass) -> None:
    """A NO is an answer: the notice is not there, nothing to look for; the next pass appends it."""
    one_a_day.server.put(OUTBOX, mail("first"))
    one_a_day.run()
    one_a_day.server.put(OUTBOX, mail("second"))
    one_a_day.server.fail("append", "INBOX", refused=True, times=2)
    for _ in range(3):
        one_a_day.run()
    assert told(one_a_day, "second") == 1, one_a_day.subjects("INBOX")
    assert in_doubt(one_a_day.world.ledger) == {}


def test_a_notice_in_doubt_she_deleted_is_told_again(one_a_day: Pass) -> None:
    """Looked for and not found (never stored, or she deleted it before the next try): appended again, once."""
    one_a_day.server.put(OUTBOX, mail("first"))
    one_a_day.run()
    one_a_day.server.put(OUTBOX, mail("second"))
    one_a_day.server.fail("append", "INBOX", after=False)  # the connection drops before the APPEND is stored
    with contextlib.suppress(MailboxError):
        one_a_day.run()
    one_a_day.box.connect()
    assert told(one_a_day, "second") == 0 and len(in_doubt(one_a_day.world.ledger)) == 1
    one_a_day.run()
    assert told(one_a_day, "second") == 1 and in_doubt(one_a_day.world.ledger) == {}
