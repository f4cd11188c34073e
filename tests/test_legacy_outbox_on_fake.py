"""The old default "Outbox" (issue 20), on the in-memory mailbox and the real aiosmtpd server: only the message the
ledger took in from there is brought along, checked at its UID before it is moved (the student may have deleted and
re-created the folder: the UID then holds another message, never handed over), and a start killed between the move
and the ledger's update still sends the message once, without a false "copy" notice."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.reconcile.outbox_folders import LEGACY_TOLD, settle_folders
from agent.rules.envelope import parse_envelope
from agent.store.owed_notices import OwedNotice
from tests.agent_process import OUTBOX, parse, policy_text
from tests.helpers import ledger_row
from tests.servers.smtp import SmtpServer
from tests.test_passes_on_fake import Pass, mail

LEGACY = "Outbox"


@pytest.fixture
def open_pass(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Pass]:
    made = Pass(tmp_path, smtp_server, policy_text())
    made.server.create(LEGACY)
    try:
        yield made
    finally:
        made.world.ledger.close()


def _taken_in_by_0_1_0(p: Pass, raw: bytes, uid: int) -> None:
    """The row a 0.1.0 agent (watching "Outbox") wrote for a message it took in and had not sent yet."""
    envelope = parse_envelope(raw)
    row = ledger_row(envelope, folder=LEGACY, uid=uid)
    p.world.ledger.add(row)


def _start(p: Pass) -> None:
    """A start of the daemon: the folder check, then passes."""
    asyncio.run(settle_folders(p.world, "config.toml"))
    for _ in range(3):
        p.run()


def _sent(p: Pass) -> list[str]:
    return [str(parse(r.content)["Subject"]) for r in p.smtp.messages]


def test_a_uid_reused_in_a_recreated_outbox_is_never_taken(open_pass: Pass) -> None:
    """0.1.0 took in a message at UID 1 of "Outbox"; the student deleted the folder (and it) and made a new "Outbox"
    of her own, where a private message got UID 1 again (a new UIDVALIDITY)."""
    private = mail("private, never handed over", to="someone@example.org")
    uid = open_pass.server.put(LEGACY, private)
    _taken_in_by_0_1_0(open_pass, mail("taken in by 0.1.0"), uid)
    _start(open_pass)
    _start(open_pass)  # and again after a restart
    assert _sent(open_pass) == [], "mail taken from a folder never handed over"
    assert open_pass.subjects(LEGACY) == ["private, never handed over"]
    assert open_pass.subjects(OUTBOX) == [] and open_pass.subjects("Sending") == []


@pytest.mark.parametrize("others", [[], ["never handed over"]], ids=["Outbox empty", "another message there"])
def test_a_start_killed_between_the_move_and_the_ledger_sends_the_message_once(
    open_pass: Pass, others: list[str]
) -> None:
    """After a kill -9 right after bring-along's MOVE: the message is in the Mentor Outbox at a new UID, its row still
    says "Outbox" at the old UID (where now another message, never handed over, may sit)."""
    taken = mail("taken in by 0.1.0")
    _taken_in_by_0_1_0(open_pass, taken, 1)
    open_pass.server.put(OUTBOX, taken)
    for subject in others:
        open_pass.server.put(LEGACY, mail(subject, to="someone@example.org"))
    _start(open_pass)
    assert _sent(open_pass) == ["taken in by 0.1.0"]
    assert open_pass.subjects("Needs attention") == []
    notices = [str(parse(raw)["Subject"]) for raw in open_pass.server.messages("INBOX").values()]
    assert not [n for n in notices if "Not sent" in n], "no false notice of a copy"
    assert open_pass.subjects(LEGACY) == others


@pytest.mark.parametrize("appended", [False, True], ids=["killed before its APPEND", "killed after it"])
def test_a_kill_while_the_notice_is_written_tells_her_once_afterwards(
    open_pass: Pass, monkeypatch: pytest.MonkeyPatch, appended: bool
) -> None:
    """Killed while the notice is written: it is owed, in the transaction that records it as told, and the next pass
    tells it, once (before, the mark was written after the notice: told again after a kill in between, or never
    had the mark come first)."""
    open_pass.server.put(LEGACY, mail("never handed over", to="someone@example.org"))

    async def killed(notice: OwedNotice) -> None:
        if appended:
            open_pass.box.append("INBOX", notice.raw)
        raise _Killed

    with monkeypatch.context() as patch:
        patch.setattr(open_pass.world, "tell", killed)
        with pytest.raises(_Killed):
            asyncio.run(settle_folders(open_pass.world, "config.toml"))
    assert open_pass.world.ledger.meta_value(LEGACY_TOLD) is not None
    asyncio.run(settle_folders(open_pass.world, "config.toml"))  # the next start
    open_pass.run()  # its pass tells what is owed
    asyncio.run(settle_folders(open_pass.world, "config.toml"))
    told = [s for s in open_pass.subjects("INBOX") if "not “Outbox”" in s]
    assert len(told) == 1, open_pass.subjects("INBOX")


class _Killed(Exception):
    pass
