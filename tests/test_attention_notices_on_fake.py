"""The notice of a message put in Needs attention ("In doubt", "Not sent") is owed until it is in her mailbox.

Before, it was told once and never again: an APPEND the server refused (a full mailbox, a moment's NO), cut or
stopped left her unaware that a message may have reached her mentor, or did not go. Now each pass tells what is still
owed, under the notice's own id (``World.notify_once``): told once, also when the first APPEND's answer was lost.

On the in-memory mailbox and the real aiosmtpd server.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from pathlib import Path

import pytest

from agent.mail.session import MailboxError
from agent.reconcile import attention
from agent.reconcile.attention import MOVED_BACK, RETRY_LATER
from agent.store.ledger import ATTENTION
from tests.agent_process import MENTOR, OUTBOX, parse, policy_text
from tests.servers.smtp import SmtpServer
from tests.test_passes_on_fake import SENT, Pass, mail, one_a_day

__all__ = ["one_a_day"]  # the fixture


def told(made: Pass, words: str) -> int:
    return sum(1 for subject in made.subjects("INBOX") if subject.endswith(words))


def passes(made: Pass, count: int, step: timedelta = RETRY_LATER + timedelta(minutes=1)) -> None:
    """The daemon's next passes, each ``step`` after the one before (by default past the owed notices' back-off)."""
    for _ in range(count):
        with contextlib.suppress(MailboxError):
            made.run()
        made.box.connect()  # the daemon reconnects
        later = made.world.now() + step
        made.world.clock = lambda later=later: later  # type: ignore[misc]


def killed_at(made: Pass, monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> None:
    """A pass killed (SIGKILL in production) where ``owner.name`` is first called: nothing after it runs."""

    def killed(*_: object, **__: object) -> bool:
        raise SystemExit("killed before the notice")

    monkeypatch.setattr(owner, name, killed)
    with pytest.raises(SystemExit):
        made.run()
    monkeypatch.undo()


def owed(made: Pass) -> list[str]:
    return [row.subject for row in made.world.ledger.in_states(ATTENTION) if row.told]


def test_a_not_sent_notice_the_server_refused_is_told_by_the_next_pass_once(one_a_day: Pass) -> None:
    one_a_day.smtp.refuse(MENTOR, "550 5.1.1 no such user", times=1)
    one_a_day.server.put(OUTBOX, mail("first"))
    one_a_day.server.fail("append", "INBOX", refused=True, times=2)  # NO to the notice (her mailbox full, say), and
    passes(one_a_day, 1)  # NO again to the pass's try of what is owed
    assert one_a_day.subjects("Needs attention") == ["first"]
    assert told(one_a_day, "Not sent: first") == 0 and owed(one_a_day) == ["first"]
    passes(one_a_day, 3)
    assert told(one_a_day, "Not sent: first") == 1, one_a_day.subjects("INBOX")
    assert owed(one_a_day) == []
    assert one_a_day.smtp.messages == [], "nothing is sent again from Needs attention"


def test_an_in_doubt_notice_whose_answer_is_lost_pass_after_pass_is_told_once(one_a_day: Pass) -> None:
    one_a_day.smtp.drop_after_data()  # accepted, then the connection broke: in doubt
    one_a_day.server.put(OUTBOX, mail("first"))
    one_a_day.server.fail("append", "INBOX", after=True, times=3)  # stored, then the connection drops: three times
    passes(one_a_day, 5)
    assert one_a_day.subjects("Needs attention") == ["first"]
    assert told(one_a_day, "In doubt: first") == 1, one_a_day.subjects("INBOX")
    assert owed(one_a_day) == []
    assert len(one_a_day.smtp.messages) == 1, "an in-doubt message is never sent again by itself"


def test_a_stop_before_the_notice_leaves_it_owed_to_the_next_start(
    one_a_day: Pass, monkeypatch: pytest.MonkeyPatch
) -> None:
    one_a_day.smtp.drop_after_data()
    one_a_day.server.put(OUTBOX, mail("first"))
    killed_at(one_a_day, monkeypatch, one_a_day.world, "notify_once")
    assert told(one_a_day, "In doubt: first") == 0
    passes(one_a_day, 2)  # the next start
    assert told(one_a_day, "In doubt: first") == 1, one_a_day.subjects("INBOX")


def test_a_look_that_fails_appends_nothing_and_the_next_pass_tells_it_once(one_a_day: Pass) -> None:
    one_a_day.smtp.refuse(MENTOR, "550 5.1.1 no such user", times=1)
    one_a_day.server.put(OUTBOX, mail("first"))
    one_a_day.server.fail("append", "INBOX", after=True)  # in her mailbox, but the answer never came
    one_a_day.server.fail("find_by_message_id", "INBOX", refused=True, times=2)  # and the looks are refused
    passes(one_a_day, 4)
    assert told(one_a_day, "Not sent: first") == 1, one_a_day.subjects("INBOX")
    assert owed(one_a_day) == []


def test_each_message_of_a_failed_release_is_told_once(one_a_day: Pass) -> None:
    """Two messages in doubt from one failure: one notice each, the second not held back by the first's."""
    one_a_day.smtp.refuse(MENTOR, "550 5.1.1 no such user", times=1)
    one_a_day.smtp.refuse("friend@example.org", "550 5.1.1 no such user", times=1)
    one_a_day.server.put(OUTBOX, mail("first"))
    one_a_day.server.put(OUTBOX, mail("to a friend", to="friend@example.org"))
    one_a_day.server.fail("append", "INBOX", refused=True, times=2)
    passes(one_a_day, 3)
    assert told(one_a_day, "Not sent: first") == 1, one_a_day.subjects("INBOX")
    assert told(one_a_day, "Not sent: to a friend") == 1, one_a_day.subjects("INBOX")


def test_a_server_that_cuts_every_append_is_tried_once_in_ten_minutes_after_the_passes_work(one_a_day: Pass) -> None:
    """Hostile round on the owed notices: with every APPEND to her notices cut, the try at each pass ended every
    session before its work (the meeting desk, IDLE), and the reconnects backed off up to five minutes: due mail
    waited. The owed notices are tried last in a pass, and again only ten minutes after a failed try."""
    one_a_day.smtp.refuse(MENTOR, "550 5.1.1 no such user", times=1)
    one_a_day.server.put(OUTBOX, mail("first"))
    one_a_day.server.fail("append", "INBOX", times=1000)  # the connection drops at every APPEND to INBOX
    passes(one_a_day, 30, step=timedelta(minutes=1))
    tries = sum(1 for operation, folder in one_a_day.server.commands if operation == "append" and folder == "INBOX")
    assert tries <= 2 + 30 // 10, f"{tries} APPENDs in 30 minutes"
    one_a_day.server.failures.clear()
    passes(one_a_day, 2)
    assert told(one_a_day, "Not sent: first") == 1, one_a_day.subjects("INBOX")


def moved_back_while_owed(made: Pass) -> None:
    """ "first" in doubt, its notice refused (owed); she moves it back to the Outbox."""
    made.smtp.drop_after_data()
    made.server.put(OUTBOX, mail("first"))
    made.server.fail("append", "INBOX", refused=True, times=2)
    passes(made, 1)
    assert told(made, "In doubt: first") == 0 and owed(made) == ["first"]
    [(uid, raw)] = made.server.messages("Needs attention").items()
    made.box.delete("Needs attention", uid)
    made.server.put(OUTBOX, raw)


def test_an_in_doubt_notice_owed_when_she_moves_the_message_back_is_told_once(one_a_day: Pass) -> None:
    """Hostile round: the owed "In doubt" went with the row when she moved the message back (the row starts afresh):
    she was never told that the first try may have reached her mentor, though it counts as sent in the pace."""
    moved_back_while_owed(one_a_day)
    passes(one_a_day, 3)
    assert told(one_a_day, "In doubt: first") == 1, one_a_day.subjects("INBOX")
    assert one_a_day.subjects("Scheduled") == ["first"], "the first hand-over counts: one a day"


def test_an_in_doubt_notice_owed_when_moved_back_while_the_mailbox_still_refuses_is_told_later_once(
    one_a_day: Pass,
) -> None:
    """Second hostile round: told with one try at the move-back, and forgotten when it failed."""
    moved_back_while_owed(one_a_day)
    one_a_day.server.fail("append", "INBOX", refused=True, times=3)
    passes(one_a_day, 5)
    assert told(one_a_day, "In doubt: first") == 1, one_a_day.subjects("INBOX")
    [notice] = [m for m in one_a_day.server.messages("INBOX").values() if b"In doubt: first" in m]
    assert b"You have since moved it back to the Outbox" in notice.replace(b"\r\n", b" ")


def test_an_in_doubt_notice_owed_when_moved_back_survives_a_kill_before_it(
    one_a_day: Pass, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Second hostile round: the move-back was taken in (its old row forgotten) and the daemon killed before the
    notice: nothing was left owed after the restart."""
    moved_back_while_owed(one_a_day)
    killed_at(one_a_day, monkeypatch, attention, "_tell")
    passes(one_a_day, 2)  # the next start
    assert told(one_a_day, "In doubt: first") == 1, one_a_day.subjects("INBOX")


def test_an_owed_in_doubt_is_not_told_once_the_first_try_is_found_in_sent(one_a_day: Pass) -> None:
    """Third hostile round: moved back while its "In doubt" was owed, then her provider's copy of the first try
    turned up in Sent (the copy she moved back is set aside, not sent). The notice then said it "may or may not have
    reached" the mentor; without the move-back nothing of the kind is told. Now it is dropped as there."""
    one_a_day.smtp.drop_after_data()
    one_a_day.server.put(OUTBOX, mail("first"))
    failing = one_a_day.server.fail("append", "INBOX", refused=True, times=10**6)  # her notices refused throughout
    passes(one_a_day, 1)
    [(uid, raw)] = one_a_day.server.messages("Needs attention").items()
    one_a_day.box.delete("Needs attention", uid)
    one_a_day.server.put(OUTBOX, raw)  # she moves it back: it waits for tomorrow (one a day)
    passes(one_a_day, 2)
    one_a_day.server.put(SENT, raw)  # her provider filed what its server took the first time
    passes(one_a_day, 2)
    failing.times = 0
    passes(one_a_day, 3)
    assert len(one_a_day.smtp.messages) == 1, "the copy moved back is set aside, not sent"
    assert told(one_a_day, "In doubt: first") == 0, one_a_day.subjects("INBOX")
    assert one_a_day.world.ledger.metas(MOVED_BACK) == {}


def test_the_in_doubt_notice_of_a_digest_names_the_messages_that_went_with_it(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """Three messages went as one digest and the connection broke after it: each is in doubt, and each notice says
    it went in one e-mail with the other two (three separate notices left her to think of three separate e-mails)."""
    made = Pass(tmp_path, smtp_server, policy_text(max_per_day=1, over_limit="batch"))
    try:
        made.server.put(OUTBOX, mail("first"))
        made.run()
        for subject in ("alpha", "beta", "gamma"):
            made.server.put(OUTBOX, mail(subject))
        made.run()
        assert sorted(made.subjects("Scheduled")) == ["alpha", "beta", "gamma"]
        made.smtp.drop_after_data()
        tomorrow = made.world.now() + timedelta(days=1)
        made.world.clock = lambda: tomorrow
        made.run()
        assert len(made.smtp.messages) == 2, "one digest went, once"
        assert sorted(made.subjects("Needs attention")) == ["alpha", "beta", "gamma"]
        bodies = {
            str(notice["Subject"]): " ".join(str((notice.get_body(("plain",)) or notice).get_content()).split())
            for notice in map(parse, made.server.messages("INBOX").values())
            if "In doubt" in str(notice["Subject"])
        }
        assert len(bodies) == 3
        assert "inside one digest e-mail together with “beta”, “gamma”" in bodies["[mentor-agent] In doubt: alpha"]
    finally:
        made.world.ledger.close()
