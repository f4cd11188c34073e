"""`mentor-agent setup` without a terminal, end to end against the real Dovecot and aiosmtpd (tests/servers/):
a fresh config, the agent's folders and a first policy, then the daemon paces a message through them."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.config.settings import load_settings
from tests.agent_process import MENTOR, OUTBOX, STUDENT, eventually, mail
from tests.servers.dovecot import Dovecot, User
from tests.servers.smtp import SmtpServer

pytestmark = [pytest.mark.servers, pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")]


def cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=cwd,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        check=False,
    )


@dataclass
class Student:
    root: Path
    dovecot: Dovecot
    user: User
    smtp: SmtpServer

    @property
    def config(self) -> Path:
        return self.root / "mentor-agent" / "config.toml"

    def flags(self, **changes: str) -> list[str]:
        """Every answer as a flag, for the test servers; ``changes`` replaces some (by option name)."""
        (self.root / "password.txt").write_text(self.user.password + "\n")
        answers = {
            "config": str(self.config),
            "address": STUDENT,
            "name": "Sam Patel",
            "timezone": "America/New_York",
            "imap-host": "127.0.0.1",
            "imap-port": str(self.dovecot.port),
            "imap-security": "plain",
            "smtp-host": "127.0.0.1",
            "smtp-port": str(self.smtp.port),
            "smtp-security": "plain",
            "username": self.user.username,
            "password-file": str(self.root / "password.txt"),
            "store": "file",
            "state-dir": str(self.root / "state"),
            "mentor-name": "Dr. Ana Rivera",
            "mentor-address": MENTOR,
            "mentor-timezone": "America/Chicago",
            "per-day": "5",
            "per-week": "20",
            "window": "Mon-Sun 00:00-24:00",
        } | changes
        return [word for key, value in answers.items() for word in (f"--{key}", value)]


@pytest.fixture
def student(tmp_path: Path, dovecot: Dovecot) -> Iterator[Student]:
    user = dovecot.new_user()
    smtp = SmtpServer(auth=(user.username, user.password))
    smtp.start()
    try:
        yield Student(tmp_path, dovecot, user, smtp)
    finally:
        smtp.stop()


def test_setup_without_a_terminal_then_the_daemon_paces_a_message_through_the_fresh_config(student: Student) -> None:
    started = time.monotonic()
    result = cli("setup", "--yes", *student.flags(), cwd=student.root)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"IMAP 127.0.0.1:{student.dovecot.port} (plain): logged in as {student.user.username}" in out
    assert f"SMTP 127.0.0.1:{student.smtp.port} (plain): logged in as {student.user.username}" in out
    assert "Created the folders: Mentor Outbox, Needs attention, Scheduled, Sending" in out, out
    config = student.config.read_text()
    assert student.user.password not in config  # the secret is elsewhere
    assert stat.S_IMODE(student.config.stat().st_mode) == 0o600
    secret = student.config.parent / "config.password"
    assert secret.read_text().strip() == student.user.password
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert f'password_command = "cat {secret}"' in config
    settings = load_settings(student.config)
    assert settings.imap.username == settings.smtp.username == student.user.username
    policy = student.config.parent / "policies" / "rivera.toml"
    assert policy.exists() and 'send_windows = ["Mon-Sun 00:00-24:00"]' in policy.read_text()
    folders = student.dovecot.folders(student.user)
    assert {OUTBOX, "Scheduled", "Sending", "Needs attention"} <= set(folders)
    checked = cli("check", "--config", str(student.config), cwd=student.root)
    assert checked.returncode == 0, checked.stderr
    assert "1 policy: Dr. Ana Rivera" in checked.stdout

    log = student.root / "agent.log"
    with log.open("wb") as output:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "--config", str(student.config)],
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=student.root,
            env={k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"},
        )
    try:
        eventually(lambda: "connected to" in log.read_text(errors="replace") or daemon.poll() is not None, 30)
        assert daemon.poll() is None, log.read_text()
        student.dovecot.append(student.user, OUTBOX, mail("First question after setup"))
        student.smtp.wait_for(1, timeout=30)
        took = time.monotonic() - started
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(20)
    [sent] = student.smtp.messages
    assert sent.rcpt_tos == (MENTOR,) and sent.authenticated_as == student.user.username
    assert b"First question after setup" in sent.content
    print(f"setup to first paced message: {took:.1f} s")


def test_setup_without_a_terminal_names_the_flag_it_is_missing(tmp_path: Path) -> None:
    result = cli("setup", "--config", str(tmp_path / "config.toml"), "--no-connect", cwd=tmp_path)
    assert result.returncode == 1
    assert (
        "error: --address: needed when setup cannot ask (Your e-mail address); give it as --address ..."
        in result.stderr
    )
    assert not (tmp_path / "config.toml").exists()


def test_running_setup_again_shows_the_changes_and_writes_them_only_when_told(student: Student) -> None:
    assert cli("setup", "--yes", *student.flags(), cwd=student.root).returncode == 0
    before = student.config.read_text()
    student.config.write_text(before + '\n[digest]\nsubject = "my own subject"\n')
    student.config.chmod(0o600)
    edited = student.config.read_text()
    policy = student.root / "mentor-agent" / "policies" / "rivera.toml"
    changed_policy = cli("setup", "--yes", *student.flags(name="Samira Patel", **{"per-day": "2"}), cwd=student.root)
    assert changed_policy.returncode == 1  # the policy is checked first: nothing is written, not even the config
    assert f"error: --force: {policy} exists and would change as shown" in changed_policy.stderr
    assert student.config.read_text() == edited
    again = cli("setup", "--yes", *student.flags(name="Samira Patel"), cwd=student.root)
    assert again.returncode == 1
    assert '-name = "Sam Patel"' in again.stdout and '+name = "Samira Patel"' in again.stdout
    assert (
        f"error: --force: {student.config} exists and would change as shown; give --force to write it" in again.stderr
    )
    assert student.config.read_text() == edited  # never silently overwritten
    forced = cli("setup", "--yes", "--force", *student.flags(name="Samira Patel"), cwd=student.root)
    assert forced.returncode == 0, forced.stderr
    settings = load_settings(student.config)
    assert settings.student.name == "Samira Patel"
    assert settings.digest.subject == "my own subject"  # what setup does not ask about is kept
    assert "The agent's folders are all there." in forced.stdout


def test_a_wrong_password_writes_no_config(student: Student) -> None:
    (student.root / "wrong.txt").write_text("not-the-password\n")
    result = cli(
        "setup", "--yes", *student.flags(**{"password-file": str(student.root / "wrong.txt")}), cwd=student.root
    )
    assert result.returncode == 78, result.stdout + result.stderr
    assert "imap: login as" in result.stderr and "not-the-password" not in result.stderr + result.stdout
    assert not student.config.exists()
    assert set(student.dovecot.folders(student.user)).isdisjoint({OUTBOX, "Scheduled"})
