"""Run the real daemon (``python -m agent run``) against the test servers, and look at what it did."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest

from agent.store.ledger import Ledger
from tests.servers import PATIENCE
from tests.servers.dovecot import Dovecot, User
from tests.servers.smtp import SmtpServer

T = TypeVar("T")
MENTOR = "arivera@hospital.example.org"
STUDENT = "sam@med.example.edu"
SENT = "Sent Items"
OUTBOX = "Mentor Outbox"  # the default outbox (not "Outbox": that is Outlook's own at Microsoft)

OPEN_POLICY = """\
[mentor]
name = "Dr. Ana Rivera"
addresses = ["arivera@hospital.example.org"]
timezone = "America/Chicago"
pronoun = "she"

[email]
max_per_day = {max_per_day}
max_per_week = 100
min_gap = "{min_gap}"
send_windows = [{windows}]
max_unanswered = {max_unanswered}
follow_up_after = "7d"
over_limit = "{over_limit}"
"""


def policy_text(
    *,
    max_per_day: int = 50,
    min_gap: str = "0",
    windows: str = '"Mon-Sun 00:00-24:00"',
    max_unanswered: int = 50,
    over_limit: str = "delay",
) -> str:
    return OPEN_POLICY.format(
        max_per_day=max_per_day, min_gap=min_gap, windows=windows, max_unanswered=max_unanswered, over_limit=over_limit
    )


def closed_window(start: str = "03:00", end: str = "03:01") -> str:
    """A send window (quoted, as in a policy file) on a weekday that is neither today nor tomorrow in Chicago: closed
    for at least a day whenever the suite runs. A fixed one ("Mon 00:00-00:15") was open when CI ran at that time."""
    day = datetime.now(ZoneInfo("America/Chicago")) + timedelta(days=3)
    return f'"{day:%a} {start}-{end}"'


def mail(
    subject: str,
    to: str = MENTOR,
    *,
    body: str = "Hello,\n\nA short question.\n\nSam\n",
    message_id: bool = True,
    **headers: str,
) -> bytes:
    message = EmailMessage()
    message["From"] = headers.pop("From", f"Sam Patel <{STUDENT}>")
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now().astimezone())
    if message_id:
        message["Message-ID"] = make_msgid(domain="med.example.edu")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message.as_bytes(policy=email_policy.SMTP)


def parse(raw: bytes) -> EmailMessage:
    parsed = message_from_bytes(raw, policy=email_policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def eventually(check: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.1) -> T:
    """``check()``'s first true value, polled every ``interval``; AssertionError after ``timeout`` (× PATIENCE)."""
    timeout *= PATIENCE
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout:g} s: {getattr(check, '__name__', check)}")
        time.sleep(interval)


@dataclass
class Agent:
    """One mentor-agent daemon process and the test servers it talks to."""

    root: Path
    dovecot: Dovecot
    user: User
    smtp: SmtpServer
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    def write_config(self, **smtp: Any) -> None:
        imap = self.dovecot.settings(self.user)
        smtp_lines = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in smtp.items())
        self.config.write_text(
            f"""policies_dir = "policies"
state_dir = "state"

[student]
name = "Sam Patel"
address = "{STUDENT}"
timezone = "America/New_York"

[imap]
host = "{imap.host}"
port = {imap.port}
security = "plain"
username = "{self.user.username}"
password = "{self.user.password}"
idle_renew = 60
timeout = 10

[smtp]
host = "127.0.0.1"
port = {self.smtp.port}
security = "plain"
timeout = 10
file_in_sent = "always"
{smtp_lines}
"""
        )
        self.config.chmod(0o600)

    def policy(self, text: str, name: str = "rivera.toml") -> None:
        (self.root / "policies").mkdir(exist_ok=True)
        (self.root / "policies" / name).write_text(text)

    def start(self, *, until: str = "connected to", **env: str) -> None:
        """Start the daemon and wait for ``until`` in its log (or its end)."""
        log = self.root / f"agent-{len(self.logs)}.log"
        self.logs.append(log)
        environment = {**os.environ, **self.env, **env, "PYTHONUNBUFFERED": "1"}
        environment.pop("NOTIFY_SOCKET", None)
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "agent", "run", "--config", str(self.config), "--log-level", "DEBUG"],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                env=environment,
            )
        eventually(lambda: until in self.log() or self.process_ended(), timeout=20)
        # With a crash point and mail already waiting, the agent may reach the point (and be killed) before
        # the log is read: that is a start too, and the test's wait_exit() sees the kill.
        crashed = "MENTOR_AGENT_CRASH_AT" in env and self.process.poll() == -signal.SIGKILL
        assert crashed or self.process.poll() is None, f"the agent did not start:\n{self.log()}"

    def process_ended(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout)
        return code

    def end(self) -> None:
        """After a test: kill the agent if it still runs. Under `coverage run` it is asked to stop (SIGTERM) first,
        so that the lines it ran are saved (a killed process writes no coverage data)."""
        if self.process is None or self.process.poll() is not None:
            return
        if "COVERAGE_PROCESS_CONFIG" in os.environ:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.stop(signal.SIGTERM, timeout=10)
        if self.process.poll() is None:
            self.stop(signal.SIGKILL)

    def wait_exit(self, timeout: float = 20) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    # -- the mailbox, as the student sees it ------------------------------------------------------------------

    def drop(self, raw: bytes, flags: tuple[str, ...] = ()) -> int:
        return self.dovecot.append(self.user, OUTBOX, raw, flags)

    def folder(self, name: str) -> list[EmailMessage]:
        return [parse(raw) for raw in self.folder_raw(name).values()]

    def folder_raw(self, name: str) -> dict[int, bytes]:
        # The test Dovecot names its \Sent folder "Sent Items": the agent must find it by SPECIAL-USE.
        # "Outbox" in a test means the agent's outbox, by default "Mentor Outbox".
        return self.dovecot.messages(self.user, {"Sent": SENT, "Outbox": OUTBOX}.get(name, name))

    def subjects(self, name: str) -> list[str]:
        return [str(m["Subject"]).strip() for m in self.folder(name)]

    def notices(self) -> list[EmailMessage]:
        return [m for m in self.folder("INBOX") if m["X-Mentor-Agent"] == "notice"]

    def ledger(self) -> Ledger:
        return Ledger(self.root / "state" / "ledger.sqlite3")


def new_agent(tmp_path: Path, dovecot: Dovecot, smtp_server: SmtpServer) -> Agent:
    """A daemon not started yet, for a new Dovecot user with the agent's folders, its config and an open policy."""
    user = dovecot.new_user()
    with dovecot.client(user) as client:
        for folder in (OUTBOX, "Scheduled", "Needs attention", "Sending"):
            if not client.folder_exists(folder):
                client.create_folder(folder)
    agent = Agent(tmp_path, dovecot, user, smtp_server)
    agent.write_config()
    agent.policy(policy_text())
    return agent


@pytest.fixture
def agent(tmp_path: Path, dovecot: Dovecot, smtp_server: SmtpServer) -> Iterator[Agent]:
    agent = new_agent(tmp_path, dovecot, smtp_server)
    yield agent
    agent.end()
