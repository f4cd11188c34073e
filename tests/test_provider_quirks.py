"""The daemon against provider quirks (issue 12), each emulated in front of the real Dovecot.

Reports these emulate: Yahoo answers a MOVE/COPY of several messages with COPYUID in another order than
the sources (MailKit #1405); Microsoft 365 keeps no custom keywords (PERMANENTFLAGS without \\*, MailKit
#702, node-imap #602) and has no CONDSTORE; iCloud advertises CONDSTORE but refuses it (MailKit #970) and
has no MOVE.
"""

from __future__ import annotations

import asyncio
import imaplib
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.config.settings import Imap, Settings, Smtp
from agent.mail.claim import Mailbox
from agent.mail.session import Login
from agent.reconcile.context import World
from agent.reconcile.delivery import Item, deliver_all
from agent.rules import limits as limits_module
from agent.rules.envelope import parse_envelope
from agent.rules.policy import PolicyBook
from agent.store.ledger import CLAIMED, Ledger, Row
from tests.agent_process import Agent, agent, eventually, mail, parse
from tests.servers.dovecot import SENT, Dovecot, User
from tests.servers.rewriting_proxy import RewritingProxy, reverse_copyuid
from tests.servers.smtp import SmtpServer

__all__ = ["agent"]  # the fixture
pytestmark = pytest.mark.servers


def message(n: int, *, message_id: bool = True) -> bytes:
    mid = f"Message-ID: <q{n}.{time.monotonic_ns()}@student.example.org>\r\n" if message_id else ""
    return (
        f"From: Student <student@example.org>\r\nTo: person{n}@example.org\r\nSubject: Question {n}\r\n"
        f"{mid}Date: Tue, 24 Nov 2026 09:00:00 +0000\r\n\r\nHello {n}.\r\n"
    ).encode()


@pytest.fixture
def yahoo(dovecot: Dovecot) -> Iterator[RewritingProxy]:
    proxy = RewritingProxy(dovecot.port, reverse_copyuid)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


def _to_of(raw: bytes) -> str:
    return parse_envelope(raw).to[0]


# -- 1. a UID map is checked against Message-ID before it is trusted -------------------------------------------
@pytest.mark.parametrize("fallback", [False, True], ids=["MOVE", "COPY"])
@pytest.mark.parametrize("with_ids", [True, False], ids=["Message-ID", "no Message-ID"])
def test_a_reordered_copyuid_is_rebuilt_by_message_id(
    dovecot: Dovecot,
    imap: Imap,
    imap_login: Login,
    imap_user: User,
    yahoo: RewritingProxy,
    fallback: bool,
    with_ids: bool,
) -> None:
    raws = {
        dovecot.append(imap_user, "Outbox", message(n, message_id=with_ids)): message(n, message_id=with_ids)
        for n in range(6)
    }
    with Mailbox(imap.model_copy(update={"port": yahoo.port}), imap_login) as box:
        box.resolve_folders(imap.folders)
        box.ensure_folder("Outbox")
        box.force_copy_fallback = fallback
        moved = box.move_many("Outbox", sorted(raws), "Sending")
        assert yahoo.rewritten >= 1, "the emulation did reorder the server's COPYUID"
        assert sorted(moved) == sorted(raws)
        in_sending = dovecot.messages(imap_user, "Sending")
        for old, new in moved.items():
            assert new is not None and _to_of(in_sending[new]) == _to_of(raws[old]), (
                f"UID {old} mapped to {new}, which holds another message"
            )
        assert box.remapped == 1
    assert dovecot.messages(imap_user, "Outbox") == {}


def test_a_correct_copyuid_is_trusted_after_the_check(box_imap: tuple[Mailbox, Dovecot, User]) -> None:
    box, dovecot, user = box_imap
    uids = [dovecot.append(user, "Outbox", message(n)) for n in range(3)]
    moved = box.move_many("Outbox", uids, "Sending")
    assert len(moved) == 3 and box.remapped == 0


@pytest.fixture
def box_imap(
    dovecot: Dovecot, imap: Imap, imap_login: Login, imap_user: User
) -> Iterator[tuple[Mailbox, Dovecot, User]]:
    with Mailbox(imap, imap_login) as box:
        box.resolve_folders(imap.folders)
        box.ensure_folder("Outbox")
        yield box, dovecot, imap_user


def _behind(agent: Agent, proxy: RewritingProxy) -> None:
    """Point the agent's IMAP at the proxy."""
    text = agent.config.read_text()
    agent.config.write_text(text.replace(f"port = {agent.dovecot.port}\n", f"port = {proxy.port}\n", 1))


def test_six_messages_dropped_together_each_go_with_their_own_envelope(agent: Agent, yahoo: RewritingProxy) -> None:
    """Measured before the fix: each of six went out with another message's recipients."""
    _behind(agent, yahoo)
    raws = [mail(f"note {n}", to=f"friend{n}@example.org") for n in range(6)]
    for raw in raws:
        agent.drop(raw)
    agent.start()
    received = agent.smtp.wait_for(6, timeout=30)
    assert yahoo.rewritten >= 1
    for got in received:
        assert list(got.rcpt_tos) == [str(parse(got.content)["To"])], "sent with another message's envelope"
    sent = eventually(lambda: agent.subjects("Sent") if len(agent.subjects("Sent")) == 6 else None, timeout=20)
    assert sorted(sent) == sorted(f"note {n}" for n in range(6))
    time.sleep(1)
    assert len(agent.smtp.messages) == 6
    assert agent.folder_raw("Outbox") == {} and agent.folder_raw("Sending") == {}


@pytest.mark.parametrize("point", ["claimed", "accepted"])
def test_kill_9_with_a_reordered_copyuid_sends_each_once(agent: Agent, yahoo: RewritingProxy, point: str) -> None:
    """Measured before the fix: three messages reached the server twice after a kill -9."""
    _behind(agent, yahoo)
    subjects = sorted(f"crash {n}" for n in range(6))
    for n in range(6):
        agent.drop(mail(f"crash {n}", to=f"friend{n}@example.org"))
    agent.start(MENTOR_AGENT_CRASH_AT=point)
    assert agent.wait_exit() == -signal.SIGKILL
    agent.start()
    # Each ends in Sent, or (sent side by side when the kill came) in Needs attention as in doubt.
    eventually(lambda: sorted(agent.subjects("Sent") + agent.subjects("Needs attention")) == subjects, timeout=30)
    time.sleep(1.5)
    got = [str(parse(r.content)["Subject"]) for r in agent.smtp.messages]
    assert len(got) == len(set(got)), f"a message went twice: {sorted(got)}"
    assert set(agent.subjects("Sent")) <= set(got)
    for received in agent.smtp.messages:
        assert list(received.rcpt_tos) == [str(parse(received.content)["To"])]
    assert agent.folder_raw("Sending") == {} and agent.folder_raw("Outbox") == {}


# -- 2. claims without keywords or CONDSTORE --------------------------------------------------------------------
def test_keywords_dropped_silently_still_move(
    box_imap: tuple[Mailbox, Dovecot, User], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Microsoft 365: a STORE of a custom keyword answers OK and keeps nothing; read back, then move."""
    box, dovecot, user = box_imap
    uids = [dovecot.append(user, "Outbox", message(n)) for n in range(3)]
    real = box.client._imap.uid

    def forgetful(command: str, *args: Any) -> Any:
        if command == "STORE" and "UNCHANGEDSINCE" in " ".join(map(str, args)):
            return "OK", [b"done"]  # accepted, kept nothing
        return real(command, *args)

    monkeypatch.setattr(box.client._imap, "uid", forgetful)
    moved = box.move_many("Outbox", uids, "Sending")
    assert sorted(moved) == uids
    assert dovecot.messages(user, "Outbox") == {}


def test_permanentflags_without_star_means_no_keyword_claim(
    box_imap: tuple[Mailbox, Dovecot, User], monkeypatch: pytest.MonkeyPatch
) -> None:
    box, dovecot, user = box_imap
    real_select = box.client.select_folder

    def microsoft(folder: str, readonly: bool = False) -> dict[bytes, Any]:
        response: dict[bytes, Any] = real_select(folder, readonly)
        response[b"PERMANENTFLAGS"] = (b"\\Seen", b"\\Answered", b"\\Flagged", b"\\Deleted", b"\\Draft")
        return response

    monkeypatch.setattr(box.client, "select_folder", microsoft)
    stores: list[str] = []
    real_uid = box.client._imap.uid

    def spy(command: str, *args: Any) -> Any:
        stores.append(" ".join(map(str, (command, *args))))
        return real_uid(command, *args)

    monkeypatch.setattr(box.client._imap, "uid", spy)
    box._selected = None
    uids = [dovecot.append(user, "Outbox", message(n)) for n in range(2)]
    assert sorted(box.move_many("Outbox", uids, "Sending")) == uids
    assert not [s for s in stores if "UNCHANGEDSINCE" in s], "no keyword claim where keywords are not kept"


def test_condstore_advertised_but_refused_still_moves(
    box_imap: tuple[Mailbox, Dovecot, User], monkeypatch: pytest.MonkeyPatch
) -> None:
    """iCloud advertises CONDSTORE and refuses it when used (MailKit #970)."""
    box, dovecot, user = box_imap
    real_fetch = box._fetch

    def icloud(uids: list[int], items: list[str]) -> dict[int, dict[bytes, Any]]:
        if "MODSEQ" in items:
            raise imaplib.IMAP4.error("FETCH command error: BAD [CLIENTBUG] CONDSTORE not enabled")
        return real_fetch(uids, items)

    monkeypatch.setattr(box, "_fetch", icloud)
    box.force_copy_fallback = True  # and no MOVE
    uids = [dovecot.append(user, "Outbox", message(n)) for n in range(3)]
    dovecot.append(user, "Outbox", message(9), flags=("\\Deleted",))  # the student's own deleted mail
    moved = box.move_many("Outbox", uids, "Sending")
    assert sorted(moved) == uids and not box.uses_claims
    assert len(dovecot.messages(user, "Outbox")) == 1, "only those UIDs expunged, never a bare EXPUNGE"


# -- the last guard: what is sent is the row's own message -----------------------------------------------------
def _mailbox(world: World) -> Mailbox:
    """The IMAP mailbox behind ``world`` (World holds it as the interface, MailboxPort)."""
    assert isinstance(world.mailbox, Mailbox)
    return world.mailbox


def _world(tmp_path: Path, imap: Imap, login: Login, smtp: SmtpServer, **smtp_settings: Any) -> World:
    settings = Settings(
        imap=imap,
        smtp=Smtp(
            host="127.0.0.1",
            port=smtp.port,
            security="plain",
            timeout=10,
            **{"file_in_sent": "always", **smtp_settings},
        ),
        state_dir=tmp_path / "state",
        policies_dir=tmp_path,
    )
    box = Mailbox(imap, login)
    box.connect()
    folders = box.resolve_folders(imap.folders)
    return World(settings, box, folders, Ledger(settings.ledger_path), PolicyBook([]), smtp_login=lambda: None)


def _row(raw: bytes, folder: str, uid: int, state: str = CLAIMED) -> Row:
    envelope = parse_envelope(raw)
    return Row(
        key=envelope.key,
        message_id=envelope.message_id or "",
        mentor=None,
        subject=envelope.subject,
        sender=envelope.sender,
        recipients=envelope.recipients,
        arrived=datetime.now(UTC),
        state=state,
        folder=folder,
        uid=uid,
        due=None,
        digest=None,
        reason="",
        standalone=False,
        group_key="",
        forced=False,
        told="",
        attempts=0,
        item=None,
        sent_at=None,
        detail="",
    )


def test_a_ledger_uid_that_holds_another_message_is_never_sent_with_this_envelope(
    tmp_path: Path,
    dovecot: Dovecot,
    imap: Imap,
    imap_login: Login,
    imap_user: User,
    smtp_server: SmtpServer,
) -> None:
    first, second = message(1), message(2)
    uid_first = dovecot.append(imap_user, "Sending", first)
    uid_second = dovecot.append(imap_user, "Sending", second)
    world = _world(tmp_path, imap, imap_login, smtp_server)
    try:
        # Each row points at the other's UID, as a wrong UID map once left them.
        rows = [_row(first, "Sending", uid_second), _row(second, "Sending", uid_first)]
        for row in rows:
            world.ledger.add(row)
        asyncio.run(deliver_all(world, [Item([row]) for row in rows]))
    finally:
        _mailbox(world).close()
        world.ledger.close()
    received = smtp_server.wait_for(2)
    for got in received:
        assert list(got.rcpt_tos) == [str(parse(got.content)["To"])], "sent with another message's envelope"
    assert dovecot.messages(imap_user, "Sending") == {}
    assert len(dovecot.messages(imap_user, SENT)) == 2


# -- 3. Sent filed by looking, not by the server's name --------------------------------------------------------
class ProviderFilesSent:
    """What Gmail and Microsoft 365 do: every message their SMTP server accepts appears in Sent a moment later."""

    def __init__(self, dovecot: Dovecot, user: User, smtp: SmtpServer, delay: float) -> None:
        self.dovecot, self.user, self.smtp, self.delay = dovecot, user, smtp, delay
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        filed = 0
        while not self.done.is_set():
            messages = list(self.smtp.messages)
            for received in messages[filed:]:
                wait = received.received_at + self.delay - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                self.dovecot.append(self.user, SENT, received.content, ("\\Seen",))
            filed = len(messages)
            time.sleep(0.02)

    def __enter__(self) -> ProviderFilesSent:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.done.set()
        self.thread.join(5)


def _filing(agent: Agent, choice: str) -> None:
    text = agent.config.read_text()
    agent.config.write_text(text.replace('file_in_sent = "always"', f'file_in_sent = "{choice}"'))


@pytest.mark.parametrize("delay", [0.0, 1.0, 8.0], ids=["at once", "after 1 s", "late: after 8 s"])
def test_auto_never_files_a_second_copy_where_the_provider_files_sent(agent: Agent, delay: float) -> None:
    """Measured before the fix (a server that files Sent itself): 14 of 17 messages had two copies in Sent."""
    _filing(agent, "auto")
    subjects = [f"filed {n}" for n in range(17)]
    with ProviderFilesSent(agent.dovecot, agent.user, agent.smtp, delay):
        agent.start()
        for n, subject in enumerate(subjects):
            agent.drop(mail(subject, to=f"friend{n}@example.org"))
        agent.smtp.wait_for(17, timeout=40)
        eventually(lambda: agent.folder_raw("Sending") == {} and agent.folder_raw("Outbox") == {}, timeout=30)
        time.sleep(delay + 1)
        eventually(lambda: sorted(agent.subjects("Sent")) == sorted(subjects), timeout=20)  # one copy each
        time.sleep(1)
    assert sorted(agent.subjects("Sent")) == sorted(subjects), "one copy each in Sent"


def test_auto_files_it_where_the_provider_does_not(agent: Agent) -> None:
    _filing(agent, "auto")
    agent.start()
    for n in range(3):
        agent.drop(mail(f"ours {n}", to=f"friend{n}@example.org"))
    agent.smtp.wait_for(3)
    eventually(lambda: sorted(agent.subjects("Sent")) == [f"ours {n}" for n in range(3)], timeout=30)
    assert agent.folder_raw("Sending") == {}
    time.sleep(1)
    assert len(agent.subjects("Sent")) == 3


# -- 4. the agent's folders are never a provider's own -------------------------------------------------------------
def _exchange_folders(agent: Agent) -> int:
    """The mailbox as Microsoft 365 shows it: Exchange's folders, and Outlook's Outbox with a message it is
    sending right now. Returns that message's UID."""
    with agent.dovecot.client(agent.user) as client:
        for folder in ("Deleted Items", "Junk Email"):
            client.create_folder(folder)
    return agent.dovecot.append(agent.user, "Outbox", mail("parked by Outlook", to="someone@example.org"))


def test_outlooks_own_outbox_is_never_taken_with_the_default_folders(agent: Agent) -> None:
    """Measured before the fix: a message Outlook had parked in its Outbox was sent by the agent within 0.1 s."""
    _exchange_folders(agent)
    agent.start()
    agent.drop(mail("mine"))
    received = agent.smtp.wait_for(1)
    time.sleep(2)
    assert [str(parse(r.content)["Subject"]) for r in agent.smtp.messages] == ["mine"]
    assert [str(m["Subject"]) for m in agent.folder("Outbox")] == [], "the agent's own outbox is empty"
    assert len(agent.dovecot.messages(agent.user, "Outbox")) == 1, "Outlook's Outbox untouched"
    assert received


def _explicit_outbox(agent: Agent, name: str) -> None:
    agent.config.write_text(agent.config.read_text() + f'\n[imap.folders]\noutbox = "{name}"\n')


def test_an_explicit_outbox_that_is_outlooks_own_is_refused_naming_the_key(agent: Agent) -> None:
    _exchange_folders(agent)
    _explicit_outbox(agent, "Outbox")
    with pytest.raises(AssertionError, match="did not start"):
        agent.start()
    assert agent.wait_exit() == 78
    log = agent.log()
    assert "imap.folders.outbox" in log and "Outlook's own Outbox" in log
    assert agent.smtp.messages == []


def test_an_explicit_outbox_named_outbox_keeps_working_elsewhere(agent: Agent) -> None:
    _explicit_outbox(agent, "Outbox")
    agent.start()
    agent.dovecot.append(agent.user, "Outbox", mail("old name"))
    assert str(parse(agent.smtp.wait_for(1)[0].content)["Subject"]) == "old name"


def test_mail_in_an_outbox_the_agent_never_used_is_left_alone_with_one_notice(agent: Agent) -> None:
    agent.dovecot.append(agent.user, "Outbox", mail("someone else's"))
    agent.start()
    notice = eventually(lambda: [n for n in agent.notices() if "not “Outbox”" in str(n["Subject"])])[0]
    assert "move them into “Mentor Outbox”" in notice.get_content()
    time.sleep(1)
    assert agent.smtp.messages == [] and len(agent.dovecot.messages(agent.user, "Outbox")) == 1


def test_a_microsoft_greeting_marks_outbox_as_outlooks(
    box_imap: tuple[Mailbox, Dovecot, User], monkeypatch: pytest.MonkeyPatch
) -> None:
    box, _, _ = box_imap
    assert box.providers_own("Outbox") is None
    monkeypatch.setattr(box.client._imap, "welcome", b"* OK The Microsoft Exchange IMAP4 service is ready.")
    assert "Outlook's own Outbox" in (box.providers_own("Outbox") or "")
    assert box.providers_own("Mentor Outbox") is None


# -- 7. providers' sending limits ------------------------------------------------------------------------------------
def _claimed_backlog(dovecot: Dovecot, user: User, world: World, count: int) -> list[Row]:
    rows = []
    for n in range(count):
        raw = message(n)
        row = _row(raw, "Sending", dovecot.append(user, "Sending", raw))
        world.ledger.add(row)
        rows.append(row)
    return rows


def test_a_backlog_is_paced_to_the_providers_per_minute_limit(
    tmp_path: Path,
    dovecot: Dovecot,
    imap: Imap,
    imap_login: Login,
    imap_user: User,
    smtp_server: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Exchange Online: 30 messages a minute (here 3 in 2 s, so that the test is short)."""
    monkeypatch.setitem(limits_module.TABLE, "microsoft365", replace(limits_module.TABLE["microsoft365"], per_minute=3))
    monkeypatch.setattr(limits_module, "MINUTE", timedelta(seconds=2))
    world = _world(tmp_path, imap, imap_login, smtp_server, provider="microsoft365")
    try:
        rows = _claimed_backlog(dovecot, imap_user, world, 7)
        asyncio.run(deliver_all(world, [Item([row]) for row in rows]))
    finally:
        _mailbox(world).close()
        world.ledger.close()
    times = [r.received_at for r in smtp_server.wait_for(7)]
    for at in times:
        assert sum(1 for t in times if at - 2 < t <= at) <= 3, "never more than the limit in any window"
    assert times[-1] - times[0] >= 4


def test_the_daily_limit_holds_the_rest_with_a_notice_instead_of_tripping_it(
    tmp_path: Path,
    dovecot: Dovecot,
    imap: Imap,
    imap_login: Login,
    imap_user: User,
    smtp_server: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(limits_module.TABLE, "outlook.com", replace(limits_module.TABLE["outlook.com"], per_day=5))
    world = _world(tmp_path, imap, imap_login, smtp_server, provider="outlook.com")
    try:
        rows = _claimed_backlog(dovecot, imap_user, world, 7)
        asyncio.run(deliver_all(world, [Item([row]) for row in rows]))
        held = world.held_until
        states = [world.ledger.get(row.key).state for row in rows]  # type: ignore[union-attr]
    finally:
        _mailbox(world).close()
        world.ledger.close()
    time.sleep(0.5)
    assert len(smtp_server.messages) == 5
    assert held is not None and held > datetime.now(UTC) + timedelta(hours=23)
    assert states.count(CLAIMED) == 2, "the rest wait, claimed, certainly not sent"
    subjects = [str(parse(raw)["Subject"]).strip() for raw in dovecot.messages(imap_user, "INBOX").values()]
    assert any(s.startswith("[mentor-agent] Close to Outlook.com's daily sending limit (4 of 5)") for s in subjects)
    assert any(s.startswith("[mentor-agent] Sending paused until") for s in subjects)
