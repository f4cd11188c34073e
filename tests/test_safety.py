"""No slip of the student's destroys or silently sends mail: ids are unambiguous, `cancel` keeps the message,
one daemon per state directory, and a mentor is her addresses, not a file name."""

from __future__ import annotations

import hashlib
import itertools
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli.main import main
from agent.cli.steering import find_held
from agent.errors import UserError
from agent.store.ledger import SCHEDULED, Ledger, Row
from agent.store.statelock import EX_TEMPFAIL, acquire, holder
from tests.agent_process import MENTOR, OUTBOX, Agent, agent, eventually, mail, parse, policy_text

__all__ = ["agent"]
NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


def cli(agent: Agent, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [*args, "--config", str(agent.config)], env={"NO_COLOR": "1"})
    return result.exit_code, result.stdout, result.stderr


def held(agent: Agent, count: int = 1) -> list[dict[str, str]]:
    """What status lists as waiting, once the daemon has decided it."""

    def decided() -> list[dict[str, str]] | None:
        code, out, _ = cli(agent, "status", "--json")
        assert code == 0
        rows: list[dict[str, str]] = json.loads(out)["mentors"][0]["waiting"]
        ok = len(rows) == count and all(r["reason"] and r["state"] == "scheduled" for r in rows)
        return rows if ok else None

    return eventually(decided)


def _row(key: str, subject: str) -> Row:
    return Row(
        key=key,
        message_id=key,
        mentor="rivera",
        subject=subject,
        sender="sam@x.org",
        recipients=(MENTOR,),
        arrived=NOW,
        state=SCHEDULED,
        folder="Scheduled",
        uid=1,
        due=None,
        digest=None,
        reason="held",
        standalone=False,
        group_key="",
        forced=False,
        told="",
        attempts=0,
        item=None,
        sent_at=None,
        detail="",
    )


def _twins() -> tuple[str, str]:
    """Two Message-IDs whose short ids share their first four characters."""
    seen: dict[str, str] = {}
    for n in itertools.count():
        key = f"<twin{n}@x.org>"
        prefix = hashlib.sha256(key.encode()).hexdigest()[:4]
        if prefix in seen:
            return seen[prefix], key
        seen[prefix] = key
    raise AssertionError  # pragma: no cover


# -- ids are unambiguous ------------------------------------------------------------------------------------------


def test_an_empty_or_short_id_is_an_error_even_with_one_held_message(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite3")
    ledger.add(_row("<only@x.org>", "the only one"))
    for handle in ("", " ", "a", hashlib.sha256(b"<only@x.org>").hexdigest()[:3]):
        with pytest.raises(UserError, match="too short"):
            find_held(ledger, handle)
    assert find_held(ledger, hashlib.sha256(b"<only@x.org>").hexdigest()[:4]).row.key == "<only@x.org>"
    assert find_held(ledger, "<only@x.org>").row.subject == "the only one"  # the whole Message-ID works


def test_an_ambiguous_id_lists_the_matches_and_picks_none(tmp_path: Path) -> None:
    first, second = _twins()
    ledger = Ledger(tmp_path / "l.sqlite3")
    ledger.add(_row(first, "first twin"))
    ledger.add(_row(second, "second twin"))
    prefix = hashlib.sha256(first.encode()).hexdigest()[:4]
    with pytest.raises(UserError) as caught:
        find_held(ledger, prefix)
    text = str(caught.value)
    assert "matches 2 held messages" in text and "nothing was done" in text
    for key, subject in ((first, "first twin"), (second, "second twin")):
        assert f"[{hashlib.sha256(key.encode()).hexdigest()[:8]}] {subject}" in text


@pytest.mark.servers
def test_release_with_an_empty_id_sends_nothing_and_exits_non_zero(agent: Agent) -> None:
    agent.policy(policy_text(max_per_day=1))
    agent.start()
    agent.drop(mail("first"))
    agent.smtp.wait_for(1)
    agent.drop(mail("not yet"))
    held(agent)
    for command in ("release", "cancel"):
        code, _, err = cli(agent, command, "")
        assert code != 0 and "too short" in err, err
    time.sleep(2)
    assert len(agent.smtp.messages) == 1
    assert agent.subjects("Scheduled") == ["not yet"]


# -- cancel never destroys ----------------------------------------------------------------------------------------


@pytest.mark.servers
def test_cancel_puts_the_message_in_drafts_and_moving_it_back_sends_it(agent: Agent) -> None:
    agent.policy(policy_text(min_gap="5s"))
    agent.start()
    agent.drop(mail("first"))
    agent.smtp.wait_for(1)
    raw = mail("not after all")
    agent.drop(raw)
    [waiting] = held(agent)
    code, out, err = cli(agent, "cancel", waiting["id"])
    assert code == 0, err
    assert "cancelled" in out and "Drafts" in out
    drafts = agent.folder("Drafts")  # the test Dovecot's \Drafts folder
    assert [str(m["Subject"]) for m in drafts] == ["not after all"]
    assert drafts[0]["Message-ID"] == parse(raw)["Message-ID"]
    assert agent.folder_raw("Scheduled") == {}
    time.sleep(6)
    assert len(agent.smtp.messages) == 1, "cancelled: not sent"
    # The student changes her mind: from Drafts back to the Outbox, and it goes.
    with agent.dovecot.client(agent.user) as client:
        client.select_folder("Drafts")
        client.move(client.search(), OUTBOX)
    assert parse(agent.smtp.wait_for(2, timeout=20)[1].content)["Subject"] == "not after all"


@pytest.mark.servers
def test_cancel_creates_drafts_when_there_is_none(agent: Agent) -> None:
    agent.write_config()
    agent.config.write_text(
        agent.config.read_text().replace("timeout = 10\n", 'timeout = 10\nfolders = { drafts = "Kept drafts" }\n', 1)
    )
    agent.policy(policy_text(min_gap="1h"))
    agent.start()
    agent.drop(mail("first"))
    agent.smtp.wait_for(1)
    agent.drop(mail("keep me"))
    [waiting] = held(agent)
    code, out, err = cli(agent, "cancel", waiting["id"])
    assert code == 0, err
    assert "Kept drafts" in out
    assert agent.subjects("Kept drafts") == ["keep me"]


@pytest.mark.servers
def test_cancel_refuses_a_drafts_folder_that_is_the_outbox(agent: Agent) -> None:
    agent.config.write_text(
        agent.config.read_text().replace("timeout = 10\n", 'timeout = 10\nfolders = { drafts = "Mentor Outbox" }\n', 1)
    )
    agent.policy(policy_text(min_gap="1h"))
    agent.start()
    agent.drop(mail("first"))
    agent.smtp.wait_for(1)
    agent.drop(mail("keep me held"))
    [waiting] = held(agent)
    code, _, err = cli(agent, "cancel", waiting["id"])
    assert code != 0 and "imap.folders.drafts" in err, err
    time.sleep(2)
    assert agent.subjects("Scheduled") == ["keep me held"] and len(agent.smtp.messages) == 1


# -- one daemon per state directory -------------------------------------------------------------------------------


def test_the_lock_names_its_holder_and_goes_with_it(tmp_path: Path) -> None:
    assert holder(tmp_path) is None
    held_lock = acquire(tmp_path)
    try:
        import os

        assert holder(tmp_path) == os.getpid()
    finally:
        held_lock.release()
    assert holder(tmp_path) is None


@pytest.mark.servers
def test_a_second_daemon_on_one_state_directory_refuses_to_start(agent: Agent) -> None:
    agent.policy(policy_text(min_gap="1h"))
    agent.start()
    assert agent.process is not None
    first = agent.process.pid
    result = subprocess.run(
        [sys.executable, "-m", "agent", "run", "--config", str(agent.config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=agent.root,
        check=False,
    )
    assert result.returncode == EX_TEMPFAIL, result.stderr
    assert f"pid {first}" in result.stderr and "already running" in result.stderr
    code, table, _ = cli(agent, "status")
    assert code == 0 and f"daemon: connected, pid {first}" in table, table
    agent.drop(mail("first"))
    agent.smtp.wait_for(1)
    agent.drop(mail("held once"))
    held(agent)
    time.sleep(1)
    assert agent.subjects("Scheduled") == ["held once"]
    assert sum("held once" in str(n["Subject"]) for n in agent.notices()) == 1
    agent.stop()
    code, table, _ = cli(agent, "status")
    assert "daemon: not running" in table, table


@pytest.mark.servers
def test_status_says_not_running_after_a_kill_9(agent: Agent) -> None:
    import signal

    agent.start()
    agent.stop(signal.SIGKILL)  # the ledger still says "running": the lock knows better
    code, out, _ = cli(agent, "status", "--json")
    assert code == 0 and json.loads(out)["daemon"]["running"] == "no"


# -- a mentor is her addresses, not a file name -------------------------------------------------------------------


def _items(agent: Agent) -> list[tuple[str, str]]:
    """(policy id, addresses) of what the ledger counts as received by a mentor."""
    ledger = agent.ledger()
    try:
        return [(r[0], r[1] or "") for r in ledger.db.execute("SELECT mentor, addresses FROM items ORDER BY at")]
    finally:
        ledger.close()


def _policy_notices(agent: Agent, words: str) -> list[str]:
    return [n.get_content() for n in agent.notices() if words in str(n["Subject"])]


@pytest.mark.servers
def test_renaming_her_policy_file_neither_releases_nor_forgets(agent: Agent) -> None:
    agent.policy(policy_text(max_per_day=1))
    agent.start()
    agent.drop(mail("first"))
    agent.smtp.wait_for(1)
    agent.drop(mail("second, held"))
    held(agent)
    policies = agent.root / "policies"
    (policies / "rivera.toml").rename(policies / "dr-rivera.toml")
    time.sleep(3)  # the file watcher reacts within about a second
    assert len(agent.smtp.messages) == 1, "renaming the file released nothing"
    assert "renamed to" in agent.log()
    agent.drop(mail("third, held too"))  # her history follows her: 1 of 1 today is still used
    eventually(lambda: sorted(agent.subjects("Scheduled")) == ["second, held", "third, held too"])
    time.sleep(3)
    assert len(agent.smtp.messages) == 1, "renaming the file released nothing"
    code, out, _ = cli(agent, "status", "--json")
    assert code == 0
    [rivera] = json.loads(out)["mentors"]
    assert rivera["id"] == "dr-rivera" and rivera["today"]["sent"] == 1
    assert sorted(w["subject"] for w in rivera["waiting"]) == ["second, held", "third, held too"]
    assert not _policy_notices(agent, "No longer pacing") and not _policy_notices(agent, "removed")
    # A send under the new name is counted by her addresses too.
    with agent.dovecot.client(agent.user) as client:
        client.select_folder("Scheduled")
        client.add_flags(client.search(), [b"\\Flagged"])
    agent.smtp.wait_for(3)
    rows = eventually(lambda: _items(agent) if len(_items(agent)) == 3 else None)
    assert all(f" {MENTOR} " in addresses for _, addresses in rows), rows


@pytest.mark.servers
def test_removing_her_policy_file_keeps_her_mail_held_with_one_notice_until_flagged(agent: Agent) -> None:
    agent.policy(policy_text(max_per_day=1))
    agent.start()
    agent.drop(mail("first"))
    agent.smtp.wait_for(1)
    agent.drop(mail("second, held"))
    held(agent)
    (agent.root / "policies" / "rivera.toml").unlink()
    time.sleep(3)  # the file watcher reacts within about a second
    assert len(agent.smtp.messages) == 1, "a missing file released nothing"
    notice = eventually(lambda: _policy_notices(agent, "Policy file removed"), timeout=15)[0]
    assert "second, held" in notice and "put the file back" in notice and "flag them" in notice
    agent.drop(mail("third"))  # her last good policy is still in force while her mail waits
    eventually(lambda: sorted(agent.subjects("Scheduled")) == ["second, held", "third"])
    time.sleep(3)  # several passes
    assert len(agent.smtp.messages) == 1, "a missing file released nothing"
    assert len(_policy_notices(agent, "Policy file removed")) == 1, "told once, not once per pass"
    # Flagged: they go now, and count for her.
    with agent.dovecot.client(agent.user) as client:
        client.select_folder("Scheduled")
        client.add_flags(client.search(), [b"\\Flagged"])
    received = agent.smtp.wait_for(3)
    assert {str(parse(r.content)["Subject"]) for r in received[1:]} == {"second, held", "third"}
    rows = eventually(lambda: _items(agent) if len(_items(agent)) == 3 else None)
    assert all(f" {MENTOR} " in addresses for _, addresses in rows), rows
    # Nothing of hers waits any more: from now on her mail is ordinary mail, as the file's removal asked.
    eventually(lambda: "no longer in force" in agent.log())
    agent.drop(mail("fourth"))
    agent.smtp.wait_for(4)


@pytest.mark.servers
def test_a_policy_file_gone_while_the_agent_was_stopped_releases_nothing(agent: Agent) -> None:
    agent.policy(policy_text(max_per_day=1))
    agent.start()
    agent.drop(mail("first"))
    agent.smtp.wait_for(1)
    agent.drop(mail("second, held"))
    held(agent)
    agent.stop()
    (agent.root / "policies" / "rivera.toml").unlink()
    (agent.root / "policies" / "other.toml").write_text(policy_text().replace(MENTOR, "other@clinic.example.org"))
    for _ in range(2):
        agent.start()
        notice = eventually(lambda: _policy_notices(agent, "policy file is gone"), timeout=15)[0]
        assert "second, held" in notice and "rivera.toml" in notice
        time.sleep(2)
        agent.stop()
    assert len(agent.smtp.messages) == 1
    assert agent.subjects("Scheduled") == ["second, held"]
    assert len(_policy_notices(agent, "policy file is gone")) == 1, "told once, not at every start"
    code, out, _ = cli(agent, "status", "--json")
    assert code == 0 and [m["subject"] for m in json.loads(out)["policy_missing"]] == ["second, held"]
    assert "policy file is gone" in cli(agent, "status")[1]
    # Flagged, it goes now (the student's call), and counts for her by the addresses the ledger kept.
    agent.start()
    with agent.dovecot.client(agent.user) as client:
        client.select_folder("Scheduled")
        client.add_flags(client.search(), [b"\\Flagged"])
    assert str(parse(agent.smtp.wait_for(2)[1].content)["Subject"]) == "second, held"
    rows = eventually(lambda: _items(agent) if len(_items(agent)) == 2 else None)
    assert all(f" {MENTOR} " in addresses for _, addresses in rows), rows
