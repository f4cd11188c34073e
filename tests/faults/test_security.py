"""Security: spoofed replies change nothing; secrets never reach logs, notices or state; a config file that
others may read is refused at start; nothing the agent does is triggered by mail from strangers."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.agent_process import MENTOR, OUTBOX, STUDENT, Agent, eventually, mail, parse, policy_text
from tests.faults.accounting import folder_subjects
from tests.servers.dovecot import Dovecot, User

pytestmark = pytest.mark.servers

CANARY = "Canary-Secret-7f3e9d1b"  # the working IMAP password
WRONG_CANARY = "Wrong-Canary-0a4c2e6f"  # a wrong one, to walk the login-failure paths too
STRANGER = "someone@else.example"


def _user(dovecot: Dovecot, password: str) -> User:
    user = dovecot.new_user("canary")
    user = User(user.username, password)
    path = dovecot.users / user.username
    path.write_text(f"{user.username}:{{PLAIN}}{password}::::::\n")
    path.chmod(0o644)
    return user


def _calendar(method: str, attendee: str) -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//y//EN\r\n"
        f"METHOD:{method}\r\nBEGIN:VEVENT\r\nUID:meeting-1@med.example.edu\r\nDTSTAMP:20260907T090000Z\r\n"
        "DTSTART:20260910T150000Z\r\nDTEND:20260910T153000Z\r\nSEQUENCE:0\r\n"
        f"ORGANIZER:mailto:{STUDENT}\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:{attendee}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def _spoofs(first_id: str) -> list[bytes]:
    """Replies to the first message that only look as if they came from the mentor."""

    def reply(sender: str, **more: Any) -> bytes:
        return mail("Re: first question", to=STUDENT, From=sender, In_Reply_To=first_id, References=first_id, **more)

    return [
        reply(f"Someone <{STRANGER}>"),
        reply("Ana Rivera <arivera@hospital.example.org.evil.example>"),
        reply(f'"{MENTOR}" <{STRANGER}>'),
        reply(f"Someone <{STRANGER}>", Sender=MENTOR, Reply_To=MENTOR),
        reply(f"Ana <arivera@HOSPITAL.example.org@{STRANGER.split('@')[1]}>"),
    ]


def test_spoofed_replies_change_nothing(agent: Agent, figures: Callable[..., Any]) -> None:
    agent.policy(policy_text(max_unanswered=1))
    agent.start()
    agent.drop(mail("first question"))
    first = parse(agent.smtp.wait_for(1)[0].content)
    agent.drop(mail("second question"))
    eventually(lambda: folder_subjects(agent, "Scheduled") == ["second"])
    spoofs = _spoofs(str(first["Message-ID"]))
    for raw in spoofs:
        agent.dovecot.append(agent.user, "INBOX", raw)
    time.sleep(3)
    replies = agent.ledger().db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]
    held = len(agent.smtp.messages) == 1 and folder_subjects(agent, "Scheduled") == ["second"]
    figures(
        tries=len(spoofs),
        survived=len(spoofs) if held and replies == 0 else 0,
        lost=0,
        duplicated=0,
        replies_recorded=replies,
    )
    assert replies == 0 and held, "a spoofed reply released the held message"
    # The mentor's own reply does release it: the check above could have failed.
    agent.dovecot.append(
        agent.user,
        "INBOX",
        mail("Re: first question", to=STUDENT, In_Reply_To=first["Message-ID"], From=f"Ana Rivera <{MENTOR}>"),
    )
    assert parse(agent.smtp.wait_for(2, timeout=15)[1].content)["Subject"] == "second question"


def test_mail_from_strangers_triggers_nothing(agent: Agent, figures: Callable[..., Any]) -> None:
    agent.start()
    strangers = [
        mail("Can we meet next week?", to=STUDENT, From=STRANGER),
        mail("Re: your question", to=STUDENT, From=STRANGER, In_Reply_To="<nothing@med.example.edu>"),
        mail("[mentor-agent] Scheduled: fake", to=STUDENT, From=STRANGER, X_Mentor_Agent="notice"),
        mail("Please send everything in your Outbox now", to=STUDENT, From=f"mentor-agent <{STRANGER}>"),
        mail("Accepted: Meeting", to=STUDENT, From=STRANGER, body=_calendar("REPLY", STRANGER)),
        mail("Accepted: Meeting", to=STUDENT, From=STRANGER, body=_calendar("REPLY", MENTOR)),
        mail("Invitation", to=STUDENT, From=STRANGER, body=_calendar("REQUEST", STUDENT)),
        mail("Cancelled", to=STUDENT, From=STRANGER, body=_calendar("CANCEL", STUDENT)),
    ]
    for raw in strangers:
        agent.dovecot.append(agent.user, "INBOX", raw)
    agent.dovecot.append(
        agent.user, "INBOX", mail("flagged by a stranger", to=STUDENT, From=STRANGER), flags=("\\Flagged",)
    )
    time.sleep(4)
    notices = [n for n in agent.notices() if STRANGER not in str(n["From"])]  # not the stranger's fake one
    ledger = agent.ledger()
    rows = {
        table: ledger.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        for table in ("messages", "replies", "items", "meetings")
    }
    acted = len(agent.smtp.messages) + len(notices) + sum(rows.values())
    figures(
        tries=len(strangers) + 1,
        survived=len(strangers) + 1 if acted == 0 else 0,
        lost=0,
        duplicated=0,
        smtp=len(agent.smtp.messages),
        notices=len(notices),
        ledger_rows=rows,
    )
    assert agent.smtp.messages == [] and notices == [], "mail from a stranger made the agent act"
    assert rows == dict.fromkeys(rows, 0), rows
    assert len(agent.folder_raw("INBOX")) == len(strangers) + 1  # nothing moved or deleted either
    assert not agent.process_ended()


def _everything_but_config(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name != "config.toml")


def test_secrets_never_reach_logs_notices_or_state(
    tmp_path: Path, dovecot: Dovecot, smtp_server: Any, figures: Callable[..., Any]
) -> None:
    user = _user(dovecot, CANARY)
    agent = Agent(tmp_path, dovecot, user, smtp_server)
    with dovecot.client(user) as client:
        for folder in (OUTBOX, "Scheduled", "Needs attention", "Sending"):
            client.create_folder(folder)
    agent.write_config()
    assert CANARY in agent.config.read_text()
    agent.policy(policy_text())
    try:
        # First with a wrong password: every login-failure path logs something.
        good = agent.config.read_text()
        agent.config.write_text(good.replace(CANARY, WRONG_CANARY))
        log = tmp_path / "wrong.log"
        with log.open("wb") as out:
            wrong = subprocess.Popen(
                [sys.executable, "-m", "agent", "run", "--config", str(agent.config), "--log-level", "DEBUG"],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
            )
            time.sleep(4)
            wrong.send_signal(signal.SIGTERM)
            wrong.wait(15)
        agent.config.write_text(good)
        # Then the real one, through sends, a refusal, an in-doubt send and a server restart.
        agent.start()
        agent.drop(mail("ordinary"))
        agent.smtp.fail_next("550 5.7.1 refused, and here is why")
        agent.drop(mail("refused"))
        agent.smtp.wait_for(1, timeout=15)
        eventually(lambda: agent.notices())
        agent.smtp.drop_after_data()
        agent.drop(mail("in doubt"))
        eventually(lambda: len(agent.notices()) >= 2, timeout=20)
        dovecot.restart()
        eventually(lambda: agent.log().count("connected to") >= 2, timeout=60)
        status = subprocess.run(
            [sys.executable, "-m", "agent", "status", "--config", str(agent.config)],
            capture_output=True,
            timeout=60,
            cwd=tmp_path,
        )
        agent.stop()
        places = {
            "daemon logs": (agent.log() + log.read_text(errors="replace")).encode(),
            "state and files": _everything_but_config(tmp_path),
            "status": status.stdout + status.stderr,
            "mailbox": b"".join(
                raw for folder in ("INBOX", "Sent", "Needs attention") for raw in agent.folder_raw(folder).values()
            ),
        }
        places["smtp"] = b"".join(m.content for m in agent.smtp.messages)
        leaks = {where: [c for c in (CANARY, WRONG_CANARY) if c.encode() in text] for where, text in places.items()}
        leaks = {where: found for where, found in leaks.items() if found}
        figures(
            tries=len(places),
            survived=len(places) - len(leaks),
            lost=0,
            duplicated=0,
            leaks=leaks,
            bytes_checked={where: len(text) for where, text in places.items()},
        )
        assert "login" in log.read_text().lower() or "authentic" in log.read_text().lower(), "no login failure seen"
        assert leaks == {}, f"secret found in {leaks}"
    finally:
        if agent.process is not None and agent.process.poll() is None:
            agent.process.kill()


def test_a_config_file_others_can_read_is_refused_at_start(agent: Agent, figures: Callable[..., Any]) -> None:
    agent.config.chmod(0o644)
    result = subprocess.run(
        [sys.executable, "-m", "agent", "run", "--config", str(agent.config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=agent.root,
    )
    output = result.stdout + result.stderr
    figures(
        tries=1,
        survived=int(result.returncode != 0),
        lost=0,
        duplicated=0,
        exit_code=result.returncode,
        message=output.strip().splitlines()[-1][:200] if output.strip() else "",
    )
    assert result.returncode == 78, output
    assert "config.toml" in output and "chmod 600" in output, output
    assert agent.user.password not in output
    assert "connected to" not in output
