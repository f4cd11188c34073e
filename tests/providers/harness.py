"""The real daemon in front of a provider emulation: the student's mail app and the books kept on it.

:class:`ProviderAgent` is :class:`tests.agent_process.Agent` with IMAP through the profile's proxy, the SMTP server
of the profile (which may file submissions in Sent itself), and the default folders of ``agent.config.settings.Folders``
(so a renamed agent Outbox is followed). Everything the student does (drop a message, flag, delete) goes through
the proxy, as the student's mail app would; assertions read Dovecot directly.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email.utils import getaddresses
from typing import Any

from imapclient import IMAPClient

from agent.config.settings import Folders
from tests.agent_process import STUDENT, Agent, parse
from tests.servers.providers.fixtures import Stack

FOLDERS = Folders()


@dataclass
class ProviderAgent(Agent):
    stack: Stack | None = None

    @property
    def s(self) -> Stack:
        assert self.stack is not None
        return self.stack

    def write_config(self, **smtp: Any) -> None:
        proxy = self.s.proxy
        smtp_lines = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in smtp.items())
        # No file_in_sent: the daemon decides (the issue: by looking, not by host name).
        self.config.write_text(
            f"""policies_dir = "policies"
state_dir = "state"

[student]
name = "Sam Patel"
address = "{STUDENT}"
timezone = "America/New_York"

[imap]
host = "{proxy.host}"
port = {proxy.port}
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
{smtp_lines}
"""
        )
        self.config.chmod(0o600)

    # -- the student's mail app (through the proxy) --------------------------------------------------------
    @contextlib.contextmanager
    def app(self) -> Iterator[IMAPClient]:
        with self.s.client() as client:
            yield client

    def drop(self, raw: bytes, flags: tuple[str, ...] = ()) -> int:
        return self.put(FOLDERS.outbox, raw, flags)

    def put(self, folder: str, raw: bytes, flags: tuple[str, ...] = ()) -> int:
        with self.app() as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            answer = client.append(folder, raw, flags=flags)
        found = re.search(rb"\[APPENDUID \d+ (\d+)\]", answer or b"")
        return int(found.group(1)) if found else 0

    def drop_batch(self, raws: Sequence[bytes]) -> None:
        """Several messages appear in the Outbox at once (one COPY), as when a phone's offline outbox syncs."""
        staging = "Staging"
        with self.app() as client:
            for folder in (staging, FOLDERS.outbox):
                if not client.folder_exists(folder):
                    client.create_folder(folder)
            for raw in raws:
                client.append(staging, raw)
            client.select_folder(staging)
            uids = client.search("ALL")
            client.copy(uids, FOLDERS.outbox)
            client.delete_messages(uids)
            client.expunge()

    def flag_scheduled(self) -> None:
        with self.app() as client:
            client.select_folder(FOLDERS.scheduled)
            client.add_flags(client.search("ALL"), [b"\\Flagged"])

    def delete_scheduled(self) -> None:
        with self.app() as client:
            client.select_folder(FOLDERS.scheduled)
            client.delete_messages(client.search("ALL"))
            client.expunge()

    # -- what is where (read from Dovecot directly) -------------------------------------------------------
    def real_name(self, name: str) -> str:
        return {
            "Sent": self.s.profile.sent,
            "Outbox": FOLDERS.outbox,
            "Scheduled": FOLDERS.scheduled,
            "Needs attention": FOLDERS.needs_attention,
            "Sending": FOLDERS.sending,
        }.get(name, name)

    def folder_raw(self, name: str) -> dict[int, bytes]:
        for _ in range(10):
            try:
                return self.dovecot.messages(self.user, self.real_name(name))
            except TypeError:  # moved between the helper's SEARCH and FETCH
                time.sleep(0.1)
        return self.dovecot.messages(self.user, self.real_name(name))


def recipients(raw: bytes) -> tuple[str, ...]:
    message = parse(raw)
    found = getaddresses([str(v) for field in ("To", "Cc", "Bcc") for v in message.get_all(field, [])])
    return tuple(sorted(address.lower() for _, address in found if address))


def key(raw: bytes) -> str:
    return str(parse(raw)["Subject"]).strip()


@dataclass
class Books:
    """What became of each message the student wrote."""

    lost: list[str]
    duplicated: list[str]
    wrong_recipients: list[str]
    sent_copies: dict[str, int]
    left_over: dict[str, list[str]]

    def problems(self) -> list[str]:
        out = []
        if self.lost:
            out.append(f"lost: {self.lost}")
        if self.duplicated:
            out.append(f"sent twice: {self.duplicated}")
        if self.wrong_recipients:
            out.append(f"delivered to another message's recipients: {self.wrong_recipients}")
        twice = sorted(s for s, n in self.sent_copies.items() if n > 1)
        none = sorted(s for s, n in self.sent_copies.items() if n == 0)
        if twice:
            out.append(f"{len(twice)} with two copies in Sent: {twice}")
        if none:
            out.append(f"{len(none)} with no copy in Sent: {none}")
        for folder, subjects in self.left_over.items():
            if subjects:
                out.append(f"left in {folder}: {subjects}")
        return out


def books(
    agent: ProviderAgent, written: dict[str, bytes], *, not_sent: Sequence[str] = (), settle: float = 20.0
) -> Books:
    """Wait until ``written`` (subject -> the raw message the student wrote) went out and was filed, then count.

    Each message must reach SMTP exactly once, to the recipients of its own To/Cc/Bcc, and sit in Sent exactly
    once; ``not_sent`` must not reach SMTP. The agent's Outbox and Sending folders must be empty.
    """
    wanted = set(written) - set(not_sent)
    deadline = time.monotonic() + settle

    def done() -> bool:
        got = {key(m.content) for m in agent.smtp.messages}
        filed = {key(raw) for raw in agent.folder_raw("Sent").values()}
        return wanted <= got and wanted <= filed and not agent.folder_raw("Sending") and not agent.folder_raw("Outbox")

    while time.monotonic() < deadline and not done() and not agent.process_ended():
        time.sleep(0.2)
    time.sleep(0.7)  # a late second copy in Sent, a late second send
    received = Counter(key(m.content) for m in agent.smtp.messages)
    wrong = sorted(
        {
            key(m.content)
            for m in agent.smtp.messages
            if key(m.content) in written
            and tuple(sorted(r.lower() for r in m.rcpt_tos)) != recipients(written[key(m.content)])
        }
    )
    filed = Counter(key(raw) for raw in agent.folder_raw("Sent").values())
    return Books(
        lost=sorted(s for s in wanted if received[s] == 0),
        duplicated=sorted(s for s in written if received[s] > 1) + sorted(s for s in not_sent if received[s]),
        wrong_recipients=wrong,
        sent_copies={s: filed[s] for s in sorted(wanted)},
        left_over={f: sorted(key(r) for r in agent.folder_raw(f).values()) for f in ("Outbox", "Sending")},
    )


def assert_books(agent: ProviderAgent, written: dict[str, bytes], **kwargs: Any) -> Books:
    result = books(agent, written, **kwargs)
    problems = result.problems()
    assert not problems, "; ".join(problems)
    return result
