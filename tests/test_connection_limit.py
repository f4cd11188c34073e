"""A mail server that takes no more connections for her account (her other mail programs hold them): the daemon
goes on with the connections it has, looks at the folders it cannot watch on every pass, and tells her
(agent.daemon.unwatched_folders). A limit met at the login is no refusal of her password: it is tried again, never
a configuration error. A real Dovecot whose limit is lowered (``mail_max_userip_connections``); the test's own
client comes from another loopback address, which Dovecot counts apart."""

from __future__ import annotations

import asyncio
import contextlib
import email
import imaplib
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.config.settings import load_settings
from agent.daemon import service, unwatched_folders
from agent.daemon.service import Daemon
from agent.mail.session import ConnectionLimit, open_client
from agent.store.status import collect, render
from tests.agent_process import OUTBOX, Agent, mail, policy_text
from tests.servers.dovecot import Dovecot, User
from tests.servers.fixtures import TlsFiles
from tests.servers.smtp import SmtpServer

pytestmark = pytest.mark.servers
ELSEWHERE = "127.0.0.2"  # the test's own address: Dovecot counts connections per account and address


class _FromElsewhere(imaplib.IMAP4):
    def _create_socket(self, timeout: float | None) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout, source_address=(ELSEWHERE, 0))


@contextlib.contextmanager
def elsewhere(dovecot: Dovecot, user: User) -> Iterator[imaplib.IMAP4]:
    client = _FromElsewhere(dovecot.host, dovecot.port, timeout=10)
    client.login(user.username, user.password)
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.logout()


def _limited(tls_ca: TlsFiles, connections: int) -> Dovecot:
    server = Dovecot(tls_ca.cert_pem, tls_ca.key_pem, tls_ca.ca_pem)
    text = server.conf.read_text()
    server.conf.write_text(
        text.replace("mail_max_userip_connections = 20", f"mail_max_userip_connections = {connections}")
    )
    server.start()
    return server


@pytest.fixture
def limited(tls_ca: TlsFiles, tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Agent]:
    """The agent's account on a Dovecot that takes 3 connections for it: one to work and two of its three
    watchers (the Outbox, Scheduled, INBOX)."""
    server = _limited(tls_ca, 3)
    try:
        user = server.new_user()
        with server.client(user) as client:
            for folder in (OUTBOX, "Scheduled", "Needs attention", "Sending"):
                client.create_folder(folder)
        made = Agent(tmp_path, server, user, smtp_server)
        made.write_config()
        made.policy(policy_text())
        yield made
    finally:
        server.cleanup()


def _notices(dovecot: Dovecot, user: User) -> list[str]:
    with elsewhere(dovecot, user) as client:
        client.select("INBOX", readonly=True)
        _, found = client.search(None, "ALL")
        subjects = []
        for number in found[0].split():
            _, data = client.fetch(number, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            header = data[0][1] if data and isinstance(data[0], tuple) else b""
            subjects.append(str(email.message_from_bytes(header)["Subject"] or ""))
        return subjects


def test_with_its_watchers_refused_by_the_limit_the_daemon_goes_on_says_so_and_watches_again_later(
    limited: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "HEARTBEAT", 1.0)  # the unwatched folders looked at every second, not minute
    monkeypatch.setattr(unwatched_folders, "LIMIT_RETRY", 2.0)  # and watched again after 2 s, not 10 min
    daemon = Daemon(load_settings(limited.config, required=True), limited.config)
    dovecot, user = limited.dovecot, limited.user
    imap = dovecot.settings(user)
    seen_unwatched: list[str] = []
    others = [open_client(imap, Dovecot.login(user), None) for _ in range(2)]  # her other programs, same address

    async def drive() -> None:
        running = asyncio.create_task(daemon.run())
        try:
            deadline = time.monotonic() + 30
            while not any("limits connections" in s for s in await asyncio.to_thread(_notices, dovecot, user)):
                assert time.monotonic() < deadline, "she was not told"
                await asyncio.sleep(0.2)
            with elsewhere(dovecot, user) as client:  # her next message goes all the same
                typ, answer = client.append(f'"{OUTBOX}"', "", imaplib.Time2Internaldate(time.time()), mail("next"))
                assert typ == "OK", answer
            while not limited.smtp.messages:
                assert time.monotonic() < deadline, "the message dropped in the Outbox did not go"
                await asyncio.sleep(0.1)
            data = collect(daemon.keeper.book(), daemon.ledger, datetime.now(UTC))
            data["daemon"]["running"] = "yes"  # the lock is this process's: as `status` beside a running daemon
            seen_unwatched.append(render(data, color=False))
            for other in others:  # her other programs close: the folders are watched again
                other.logout()
            while daemon.ledger.status().get("unwatched", ("x", ""))[0]:
                assert time.monotonic() < deadline, "the folders were not watched again"
                await asyncio.sleep(0.2)
        finally:
            daemon.stop()
            await asyncio.wait_for(running, 30)

    try:
        asyncio.run(drive())
    finally:
        for other in others:
            with contextlib.suppress(Exception):
                other.logout()
    assert [email.message_from_bytes(m.content)["Subject"] for m in limited.smtp.messages] == ["next"]
    assert seen_unwatched and "not watched (the server's limit on connections)" in seen_unwatched[0]
    assert daemon.reconnect.in_a_row == 0, "the session went on: never torn down and tried again"
    notices = [s for s in _notices(dovecot, user) if "limits connections" in s]
    assert len(notices) == 1, "told once, not at each refusal"


def test_the_limit_met_at_the_login_is_tried_again_never_a_refused_password(tls_ca: TlsFiles, tmp_path: Path) -> None:
    server = _limited(tls_ca, 1)
    try:
        user = server.new_user()
        imap = server.settings(user)
        with (
            elsewhere(server, user),  # another address: counted apart
            open_client(imap, Dovecot.login(user), None),
            pytest.raises(ConnectionLimit) as refused,
        ):
            open_client(imap, Dovecot.login(user), None)  # a second connection from the agent's address
    finally:
        server.cleanup()
    assert "refused" not in str(refused.value) and "other mail programs" in str(refused.value)
