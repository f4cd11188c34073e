"""`check --connect` and the SPECIAL-USE folder guard, against the real Dovecot and aiosmtpd (tests/servers/)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.agent_process import MENTOR, OUTBOX, Agent, agent, mail
from tests.servers.dovecot import ARCHIVE, SENT
from tests.servers.smtp import SmtpServer

__all__ = ["agent"]  # the fixture
pytestmark = pytest.mark.servers


def cli(agent: Agent, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "agent", *args, "--config", str(agent.config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=agent.root,
        env={**os.environ, **env},
        check=False,
    )


def snapshot(agent: Agent) -> tuple[dict[str, set[str]], dict[str, dict[int, bytes]]]:
    folders = {name: flags - {"\\Marked", "\\UnMarked"} for name, flags in agent.dovecot.folders(agent.user).items()}
    return folders, {name: agent.dovecot.messages(agent.user, name) for name in folders}


def test_check_connect_logs_in_and_shows_folders_and_capabilities_changing_nothing(agent: Agent) -> None:
    with agent.dovecot.client(agent.user) as client:
        client.delete_folder("Sending")  # one of the agent's folders missing: `run` would create it
    agent.drop(mail("waits in the Outbox"))
    agent.dovecot.append(agent.user, "INBOX", mail("from a friend", to="sam@med.example.edu"))
    before = snapshot(agent)
    result = cli(agent, "check", "--connect")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("ok: 1 config file(s), 1 policy: Dr. Ana Rivera")
    assert f"IMAP 127.0.0.1:{agent.dovecot.port} (plain): logged in as {agent.user.username}" in out
    assert "capabilities: IDLE yes, MOVE yes, UIDPLUS yes, CONDSTORE yes, SPECIAL-USE yes" in out
    assert f"custom keywords: kept (PERMANENTFLAGS in '{OUTBOX}' has \\*)" in out
    assert f"outbox           '{OUTBOX}': exists" in out
    assert "sending          'Sending': will be created by `run`" in out
    assert f"sent             '{SENT}': exists (\\Sent); found by its SPECIAL-USE attribute or its name" in out
    assert "notices          'INBOX': exists" in out
    assert f"SMTP 127.0.0.1:{agent.smtp.port} (plain): connected, no login (smtp.username is empty)" in out
    assert f"sent mail: the agent files a copy of what it sends in '{SENT}' (file_in_sent = \"always\")" in out
    assert out.rstrip().endswith("nothing was sent and nothing was changed")
    time.sleep(0.5)
    assert snapshot(agent) == before  # no folder created, no message moved, no flag set
    assert agent.dovecot.flags(agent.user, OUTBOX, 1) == set()
    assert agent.smtp.messages == []


def test_check_connect_reports_a_refused_imap_login_with_the_servers_words(agent: Agent) -> None:
    agent.config.write_text(agent.config.read_text().replace(agent.user.password, "not-the-password"))
    result = cli(agent, "check", "--connect")
    assert result.returncode == 78, result.stdout  # a refused login is configuration, as `run` says at start
    assert result.stdout.startswith("ok: 1 config file(s)")  # the files are fine; the login is not
    assert "\nerror: imap: login as" in "\n" + result.stderr, result.stderr
    assert "Authentication failed" in result.stderr, result.stderr  # Dovecot's own words
    assert "not-the-password" not in result.stderr + result.stdout


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_check_connect_reports_a_refused_smtp_login_with_the_servers_words(agent: Agent) -> None:
    server = SmtpServer(auth=("sam", "right-password"))
    server.start()
    try:
        text = agent.config.read_text().replace(f"port = {agent.smtp.port}", f"port = {server.port}")
        agent.config.write_text(
            text.replace(
                'file_in_sent = "always"', 'file_in_sent = "always"\nusername = "sam"\npassword = "wrong-password"'
            )
        )
        result = cli(agent, "check", "--connect")
        assert result.returncode == 78, result.stdout
        assert f"error: smtp: login as 'sam' refused by 127.0.0.1:{server.port}: 535" in result.stderr, result.stderr
        assert "wrong-password" not in result.stderr + result.stdout
        agent.config.write_text(agent.config.read_text().replace("wrong-password", "right-password"))
        result = cli(agent, "check", "--connect")
        assert result.returncode == 0, result.stderr
        assert f"SMTP 127.0.0.1:{server.port} (plain): logged in as sam" in result.stdout
        assert server.messages == []
    finally:
        server.stop()


def _archive_as_scheduled(agent: Agent) -> bytes:
    keep = mail("my archived letter", to="someone@example.org")
    agent.dovecot.append(agent.user, ARCHIVE, keep)
    assert "\\Archive" in agent.dovecot.folders(agent.user)[ARCHIVE]
    agent.config.write_text(agent.config.read_text() + f'\n[imap.folders]\nscheduled = "{ARCHIVE}"\n')
    return keep


def test_a_special_use_folder_is_refused_by_check_connect_and_at_start(agent: Agent) -> None:
    keep = _archive_as_scheduled(agent)
    assert cli(agent, "check").returncode == 0  # the name alone says nothing: only the server knows
    result = cli(agent, "check", "--connect")
    assert result.returncode == 78, result.stdout + result.stderr
    line = agent.config.read_text().splitlines().index(f'scheduled = "{ARCHIVE}"') + 1
    expected = (
        f"error: {agent.config}:{line}: imap.folders.scheduled: '{ARCHIVE}' is your archive folder on the "
        "server (SPECIAL-USE \\Archive)"
    )
    assert expected in result.stderr, result.stderr
    before = snapshot(agent)
    started = subprocess.run(
        [sys.executable, "-m", "agent", "run", "--config", str(agent.config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=agent.root,
        check=False,
    )
    assert started.returncode == 78, started.stdout + started.stderr
    assert expected in started.stderr
    assert snapshot(agent) == before  # nothing created, nothing moved
    assert list(agent.dovecot.messages(agent.user, ARCHIVE).values()) == [keep]
    assert agent.smtp.messages == []


def test_outbox_set_to_inbox_by_the_environment_never_starts(agent: Agent) -> None:
    """The issue's report: MENTOR_AGENT_IMAP__FOLDERS__OUTBOX=INBOX re-sent other people's mail to them."""
    for n in range(3):
        agent.dovecot.append(
            agent.user,
            "INBOX",
            mail(f"from a colleague {n}", to="sam@med.example.edu", From=f"Colleague <c{n}@example.org>"),
        )
    agent.dovecot.append(agent.user, SENT, mail("sent yesterday", to=MENTOR))
    before = snapshot(agent)
    for value in ("INBOX", "Sent", SENT):
        checked = cli(agent, "check", MENTOR_AGENT_IMAP__FOLDERS__OUTBOX=value)
        started = cli(agent, "run", MENTOR_AGENT_IMAP__FOLDERS__OUTBOX=value)
        assert checked.returncode == started.returncode == 78, started.stdout + started.stderr
        assert f"error: MENTOR_AGENT_IMAP__FOLDERS__OUTBOX: '{value}' is your " in started.stderr, started.stderr
        assert checked.stderr.splitlines() == [
            line for line in started.stderr.splitlines() if line.startswith("error: ")
        ]
    time.sleep(0.5)
    assert snapshot(agent) == before and agent.smtp.messages == []


def test_check_connect_needs_a_config(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from agent.cli.main import main

    root = Path(__file__).parent.parent
    result = CliRunner().invoke(main, ["check", "--connect", str(root / "policies")])
    assert result.exit_code == 1
    assert "--connect: needs a config file" in result.stderr
