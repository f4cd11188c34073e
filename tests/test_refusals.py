"""Permanent failures are permanent (issue 11): a refused login is not retried every few seconds, and a refused
SMTP login is no fault of any message. The real daemon against the real Dovecot and aiosmtpd.

Backoff in these tests is seconds (``MENTOR_AGENT_LOGIN_BACKOFF``), not the real 1, 5, 15, 30 and 60 minutes.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.agent_process import Agent, agent, eventually, mail
from tests.servers.smtp import SmtpServer

__all__ = ["agent"]  # the fixture
pytestmark = pytest.mark.servers

SMTP_USER = ("mentor-agent", "s3cret-pw")  # the STARTTLS test server's account (tests/servers/fixtures.py)


def run_at_start(agent: Agent, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", "run", "--config", str(agent.config)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=agent.root,
    )


def status(agent: Agent) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "agent", "status", "--config", str(agent.config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=agent.root,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def imap_password_from_file(agent: Agent) -> Path:
    """Read the IMAP password through password_command, so that a new one is picked up without a restart."""
    secret = agent.root / "imap-password"
    secret.write_text(agent.user.password + "\n")
    text = agent.config.read_text().replace(
        f'password = "{agent.user.password}"', f'password_command = "cat {secret}"', 1
    )
    agent.config.write_text(text)
    return secret


@pytest.fixture
def smtp_auth(smtp_tls_server: SmtpServer) -> SmtpServer:
    """STARTTLS with a certificate from a private CA (trustme) and AUTH required."""
    assert smtp_tls_server.auth == SMTP_USER
    return smtp_tls_server


def with_smtp_login(agent: Agent, server: SmtpServer) -> Path:
    """The agent logs in to ``server`` over STARTTLS, trusting the test CA through ``ca_file``."""
    secret = agent.root / "smtp-password"
    secret.write_text(SMTP_USER[1] + "\n")
    agent.smtp = server
    assert server.tls is not None
    agent.write_config(username=SMTP_USER[0], password_command=f"cat {secret}", ca_file=str(server.tls.ca_pem))
    head, _, smtp = agent.config.read_text().partition("[smtp]")
    agent.config.write_text(head + "[smtp]" + smtp.replace('security = "plain"', 'security = "starttls"'))
    return secret


def refusal_notices(agent: Agent) -> list[str]:
    return [str(m["Subject"]) for m in agent.notices() if "refused the login" in str(m["Subject"])]


# -- IMAP -------------------------------------------------------------------------------------------------------
def test_a_refused_imap_login_at_start_exits_78_with_the_servers_words(agent: Agent) -> None:
    agent.config.write_text(agent.config.read_text().replace(agent.user.password, "wrong-password-1"))
    started = time.monotonic()
    result = run_at_start(agent)
    assert result.returncode == 78, result.stdout + result.stderr
    assert time.monotonic() - started < 30
    assert "[AUTHENTICATIONFAILED]" in result.stderr and "refused by 127.0.0.1:" in result.stderr
    assert "Traceback" not in result.stderr and "wrong-password-1" not in result.stdout + result.stderr


def test_a_password_changed_while_running_backs_off_shows_in_status_and_resumes(agent: Agent) -> None:
    secret = imap_password_from_file(agent)
    agent.start(MENTOR_AGENT_LOGIN_BACKOFF="2,3")
    changed = agent.user = agent.dovecot.set_password(agent.user, "changed-at-the-provider")
    agent.dovecot.restart()  # every session ends; the agent's next login is refused
    eventually(lambda: "IMAP login refused (try 2)" in agent.log(), timeout=30)
    refused_lines = [line for line in agent.log().splitlines() if "IMAP login refused (try" in line]
    assert all("WARNING" in line for line in refused_lines), refused_lines
    assert "No notice can reach you" in refused_lines[0]
    assert "changed-at-the-provider" not in agent.log()
    shown = status(agent)
    assert "waiting: IMAP login refused since" in shown and "next try" in shown, shown
    assert "[AUTHENTICATIONFAILED]" in shown
    # Long waits, not a reconnect every 2 s: over 6 s at most three tries (2 s, then every 3 s).
    before = agent.log().count("IMAP login refused (try")
    time.sleep(6)
    assert agent.log().count("IMAP login refused (try") - before <= 3
    secret.write_text(changed.password + "\n")  # the student updates the password where the agent reads it
    eventually(lambda: agent.log().count("connected to") >= 2, timeout=20)
    assert "waiting:" not in status(agent)
    agent.drop(mail("after the new password"))
    received = agent.smtp.wait_for(1, timeout=20)
    assert b"after the new password" in received[0].content
    assert eventually(lambda: [m for m in agent.notices() if "refused login" in str(m["Subject"])])
    assert agent.process is not None and agent.process.poll() is None


# -- SMTP -------------------------------------------------------------------------------------------------------
def test_a_refused_smtp_login_at_start_exits_78(agent: Agent, smtp_auth: SmtpServer) -> None:
    secret = with_smtp_login(agent, smtp_auth)
    secret.write_text("not-the-password\n")
    result = run_at_start(agent)
    assert result.returncode == 78, result.stdout + result.stderr
    assert "smtp: login as 'mentor-agent' refused by 127.0.0.1:" in result.stderr and "535" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_refused_smtp_login_stops_sending_keeps_every_message_and_resumes(
    agent: Agent, smtp_auth: SmtpServer
) -> None:
    with_smtp_login(agent, smtp_auth)
    agent.start(MENTOR_AGENT_LOGIN_BACKOFF="3,4")
    smtp_auth.auth = (SMTP_USER[0], "changed-at-the-provider")
    for number in range(3):
        agent.drop(mail(f"question {number}"))
    eventually(lambda: refusal_notices(agent), timeout=20)
    eventually(lambda: len(agent.subjects("Scheduled")) + len(agent.subjects("Outbox")) == 3, timeout=20)
    assert agent.subjects("Needs attention") == [] and agent.subjects("Sending") == []
    assert smtp_auth.messages == []
    shown = status(agent)
    assert "waiting: SMTP login refused since" in shown and "535" in shown, shown
    eventually(lambda: "SMTP login refused again (try 2)" in agent.log(), timeout=20)
    assert len(refusal_notices(agent)) == 1  # one notice, not one per message or per try
    smtp_auth.auth = SMTP_USER  # the provider takes the old password again (or the student fixed it)
    received = smtp_auth.wait_for(3, timeout=30)
    assert sorted(m.content.split(b"Subject: ")[1].split(b"\r\n")[0] for m in received) == [
        b"question 0",
        b"question 1",
        b"question 2",
    ]
    eventually(lambda: len(agent.subjects("Sent")) == 3, timeout=20)
    assert agent.subjects("Scheduled") == [] and agent.subjects("Needs attention") == []
    time.sleep(1)
    assert len(smtp_auth.messages) == 3 and len(refusal_notices(agent)) == 1
    assert "waiting:" not in status(agent)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_during_the_smtp_retry_wait_is_immediate_and_sends_no_second_notice(
    agent: Agent, smtp_auth: SmtpServer, sig: signal.Signals
) -> None:
    with_smtp_login(agent, smtp_auth)
    agent.start(MENTOR_AGENT_LOGIN_BACKOFF="600")
    smtp_auth.auth = (SMTP_USER[0], "changed-at-the-provider")
    agent.drop(mail("waits for the login"))
    eventually(lambda: refusal_notices(agent), timeout=20)
    eventually(lambda: agent.subjects("Scheduled") == ["waits for the login"], timeout=20)
    started = time.monotonic()
    assert agent.stop(sig, timeout=10) == 0
    assert time.monotonic() - started < 5
    assert agent.subjects("Scheduled") == ["waits for the login"]
    assert agent.subjects("Needs attention") == [] and agent.subjects("Sending") == []
    # Started again while the login is still refused: exit 78 at start, and still only the one notice.
    assert run_at_start(agent).returncode == 78
    assert len(refusal_notices(agent)) == 1 and smtp_auth.messages == []
