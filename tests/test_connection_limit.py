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
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from imapclient import IMAPClient

from agent.config.settings import Imap, load_settings
from agent.daemon import service, unwatched_folders
from agent.daemon.service import Daemon
from agent.mail.client import Connection
from agent.mail.session import ConnectionLimit, Login, MailboxError, open_client
from agent.mail.watch import Watcher
from agent.reconcile import context
from agent.store.ledger import Ledger
from agent.store.status import collect, render
from tests.agent_process import OUTBOX, Agent, agent, mail, policy_text
from tests.servers.dovecot import Dovecot, User
from tests.servers.fixtures import TlsFiles
from tests.servers.smtp import SmtpServer
from tests.service_manager import service_manager

__all__ = ["agent"]  # the fixture
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


@contextlib.contextmanager
def held_by_her_other_programs(dovecot: Dovecot, user: User, count: int) -> Iterator[list[IMAPClient]]:
    """``count`` connections to her account from the agent's address, as her other mail programs hold them;
    logged out at the end (one logged out before is passed over)."""
    others = [open_client(dovecot.settings(user), Dovecot.login(user), None) for _ in range(count)]
    try:
        yield others
    finally:
        for other in others:
            with contextlib.suppress(Exception):
                other.logout()


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
    seen_unwatched: list[str] = []

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
            for other in others:  # her other programs close: the folders are watched again (two at least: the
                other.logout()  # limit is 3, and the agent's own connection is one)

            def unwatched() -> list[str]:
                return [folder for folder in daemon.ledger.status()["unwatched"][0].split(", ") if folder]

            deadline = time.monotonic() + 60  # retried every LIMIT_RETRY: slower on a loaded machine
            while len(unwatched()) > 1:
                assert time.monotonic() < deadline, f"the folders were not watched again: {unwatched()}"
                await asyncio.sleep(0.2)
        finally:
            daemon.stop()
            await asyncio.wait_for(running, 30)

    with held_by_her_other_programs(dovecot, user, 2) as others:
        asyncio.run(drive())
    assert [email.message_from_bytes(m.content)["Subject"] for m in limited.smtp.messages] == ["next"]
    assert seen_unwatched and "not watched (the server's limit on connections)" in seen_unwatched[0]
    assert daemon.reconnect.in_a_row == 0, "the session went on: never torn down and tried again"
    ledger = Ledger(limited.root / "state" / "ledger.sqlite3")
    try:
        assert ledger.status()["unwatched"][0] == "", "said of a session: not left for the next start to show"
    finally:
        ledger.close()
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


# -- found by the hostile round ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _listening(greeting: bytes | None) -> Iterator[int]:
    """A loopback server that greets each connection with ``greeting`` (None: says nothing, ever)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = False

    def serve() -> None:
        while not stop:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            held.append(connection)
            if greeting is not None:
                connection.sendall(greeting)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop = True
        server.close()
        for connection in held:
            connection.close()


def test_a_limit_said_in_the_greeting_is_a_limit_too(imap: Imap, imap_login: Login) -> None:
    with _listening(b"* BYE [LIMIT] Too many simultaneous connections\r\n") as port, pytest.raises(ConnectionLimit):
        open_client(imap.model_copy(update={"port": port}), imap_login, None)


def test_the_notice_is_owed_until_it_is_appended() -> None:
    class Told:
        def __init__(self) -> None:
            self.meta: dict[str, str] = {}
            self.appended = 0
            self.works = False

        def meta_value(self, key: str) -> str | None:
            return self.meta.get(key)

        def set_meta(self, key: str, value: str) -> None:
            self.meta[key] = value

    told = Told()

    class World:  # a pure unit: the notice's bookkeeping, without a mailbox
        ledger = told
        settings = SimpleNamespace(student=SimpleNamespace(address="sam@med.example.edu"))
        folders = SimpleNamespace(notices="INBOX")

        def now(self) -> datetime:
            return datetime(2026, 12, 7, 12, 0, tzinfo=UTC)

        async def locate(self, folder: str, key: str, hint: int | None) -> int | None:
            return None  # not in her mailbox yet

        async def notify(self, title: str, lines: list[str], about: str | None = None, **own: str) -> bool:
            told.appended += told.works
            return told.works

        notify_once = context.World.notify_once  # the real one, over the stubs above

    world: Any = World()
    asyncio.run(unwatched_folders.tell(world, ["INBOX"], ["INBOX"], 60.0))
    assert unwatched_folders.TOLD not in told.meta, "refused by the server: still owed"
    told.works = True
    asyncio.run(unwatched_folders.tell(world, ["INBOX"], ["INBOX"], 60.0))
    asyncio.run(unwatched_folders.tell(world, ["INBOX"], ["INBOX"], 60.0))
    assert told.appended == 1, "told once it could be, then not again that week"


def test_systemd_hears_from_the_daemon_while_a_pass_waits_on_a_silent_smtp_server(
    agent: Agent, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A mail server that takes the connection and never answers (a network that drops its packets): the pass
    waits its timeouts, a minute a try, and said nothing to systemd's watchdog meanwhile (killed at 120 s)."""
    monkeypatch.setattr(Watcher, "start", lambda self: None)
    agent.drop(mail("to a silent server"))
    with _listening(None) as port, service_manager(tmp_path, monkeypatch, watchdog_usec=400_000) as manager:
        settings = load_settings(agent.config, required=True)
        settings = settings.model_copy(update={"smtp": settings.smtp.model_copy(update={"port": port})})
        manager.run(Daemon(settings, agent.config), 3.0, cancel=True)
    gaps = manager.watchdog_gaps()
    assert len(gaps) >= 9 and max(gaps) < 0.6, (len(gaps), max(gaps, default=None))
    assert agent.smtp.messages == []


def test_before_it_is_ready_a_wait_pushes_systemds_start_timeout_back(
    limited: Agent, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Found by the hostile round: with her programs holding every connection at start, READY came only once one
    was free; systemd gives a start 90 s, then kills the unit and starts it again (the back-off afresh)."""
    dovecot, user = limited.dovecot, limited.user
    daemon = Daemon(load_settings(limited.config, required=True), limited.config)
    # all three held by her programs: the agent gets none
    with service_manager(tmp_path, monkeypatch) as manager, held_by_her_other_programs(dovecot, user, 3):
        manager.run(daemon, 2.0, poll=0.05)
    said = manager.messages()
    assert any(s.startswith("EXTEND_TIMEOUT_USEC=") for s in said), said
    assert "READY=1" not in said


# -- found by the second hostile round ---------------------------------------------------------------------------


def test_the_weekly_notice_stored_but_unanswered_is_not_told_twice(
    limited: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "HEARTBEAT", 0.5)
    monkeypatch.setattr(unwatched_folders, "LIMIT_RETRY", 0.5)  # refused again and again: told at each? once
    real_append = Connection.append
    lost = [False]

    def unanswered(self: Connection, folder: str, raw: bytes, *rest: Any, **named: Any) -> int | None:
        stored = real_append(self, folder, raw, *rest, **named)
        if b"limits connections" in raw and not lost[0]:
            lost[0] = True
            raise MailboxError("imap: connection lost: timed out")  # stored, its answer lost
        return stored

    monkeypatch.setattr(Connection, "append", unanswered)
    dovecot, user = limited.dovecot, limited.user
    daemon = Daemon(load_settings(limited.config, required=True), limited.config)

    async def drive() -> None:
        running = asyncio.create_task(daemon.run())
        await asyncio.sleep(4.0)  # several refusals of the watchers, each after LIMIT_RETRY
        daemon.stop()
        await asyncio.wait_for(running, 30)

    with held_by_her_other_programs(dovecot, user, 2):
        asyncio.run(drive())
    assert lost[0], "the first notice's answer was lost"
    assert len([s for s in _notices(dovecot, user) if "limits connections" in s]) == 1


def test_status_names_unwatched_folders_only_while_connected() -> None:
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    daemon = {"running": "yes", "pid": "1", "unwatched": "INBOX, Scheduled"}
    data: dict[str, Any] = {"now": now.isoformat(), "daemon": daemon, "mentors": []}
    assert "not watched" not in render(data | {"daemon": daemon | {"connected": "no"}}, color=False)
    assert "not watched" in render(data | {"daemon": daemon | {"connected": "yes"}}, color=False)


def test_a_start_does_not_keep_the_unwatched_folders_of_a_daemon_killed_before(agent: Agent) -> None:
    ledger = Ledger(agent.root / "state" / "ledger.sqlite3")
    try:
        ledger.set_status(unwatched="INBOX, Scheduled")  # as a daemon killed with -9 left it
    finally:
        ledger.close()
    daemon = Daemon(load_settings(agent.config, required=True), agent.config)
    seen: list[str] = []

    async def drive() -> None:
        running = asyncio.create_task(daemon.run())
        deadline = time.monotonic() + 20
        while daemon.ledger.status().get("connected", ("", ""))[0] != "yes":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        seen.append(daemon.ledger.status()["unwatched"][0])
        daemon.stop()
        await asyncio.wait_for(running, 30)

    asyncio.run(drive())
    assert seen == [""]
