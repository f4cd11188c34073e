"""A notice whose APPEND's answer never came (the connection dropped, or was cut as too slow) may be in her mailbox:
tried again at a later pass, it is looked for first (agent.store.notices_owed). Hostile round on the trickle: a server
that cut every APPEND's answer made her a new copy of the same notice at every reconnect, without end."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import pytest

from agent.mail.session import MailboxError
from agent.store.notices_owed import KEY
from tests.agent_process import OUTBOX
from tests.test_passes_on_fake import Pass, mail, one_a_day

__all__ = ["one_a_day"]  # the fixture


def in_doubt(made: Pass) -> str:
    return made.world.ledger.meta_value(KEY) or "{}"


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
    assert in_doubt(one_a_day) == "{}", "settled once found"


def test_a_notice_the_server_refused_is_appended_again_and_told_once(one_a_day: Pass) -> None:
    """A NO is an answer: the notice is not there, nothing to look for; the next pass appends it."""
    one_a_day.server.put(OUTBOX, mail("first"))
    one_a_day.run()
    one_a_day.server.put(OUTBOX, mail("second"))
    one_a_day.server.fail("append", "INBOX", refused=True, times=2)
    for _ in range(3):
        one_a_day.run()
    assert told(one_a_day, "second") == 1, one_a_day.subjects("INBOX")
    assert in_doubt(one_a_day) == "{}"


def test_a_notice_in_doubt_she_deleted_is_told_again(one_a_day: Pass) -> None:
    """Looked for and not found (never stored, or she deleted it before the next try): appended again, once."""
    one_a_day.server.put(OUTBOX, mail("first"))
    one_a_day.run()
    one_a_day.server.put(OUTBOX, mail("second"))
    one_a_day.server.fail("append", "INBOX", after=False)  # the connection drops before the APPEND is stored
    with contextlib.suppress(MailboxError):
        one_a_day.run()
    one_a_day.box.connect()
    assert told(one_a_day, "second") == 0 and in_doubt(one_a_day) != "{}"
    one_a_day.run()
    assert told(one_a_day, "second") == 1 and in_doubt(one_a_day) == "{}"


def notify(made: Pass, title: str, *, once: str | None = None) -> bool:
    world = made.world
    lines = ["The same words each time."]
    return asyncio.run(world.notify_once(title, lines, once) if once else world.notify(title, lines))


def test_the_same_words_told_again_later_are_a_new_notice(one_a_day: Pass) -> None:
    """Second hostile round: a notice cut on Monday (the login refused) held back Thursday's, in the same words (the
    login refused again), as "found in her mailbox". Only a try soon after is the same notice again."""
    monday = datetime(2026, 12, 7, 9, tzinfo=UTC)
    one_a_day.world.clock = lambda: monday
    one_a_day.server.fail("append", "INBOX", after=True)
    assert not notify(one_a_day, "Not sending: the mail server refused the login")
    one_a_day.box.connect()  # the daemon reconnects
    one_a_day.world.clock = lambda: monday + timedelta(minutes=5)  # its caller tries again at a later pass
    assert notify(one_a_day, "Not sending: the mail server refused the login")
    assert told(one_a_day, "refused the login") == 1
    one_a_day.world.clock = lambda: monday + timedelta(days=3)
    assert notify(one_a_day, "Not sending: the mail server refused the login")
    assert told(one_a_day, "refused the login") == 2


def test_a_cut_notice_nobody_tries_again_holds_back_nothing_later(one_a_day: Pass) -> None:
    monday = datetime(2026, 12, 7, 9, tzinfo=UTC)
    one_a_day.world.clock = lambda: monday
    one_a_day.server.fail("append", "INBOX", after=True)
    assert not notify(one_a_day, "Policy not taken in: rivera.toml")
    one_a_day.box.connect()
    one_a_day.world.clock = lambda: monday + timedelta(hours=1)  # she fixed it, then made the same slip again
    assert notify(one_a_day, "Policy not taken in: rivera.toml")
    assert told(one_a_day, "Policy not taken in") == 2


def test_notices_told_once_by_their_own_id_are_not_held_back_by_their_words(one_a_day: Pass) -> None:
    """Second hostile round: week 49's notice (told once by its id) cut, found at its retry; week 50's, in the same
    words under another id, was then never appended."""
    one_a_day.server.fail("append", "INBOX", after=True)
    assert not notify(one_a_day, "Connections full", once="limit-2026-49")
    one_a_day.box.connect()
    assert notify(one_a_day, "Connections full", once="limit-2026-49")
    assert notify(one_a_day, "Connections full", once="limit-2026-50")
    assert told(one_a_day, "Connections full") == 2


def test_a_kill_after_the_append_leaves_the_notice_to_be_looked_for(
    one_a_day: Pass, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Second hostile round: a kill -9 between the stored APPEND and its answer left nothing to look for, and the
    restart told the notice twice. The try is noted before its APPEND."""
    real = one_a_day.box.append

    def append_then_killed(folder: str, raw: bytes) -> int | None:
        real(folder, raw)
        raise SystemExit("killed")

    monkeypatch.setattr(one_a_day.box, "append", append_then_killed)
    with pytest.raises(SystemExit):
        notify(one_a_day, "Scheduled: second")
    monkeypatch.undo()
    assert notify(one_a_day, "Scheduled: second")  # the next start tells it again: found
    assert told(one_a_day, "Scheduled: second") == 1
