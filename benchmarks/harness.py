"""Shared set-up for the server benchmarks: a real Dovecot and aiosmtpd on loopback, and the real daemon.

Reuses the test servers (``tests/servers``) and the test harness's :class:`tests.agent_process.Agent`; only the
log level differs (INFO, as a user would run it: DEBUG lines would be part of what is measured).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from imapclient import IMAPClient  # noqa: E402

from tests.agent_process import MENTOR, OUTBOX, STUDENT, Agent, eventually  # noqa: E402
from tests.bytecode import use_compiled_agent  # noqa: E402
from tests.servers import dovecot as dovecot_module  # noqa: E402
from tests.servers.dovecot import Dovecot, User  # noqa: E402
from tests.servers.smtp import SmtpServer  # noqa: E402

__all__ = ["MENTOR", "STUDENT", "BenchAgent", "Servers", "Stats", "eventually", "open_policy", "servers"]

FOLDERS = (OUTBOX, "Scheduled", "Needs attention", "Sending")


def open_policy(*, min_gap: str = "0", over_limit: str = "delay", limit: int = 1_000_000) -> str:
    """A policy that lets everything through at once (``min_gap`` "0") or paces by ``min_gap`` only."""
    return f"""\
[mentor]
name = "Dr. Ana Rivera"
addresses = ["{MENTOR}"]
timezone = "America/Chicago"
pronoun = "she"

[email]
max_per_day = {limit}
max_per_week = {limit}
min_gap = "{min_gap}"
send_windows = ["Mon-Sun 00:00-24:00"]
max_unanswered = {limit}
follow_up_after = "7d"
over_limit = "{over_limit}"
"""


@dataclass(frozen=True)
class Stats:
    median: float
    worst: float
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        if not values:
            return cls(float("nan"), float("nan"), 0)
        return cls(statistics.median(values), max(values), len(values))


@dataclass
class Servers:
    dovecot: Dovecot
    work: Path

    def smtp(self) -> SmtpServer:
        server = SmtpServer()
        server.start()
        return server

    def user(self) -> User:
        user = self.dovecot.new_user("bench")
        with self.dovecot.client(user) as client:
            for folder in FOLDERS:
                if not client.folder_exists(folder):
                    client.create_folder(folder)
        return user

    def client(self, user: User) -> IMAPClient:
        client = IMAPClient(self.dovecot.host, port=self.dovecot.port, ssl=False, timeout=30)
        client.login(user.username, user.password)
        return client


@contextlib.contextmanager
def servers() -> Iterator[Servers]:
    """Dovecot with its own trustme CA (as tests/servers/fixtures.py does), in a temporary directory."""
    import trustme

    reason = dovecot_module.available()
    if reason:
        raise SystemExit(f"cannot run the server benchmarks: {reason}")
    use_compiled_agent()  # as installed: the daemon does not compile itself at every start
    work = Path(tempfile.mkdtemp(prefix="mab-", dir="/tmp"))
    work.chmod(0o755)
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_pem, cert_pem, key_pem = work / "ca.pem", work / "cert.pem", work / "key.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_pem))
    cert.private_key_pem.write_to_path(str(key_pem))
    dovecot = Dovecot(cert_pem, key_pem, ca_pem)
    try:
        for _attempt in range(3):  # free_port() can hand out the same port twice: then try other ports
            try:
                dovecot.start()
                break
            except RuntimeError:
                dovecot.cleanup()
                dovecot = Dovecot(cert_pem, key_pem, ca_pem)
        else:
            dovecot.start()
        yield Servers(dovecot, work)
    finally:
        dovecot.cleanup()
        shutil.rmtree(work, ignore_errors=True)


class BenchAgent(Agent):
    """The test harness's Agent, started at INFO level (what a user runs), with a way to reach its pid."""

    def start(self, log_level: str = "INFO", timeout: float = 60, **env: str) -> None:  # type: ignore[override]
        self.launch(log_level, **env)
        eventually(lambda: "connected to" in self.log() or self.process_ended(), timeout=timeout)
        assert self.process is not None and self.process.poll() is None, f"the agent did not start:\n{self.log()}"

    def launch(self, log_level: str = "INFO", **env: str) -> None:
        """Start ``python -m agent run`` and return at once (``start`` also waits for it to connect)."""
        log = self.root / f"agent-{len(self.logs)}.log"
        self.logs.append(log)
        environment = {**os.environ, **self.env, **env, "PYTHONUNBUFFERED": "1"}
        environment.pop("NOTIFY_SOCKET", None)
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "agent", "run", "--config", str(self.config), "--log-level", log_level],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                env=environment,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def halt(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.stop(signal.SIGTERM, timeout=30)


@contextlib.contextmanager
def running_agent(
    servers: Servers, policy: str, *, start: bool = True, before_start: Callable[[BenchAgent], None] | None = None
) -> Iterator[BenchAgent]:
    root = Path(tempfile.mkdtemp(prefix="mab-agent-", dir="/tmp"))
    smtp = servers.smtp()
    agent = BenchAgent(root, servers.dovecot, servers.user(), smtp)
    agent.write_config()
    agent.policy(policy)
    try:
        if before_start is not None:
            before_start(agent)
        if start:
            agent.start()
        yield agent
    finally:
        with contextlib.suppress(Exception):
            agent.halt()
        if agent.process is not None and agent.process.poll() is None:
            agent.process.kill()
            agent.process.wait(10)
        smtp.stop()
        shutil.rmtree(root, ignore_errors=True)


def wait_received(agent: BenchAgent, count: int, timeout: float) -> list[Any]:
    """The SMTP server's messages once there are ``count``; RuntimeError (with the log) if the daemon died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return agent.smtp.wait_for(count, timeout=min(1.0, max(0.0, deadline - time.monotonic())))
        except AssertionError:
            if agent.process_ended():
                raise RuntimeError(f"the daemon died; its log ends:\n{agent.log()[-2000:]}") from None
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"only {len(agent.smtp.messages)} of {count} messages arrived within {timeout:.0f} s"
                ) from None


def multiappend(client: IMAPClient, folder: str, messages: Sequence[bytes], chunk: int = 250) -> float:
    """APPEND ``messages`` to ``folder`` with MULTIAPPEND (RFC 3502) in chunks; seconds taken."""
    began = time.monotonic()
    for start in range(0, len(messages), chunk):
        client.multiappend(folder, list(messages[start : start + chunk]))
    return time.monotonic() - began


def folder_count(client: IMAPClient, folder: str) -> int:
    status = client.folder_status(folder, [b"MESSAGES"])
    return int(status[b"MESSAGES"])
