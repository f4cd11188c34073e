"""A server refusing the folder look for now (agent/rules/server_trouble.py, agent/daemon/trouble.py): the spell's
rules, and the "works again" notice told once. The daemon end to end: tests/test_folders_as_listed.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.daemon.trouble import tell_works_again
from agent.rules.server_trouble import GAP, Spell, failed, from_text, to_text
from tests.agent_process import policy_text
from tests.servers.smtp import SmtpServer
from tests.test_passes_on_fake import Pass

START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def test_a_spell_counts_its_refusals_and_is_due_once_it_has_lasted_half_an_hour() -> None:
    spell = failed(None, START, "[UNAVAILABLE] one")
    for minutes in (5, 10, 15, 20, 25):
        spell = failed(spell, START + timedelta(minutes=minutes), "[UNAVAILABLE] later")
    assert spell.tries == 6 and spell.words == "[UNAVAILABLE] later" and spell.since == START
    assert not spell.due(START + timedelta(minutes=29)) and spell.due(START + timedelta(minutes=30))
    assert not Spell(START, 6, "x", told=True).due(START + timedelta(hours=5))


def test_refusals_further_apart_than_the_gap_start_the_spell_again_and_keep_a_notice_told() -> None:
    """Second hostile round: a spell kept across a long stop was due at the first refusal after it."""
    told = Spell(START, 9, "x", told=True, last=START + timedelta(minutes=40))
    again = failed(told, START + timedelta(minutes=40) + GAP + timedelta(seconds=1), "y")
    assert again.since == again.last and again.tries == 1 and again.told
    assert not failed(None, START, "x").lasted()  # one refusal, however long ago (third round: the daemon stopped)
    assert failed(failed(None, START, "x"), START + timedelta(minutes=14), "x").lasted() is False
    assert Spell(START, 7, "x", last=START + timedelta(minutes=30)).lasted()


def test_a_spell_kept_in_the_ledger_reads_back_the_same() -> None:
    spell = Spell(START, 3, "NO [SERVERBUG] “quoted”", told=True, last=START + timedelta(minutes=9))
    assert from_text(to_text(spell)) == spell
    assert from_text("") is None and from_text("{not json") is None
    older = '{"since": "2026-12-07T09:00:00+00:00", "tries": 2, "words": "w", "told": false}'  # kept no "last"
    assert from_text(older) == Spell(START, 2, "w", False, START)


def test_works_again_whose_append_went_unanswered_is_not_told_twice(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """Second hostile round: the connection dropped right after the server stored the notice; told again."""
    made = Pass(tmp_path, smtp_server, policy_text())
    try:
        spell = Spell(START, 4, "[UNAVAILABLE] try later", told=True)
        made.server.fail("append", "INBOX", after=True)
        assert not asyncio.run(tell_works_again(made.world, spell))  # stored, its answer lost
        made.box.connect()
        assert asyncio.run(tell_works_again(made.world, spell))  # found: not appended again
        works = [s for s in made.subjects("INBOX") if "works again" in s]
        assert works == ["[mentor-agent] Back in your mailbox: your mail server works again"]
    finally:
        made.world.ledger.close()
