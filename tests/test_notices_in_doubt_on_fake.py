"""A notice whose APPEND's answer never came (the connection dropped, was cut as too slow, or a kill) may be in her
mailbox. The notices a later pass tries again (the intake's "Scheduled", the meeting desk's, the Sent folder's) are
told under an id of what they tell (``World.notify_once``) and looked for before they are appended again.

Hostile rounds on the trickle: a server that cut every APPEND's answer made her a new copy of the same notice at every
reconnect, without end; a first fix, keyed by the notice's words and a time limit, told some twice (a retry after the
limit, a failed look taken for an answer) and held others back (a later event in the same words)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest

from agent.mail.session import MailboxError
from agent.rules.policy import PolicyBook, load_policies
from tests.agent_process import OUTBOX, policy_text
from tests.test_passes_on_fake import Pass, mail, one_a_day

__all__ = ["one_a_day"]  # the fixture
MONDAY = datetime(2026, 12, 7, 15, tzinfo=UTC)  # 9:00 in the mentor's Chicago


def told(made: Pass, words: str) -> int:
    return sum(1 for subject in made.subjects("INBOX") if words in subject)


def held_second(made: Pass) -> None:
    """ "first" went; "second", over the day's one, is to be held with a notice on the next pass."""
    made.world.clock = lambda: MONDAY
    made.server.put(OUTBOX, mail("first"))
    made.run()
    made.server.put(OUTBOX, mail("second"))


def passes(made: Pass, count: int) -> None:
    for _ in range(count):
        with contextlib.suppress(MailboxError):
            made.run()
        made.box.connect()  # the daemon reconnects


def test_a_notice_whose_answer_is_lost_pass_after_pass_is_told_once(one_a_day: Pass) -> None:
    held_second(one_a_day)
    one_a_day.server.fail("append", "INBOX", after=True, times=3)  # stored, then the connection drops: three times
    passes(one_a_day, 4)
    assert one_a_day.subjects("Scheduled") == ["second"]
    assert told(one_a_day, "second") == 1, one_a_day.subjects("INBOX")


def test_a_notice_the_server_refused_is_appended_again_and_told_once(one_a_day: Pass) -> None:
    """A NO is an answer: it is not there; the next pass appends it."""
    held_second(one_a_day)
    one_a_day.server.fail("append", "INBOX", refused=True, times=2)
    passes(one_a_day, 3)
    assert told(one_a_day, "second") == 1, one_a_day.subjects("INBOX")


def test_a_notice_lost_before_it_was_stored_is_appended_on_the_next_try(one_a_day: Pass) -> None:
    held_second(one_a_day)
    one_a_day.server.fail("append", "INBOX")  # the connection drops before the APPEND is stored
    passes(one_a_day, 1)
    assert told(one_a_day, "second") == 0
    passes(one_a_day, 1)
    assert told(one_a_day, "second") == 1


def test_a_look_that_fails_is_no_answer_and_a_late_retry_still_finds_it(one_a_day: Pass) -> None:
    """Third hostile round: a NO to the look for the earlier copy was taken for the APPEND's answer, and a retry more
    than 15 minutes later appended a second copy. Now the look must answer before anything is appended, however late."""
    held_second(one_a_day)
    one_a_day.server.fail("append", "INBOX", after=True)
    one_a_day.server.fail("find_by_message_id", "INBOX", refused=True)
    passes(one_a_day, 2)
    one_a_day.world.clock = lambda: MONDAY + timedelta(hours=2)  # an outage, the back-off, a restart
    passes(one_a_day, 2)
    assert told(one_a_day, "second") == 1, one_a_day.subjects("INBOX")


def test_a_kill_after_the_append_leaves_the_notice_to_be_found(
    one_a_day: Pass, monkeypatch: pytest.MonkeyPatch
) -> None:
    held_second(one_a_day)
    real = one_a_day.box.append

    def append_then_killed(folder: str, raw: bytes) -> int | None:
        real(folder, raw)
        raise SystemExit("killed")

    monkeypatch.setattr(one_a_day.box, "append", append_then_killed)
    with pytest.raises(SystemExit):
        one_a_day.run()
    monkeypatch.undo()
    passes(one_a_day, 2)  # the next start
    assert told(one_a_day, "second") == 1, one_a_day.subjects("INBOX")


def test_another_hold_in_the_same_words_is_told(one_a_day: Pass) -> None:
    """Second and third hostile rounds: a later event was held back as "found in her mailbox" because its notice had
    the words of one cut before. Now what is told is the hold itself: another one is another notice."""
    held_second(one_a_day)
    one_a_day.server.fail("append", "INBOX", after=True)
    passes(one_a_day, 2)
    assert told(one_a_day, "second") == 1
    [uid] = one_a_day.server.messages("Scheduled")
    one_a_day.box.delete("Scheduled", uid)  # she cancels it, then writes it again
    one_a_day.server.put(OUTBOX, mail("second"))
    passes(one_a_day, 2)
    assert told(one_a_day, "second") == 2, one_a_day.subjects("INBOX")


def test_a_time_that_comes_back_is_told_again(one_a_day: Pass) -> None:
    """Fourth hostile round: held to midnight and told; a window added moved it to 9:00 and she was told; the window
    taken out moved it back to midnight, and that was not told (the id of the first notice came back, and it was
    found in her mailbox), so her newest notice gave 9:00 for a message that went at midnight."""
    held_second(one_a_day)
    passes(one_a_day, 1)
    policies = one_a_day.settings.policies_dir

    def agreed(windows: str) -> None:
        (policies / "rivera.toml").write_text(policy_text(max_per_day=1, windows=windows))
        one_a_day.world.book = PolicyBook(load_policies(policies))
        passes(one_a_day, 1)

    agreed('"Mon-Sun 09:00-17:00"')
    agreed('"Mon-Sun 00:00-24:00"')
    assert told(one_a_day, "second") == 3, one_a_day.subjects("INBOX")
