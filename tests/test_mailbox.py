"""The IMAP adapter against a real Dovecot (tests/servers/dovecot.py)."""

from __future__ import annotations

import asyncio
import imaplib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from agent.config.settings import Folders, Imap, Security, Settings
from agent.daemon import session
from agent.mail import claim as claim_module
from agent.mail import client as client_module
from agent.mail import uidsets
from agent.mail.claim import Mailbox
from agent.mail.port import HELD_KEYWORD, HeaderInfo
from agent.mail.session import Login, MailboxError, MessageGone
from agent.mail.watch import Watcher
from agent.reconcile.context import World
from agent.reconcile.doors.drafts import DraftDoor
from agent.reconcile.outbox_folders import settle_folders
from agent.rules.policy import PolicyBook
from agent.store.ledger import Ledger
from tests.servers.dovecot import SENT, Dovecot, User

pytestmark = pytest.mark.servers


def message(n: int = 1, body: bytes = b"Hello.\r\n", message_id: str | None = None) -> bytes:
    mid = message_id or f"<m{n}.{time.monotonic_ns()}@student.example.org>"
    return (
        b"From: Student <student@example.org>\r\n"
        b"To: Dr Rivera <rivera@example.org>\r\n"
        + f"Subject: Question {n}\r\nMessage-ID: {mid}\r\n".encode()
        + b"Date: Tue, 24 Nov 2026 09:00:00 +0000\r\n\r\n"
        + body
    )


@pytest.fixture
def box(imap: Imap, imap_login: Login) -> Iterator[Mailbox]:
    with Mailbox(imap, imap_login) as mailbox:
        mailbox.resolve_folders(imap.folders)
        mailbox.ensure_folder("Outbox")  # the folder these tests move from
        yield mailbox


# -- folders ---------------------------------------------------------------------------------------------
def test_resolve_finds_sent_by_special_use_and_creates_the_agents_folders(
    dovecot: Dovecot, imap: Imap, imap_login: Login, imap_user: User
) -> None:
    with Mailbox(imap, imap_login) as mailbox:
        assert mailbox.has_special_use and mailbox.has_move and mailbox.has_uidplus and mailbox.has_idle
        resolved = mailbox.resolve_folders(Folders())
        again = mailbox.resolve_folders(Folders())  # idempotent
    assert resolved == again
    assert resolved.sent == SENT
    assert (resolved.inbox, resolved.outbox, resolved.notices) == ("INBOX", "Mentor Outbox", "INBOX")
    folders = dovecot.folders(imap_user)
    for name in ("Mentor Outbox", "Scheduled", "Needs attention", "Sending", SENT):
        assert name in folders
    assert "Sent" not in folders
    assert "\\Sent" in folders[SENT]


def test_a_configured_sent_folder_wins_and_is_created(
    dovecot: Dovecot, imap: Imap, imap_login: Login, imap_user: User
) -> None:
    with Mailbox(imap, imap_login) as mailbox:
        resolved = mailbox.resolve_folders(Folders(sent="Mentors/Sent", outbox="Mentors/Outbox"))
    assert (resolved.sent, resolved.outbox) == ("Mentors/Sent", "Mentors/Outbox")
    assert {"Mentors/Sent", "Mentors/Outbox"} <= set(dovecot.folders(imap_user))


def commands_sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The IMAP commands sent from now on, as the server reads them (``LIST``, ``SELECT``, ``UID SEARCH``, ...)."""
    sent: list[str] = []
    real = imaplib.IMAP4.send

    def send(imap: imaplib.IMAP4, data: bytes) -> None:
        tag = imap.tagpre  # bytes at run time (typeshed says str)
        words = data.split(b" ", 3)
        if len(words) > 1 and words[0].startswith(tag if isinstance(tag, bytes) else tag.encode()):
            name = words[1].decode().upper()
            sent.append(f"UID {words[2].decode().upper()}" if name == "UID" and len(words) > 2 else name)
        real(imap, data)

    monkeypatch.setattr(imaplib.IMAP4, "send", send)
    return sent


def test_the_start_lists_the_folders_once(imap: Imap, imap_login: Login, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SPECIAL-USE check and the folders' resolution read one LIST (issue 21: eight before the first decision)."""
    settings = Settings(imap=imap, environ={})
    mailbox, first = session.connect(settings, "config.toml", "agent-1", imap_login)
    mailbox.close()
    sent = commands_sent(monkeypatch)
    mailbox, folders = session.connect(settings, "config.toml", "agent-1", imap_login)
    mailbox.close()
    assert folders == first and folders.sent == SENT
    assert [name for name in sent if name == "LIST"] == ["LIST"]


def test_a_session_start_reads_one_list_to_its_first_look(
    tmp_path: Path, imap: Imap, imap_login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon's way in: login, the SPECIAL-USE check, the folders made, the Outbox's owner, the old default
    Outbox and the drafts door's folder, all from one LIST (issue 21: ten before the first send)."""
    settings = Settings(imap=imap, state_dir=tmp_path, policies_dir=tmp_path, environ={})
    ledger = Ledger(settings.ledger_path)

    def start() -> tuple[Mailbox, World, dict[str, frozenset[str]]]:
        mailbox, folders, listed = session.connect_listed(settings, "config.toml", "agent-1", imap_login)
        return mailbox, World(settings, mailbox, folders, ledger, PolicyBook([]), smtp_login=lambda: None), listed

    try:
        mailbox, world, listed = start()  # a new mailbox: the agent's folders are made
        assert set(asyncio.run(settle_folders(world, "config.toml"))) == set(listed), "the folders made are in it"
        mailbox.close()
        sent = commands_sent(monkeypatch)
        mailbox, world, listed = start()
        settled = asyncio.run(settle_folders(world, "config.toml", listed))
        assert asyncio.run(DraftDoor().find_folder(world, settled)) == "Drafts"
        mailbox.close()
        assert [name for name in sent if name == "LIST"] == ["LIST"]
    finally:
        ledger.close()


# -- reading -----------------------------------------------------------------------------------------------
def test_append_uids_and_one_batch_of_headers(box: Mailbox, monkeypatch: pytest.MonkeyPatch) -> None:
    raws = [message(n) for n in range(5)]
    when = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    appended = [box.append("Outbox", raw, flags=["\\Seen"], when=when) for raw in raws]
    assert all(isinstance(uid, int) for uid in appended)
    validity, uids = box.uids("Outbox")
    assert validity > 0 and uids == appended
    monkeypatch.setattr(client_module, "FETCH_CHUNK", 2)  # several UID FETCH commands, one result
    infos = box.headers("Outbox", [*reversed(uids), 9999])
    assert [info.uid for info in infos] == uids
    for info, raw in zip(infos, raws, strict=True):
        assert isinstance(info, HeaderInfo)
        assert info.size == len(raw)
        assert "\\Seen" in info.flags
        assert info.headers == raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
        assert info.internaldate == when
    assert box.headers("Outbox", []) == []


def test_fetch_is_byte_for_byte_and_does_not_mark_seen(dovecot: Dovecot, imap_user: User, box: Mailbox) -> None:
    body = (
        "Liebe Frau Dr. Müller, ich würde gern über die Famulatur sprechen — 日本語 too.\r\n".encode()
        + b"x" * 1500
        + b"\r\n"  # longer than RFC 5322's 998: servers must keep it
        + b"\xff\xfe raw 8-bit bytes\r\n"
        + b".leading dot\r\n\r\n\r\n"
    )
    raw = message(1, body=b"Content-Type: text/plain; charset=utf-8\r\n" + body)
    raw = raw.replace(b"\r\n\r\nContent-Type", b"\r\nContent-Type", 1).replace(
        b"charset=utf-8\r\n", b"charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n", 1
    )
    uid = box.append("Outbox", raw)
    assert uid is not None
    assert box.fetch("Outbox", uid) == raw
    assert dovecot.messages(imap_user, "Outbox") == {uid: raw}
    assert "\\Seen" not in dovecot.flags(imap_user, "Outbox", uid)
    assert box.fetch("Outbox", uid + 100) is None


def test_find_by_message_id_and_uids_since(box: Mailbox) -> None:
    first = box.append("Sending", message(1, message_id="<abc.1@student.example.org>"))
    box.append("Sending", message(2, message_id="<abc.2@student.example.org>"))
    assert box.find_by_message_id("Sending", "<abc.1@student.example.org>") == [first]
    assert box.find_by_message_id("Sending", "<missing@student.example.org>") == []
    old = box.append("Sending", message(3), when=datetime(2020, 1, 2, 12, tzinfo=UTC))
    _, recent = box.uids_since("Sending", datetime.now(UTC).date() - timedelta(days=2))
    assert old not in recent and first in recent
    assert old in box.uids_since("Sending", date(2019, 12, 1))[1]


def test_uids_since_takes_the_validity_from_its_own_select(box: Mailbox, monkeypatch: pytest.MonkeyPatch) -> None:
    recent = box.append("Sending", message(1))
    old = box.append("Sending", message(2), when=datetime(2020, 1, 2, 12, tzinfo=UTC))
    validity, _ = box.uids("Sending")
    sent = commands_sent(monkeypatch)
    assert box.uids_since("Sending", datetime.now(UTC).date() - timedelta(days=2)) == (validity, [recent])
    assert sent == ["SELECT", "UID SEARCH"], "one fresh SELECT and one SEARCH: no second look for UIDVALIDITY"
    assert box.uids_since("Sending", date(2019, 12, 1)) == (validity, [recent, old])


# -- changing ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fallback", [False, True], ids=["MOVE", "COPY+EXPUNGE"])
def test_move_leaves_other_deleted_mail_alone(dovecot: Dovecot, imap_user: User, box: Mailbox, fallback: bool) -> None:
    box.force_copy_fallback = fallback
    raw = message(1)
    uid = box.append("Outbox", raw)
    other = box.append("Outbox", message(2), flags=["\\Deleted"])  # the student's own, not ours to expunge
    assert uid is not None and other is not None
    new = box.move("Outbox", uid, "Sending")
    assert new is not None
    assert dovecot.messages(imap_user, "Sending") == {new: raw}
    assert set(dovecot.messages(imap_user, "Outbox")) == {other}
    with pytest.raises(MessageGone):
        box.move("Outbox", uid, "Sending")


@pytest.mark.parametrize("fallback", [False, True], ids=["MOVE", "COPY+EXPUNGE"])
def test_two_agents_racing_for_a_message_exactly_one_wins(
    dovecot: Dovecot, imap: Imap, imap_login: Login, imap_user: User, box: Mailbox, fallback: bool
) -> None:
    rounds = 6
    uids = [box.append("Outbox", message(n)) for n in range(rounds)]
    with Mailbox(imap, imap_login) as other:
        agents = [box, other]
        for agent in agents:
            agent.force_copy_fallback = fallback
            agent.uids("Outbox")  # both have the folder selected and have seen every UID
        for uid in uids:
            assert uid is not None
            barrier = threading.Barrier(2)
            outcomes: list[str] = []

            def claim(
                agent: Mailbox, uid: int = uid, barrier: threading.Barrier = barrier, outcomes: list[str] = outcomes
            ) -> None:
                barrier.wait()
                try:
                    agent.move("Outbox", uid, "Sending")
                    outcomes.append("won")
                except MessageGone:
                    outcomes.append("gone")
                except MailboxError as error:  # e.g. [EXPUNGEISSUED] not taken for a lost race: a failure
                    outcomes.append(f"failed: {error}")

            threads = [threading.Thread(target=claim, args=(agent,)) for agent in agents]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(10)
            assert outcomes.count("won") <= 1, "never two agents moving one message"
            assert sorted(outcomes) in (["gone", "won"], ["gone", "gone"]), outcomes
            if "won" not in outcomes:  # both gave way (each read the other's keyword): safe, and free again
                box.move("Outbox", uid, "Sending")
    assert len(dovecot.messages(imap_user, "Sending")) == rounds
    assert dovecot.messages(imap_user, "Outbox") == {}


def test_an_agent_that_lost_a_race_goes_on_claiming(
    dovecot: Dovecot, imap: Imap, imap_login: Login, imap_user: User, box: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two real sessions, step by step. ``late`` still has the first message in its view when ``box`` has moved
    # it: Dovecot answers its FETCH with empty flags (and [EXPUNGEISSUED]), its STORE with OK, its read-back
    # with nothing. That is a lost race, not a server that drops keywords: it once made the loser move every
    # later message without a claim, and both agents moved (and sent) the next one (the CI flake).
    first, second = box.append("Outbox", message(1)), box.append("Outbox", message(2))
    assert first is not None and second is not None
    with Mailbox(imap, imap_login) as late:
        late.uids("Outbox")  # has seen both UIDs
        box.move("Outbox", first, "Sending")
        with pytest.raises(MessageGone):
            late.move("Outbox", first, "Sending")
        looked = late._present

        def look_then_other_claims(folder: str, uids: list[int]) -> tuple[dict[int, int | None], dict[int, str]]:
            found = looked(folder, uids)  # no claim on it yet ...
            box.set_flags("Outbox", second, [box.claim_keyword])  # ... then the other agent's STORE lands
            return found

        monkeypatch.setattr(late, "_present", look_then_other_claims)
        assert late.move_many("Outbox", [second], "Sending") == {}, "the other agent's claim is respected"
    assert set(dovecot.messages(imap_user, "Outbox")) == {second}
    assert len(dovecot.messages(imap_user, "Sending")) == 1


def test_a_message_expunged_under_a_move_is_gone_not_a_failure(
    dovecot: Dovecot, imap: Imap, imap_login: Login, imap_user: User, box: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another session moves the message between this one's look and its MOVE: Dovecot refuses the whole MOVE
    # with NO [EXPUNGEISSUED] (RFC 5530) and moves nothing. The message is gone; the rest of the batch moves.
    gone, kept = box.append("Outbox", message(1)), box.append("Outbox", message(2))
    assert gone is not None and kept is not None
    with Mailbox(imap, imap_login) as late:
        looked = late._present

        def look_then_lose(folder: str, uids: list[int]) -> tuple[dict[int, int | None], dict[int, str]]:
            found = looked(folder, uids)
            if gone in uids:
                box.move("Outbox", gone, "Sending")
            return found

        monkeypatch.setattr(late, "_present", look_then_lose)
        late.uids("Outbox")
        moved = late.move_many("Outbox", [gone, kept], "Sending", claim=False)
        assert list(moved) == [kept]
        with pytest.raises(MessageGone):
            late.move("Outbox", gone, "Sending")
    assert dovecot.messages(imap_user, "Outbox") == {}
    assert len(dovecot.messages(imap_user, "Sending")) == 2


def test_delete_and_flags_touch_only_that_message(dovecot: Dovecot, imap_user: User, box: Mailbox) -> None:
    keep = box.append("Scheduled", message(1))
    drop = box.append("Scheduled", message(2))
    assert keep is not None and drop is not None
    box.set_flags("Scheduled", keep, ["\\Flagged", "$MentorAgent"])
    assert {"\\Flagged", "$MentorAgent"} <= dovecot.flags(imap_user, "Scheduled", keep)
    box.remove_flags("Scheduled", keep, ["\\Flagged"])
    assert "\\Flagged" not in dovecot.flags(imap_user, "Scheduled", keep)
    box.delete("Scheduled", drop)
    assert set(dovecot.messages(imap_user, "Scheduled")) == {keep}


def test_a_body_another_session_expunged_meanwhile_is_gone_not_a_crash(
    box: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a loop of the two-agents test: Dovecot answered a FETCH of a message the other agent had just
    expunged with ``BODY[] NIL``; ``bytes(None)`` ended the daemon ("unexpected TypeError")."""
    kept, gone = box.append("Scheduled", message(1)), box.append("Scheduled", message(2))
    assert kept is not None and gone is not None
    real = box.client.fetch

    def fetch(uids: list[int], items: list[str]) -> dict[int, dict[bytes, object]]:
        data: dict[int, dict[bytes, object]] = real(uids, items)
        for name in (b"BODY[]", b"BODY[HEADER]"):
            if gone in data and name in data[gone]:
                data[gone][name] = None  # as Dovecot answers for a message expunged under the FETCH
        return data

    monkeypatch.setattr(box.client, "fetch", fetch)
    assert box.fetch("Scheduled", gone) is None and box.fetch("Scheduled", kept) is not None
    assert set(box.fetch_many("Scheduled", [kept, gone])) == {kept}
    assert [info.uid for info in box.headers("Scheduled", [kept, gone])] == [kept]


@pytest.mark.parametrize("fallback", [False, True], ids=["MOVE", "COPY+EXPUNGE"])
def test_what_the_agent_moves_into_scheduled_is_marked_held_and_nothing_else(
    dovecot: Dovecot, imap_user: User, box: Mailbox, fallback: bool
) -> None:
    """agent/reconcile/strangers.py: another agent on the account knows a held message from one she put there."""
    box.force_copy_fallback = fallback
    held, other = box.append("Outbox", message(1)), box.append("Outbox", message(2))
    assert held is not None and other is not None and box.held_folder == "Scheduled"
    placed = box.move_many("Outbox", [held], "Scheduled")[held]
    attention = box.move("Outbox", other, "Needs attention")
    assert placed is not None and attention is not None
    assert box.held_keyword in dovecot.flags(imap_user, "Scheduled", placed)
    assert box.held_keyword.startswith(HELD_KEYWORD) and box.held_keyword != HELD_KEYWORD  # this agent's own
    assert not any(f.startswith("$MentorAgent") for f in dovecot.flags(imap_user, "Needs attention", attention))


@pytest.mark.parametrize("fallback", [False, True], ids=["MOVE", "COPY+EXPUNGE"])
def test_move_many_maps_every_uid_and_skips_the_gone_and_the_deleted(
    dovecot: Dovecot, imap_user: User, box: Mailbox, fallback: bool
) -> None:
    box.force_copy_fallback = fallback
    originals = [message(n) for n in range(12)]
    raws = {box.append("Outbox", raw): raw for raw in originals}
    uids = sorted(uid for uid in raws if uid is not None)
    student_deleted = uids[3]
    box.set_flags("Outbox", student_deleted, ["\\Deleted"])
    gone = uids[7]
    box.delete("Outbox", gone)
    moved = box.move_many("Outbox", [*uids, 99_999], "Sending")  # 99999 never existed
    assert set(moved) == set(uids) - {student_deleted, gone}
    in_sending = dovecot.messages(imap_user, "Sending")
    for source, target in moved.items():
        assert target is not None and in_sending[target] == raws[source], "each UID maps to its own message"
    leftover = {
        f
        for t in moved.values()
        if t is not None
        for f in dovecot.flags(imap_user, "Sending", t)
        if f.startswith(claim_module.CLAIM_KEYWORD)
    }
    assert leftover == set(), "the claim keyword is taken off after the move"
    assert set(dovecot.messages(imap_user, "Outbox")) == {student_deleted}
    assert box.move_many("Outbox", [], "Sending") == {}


def test_two_agents_racing_for_overlapping_batches_each_message_once(
    dovecot: Dovecot, imap: Imap, imap_login: Login, imap_user: User, box: Mailbox
) -> None:
    uids = [uid for uid in (box.append("Outbox", message(n)) for n in range(40)) if uid is not None]
    with Mailbox(imap, imap_login) as other:
        for agent in (box, other):
            agent.uids("Outbox")
        barrier = threading.Barrier(2)
        results: dict[str, dict[int, int | None]] = {}

        def claim(name: str, agent: Mailbox, wanted: list[int]) -> None:
            barrier.wait()
            results[name] = agent.move_many("Outbox", wanted, "Sending")

        threads = [
            threading.Thread(target=claim, args=("a", box, uids[:30])),
            threading.Thread(target=claim, args=("b", other, uids[10:])),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
    assert not set(results["a"]) & set(results["b"]), "no message claimed by both"
    left = set(uids) - set(results["a"]) - set(results["b"])  # where both gave way: free again at once
    assert set(box.move_many("Outbox", sorted(left), "Sending")) == left
    assert len(dovecot.messages(imap_user, "Sending")) == len(uids)
    assert dovecot.messages(imap_user, "Outbox") == {}


def test_an_abandoned_claim_is_freed_after_a_while(
    dovecot: Dovecot, imap_user: User, box: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    uid = box.append("Outbox", message(1))
    assert uid is not None
    box.set_flags("Outbox", uid, [claim_module.CLAIM_KEYWORD])  # an agent died between its STORE and MOVE
    assert box.move_many("Outbox", [uid], "Sending") == {}, "a fresh claim by someone else is respected"
    monkeypatch.setattr(claim_module, "STALE_CLAIM", 0.0)
    assert box.move_many("Outbox", [uid], "Sending") == {}, "the stale claim is removed, not taken over at once"
    moved = box.move_many("Outbox", [uid], "Sending")
    assert list(moved) == [uid]
    assert dovecot.messages(imap_user, "Outbox") == {}


def test_an_agent_restarted_after_its_store_takes_its_own_claim_at_once(
    dovecot: Dovecot, imap: Imap, imap_login: Login, imap_user: User, box: Mailbox
) -> None:
    uid = box.append("Outbox", message(1))
    assert uid is not None
    killed = Mailbox(imap, imap_login, agent_id="laptop1")
    box.set_flags("Outbox", uid, [killed.claim_keyword])  # its STORE landed, then it was killed before MOVE
    assert box.move_many("Outbox", [uid], "Sending") == {}, "another agent respects the fresh claim"
    with Mailbox(imap, imap_login, agent_id="laptop1") as restarted:
        moved = restarted.move_many("Outbox", [uid], "Sending")
    assert list(moved) == [uid]
    assert dovecot.messages(imap_user, "Outbox") == {}


def test_fetch_many_flags_and_delete_many(dovecot: Dovecot, imap_user: User, box: Mailbox) -> None:
    originals = [message(n, body=b"x" * (n * 1000) + b"\r\n") for n in range(150)]  # more than one chunk
    raws = {box.append("Sending", raw): raw for raw in originals}
    uids = sorted(uid for uid in raws if uid is not None)
    assert box.fetch_many("Sending", [*uids, 99_999]) == raws
    assert "\\Seen" not in dovecot.flags(imap_user, "Sending", uids[0]), "fetching does not mark read"
    box.set_flags("Sending", uids[1], ["\\Flagged"])
    assert box.flagged("Sending") == [uids[1]]
    box.replace_flags_many("Sending", uids[:100], ["\\Seen"])
    assert dovecot.flags(imap_user, "Sending", uids[1]) == {"\\Seen"}
    assert "\\Seen" not in dovecot.flags(imap_user, "Sending", uids[120])
    box.delete_many("Sending", uids[::2])
    assert set(dovecot.messages(imap_user, "Sending")) == set(uids[1::2])


def test_uid_sets_and_copyuid_round_trip() -> None:
    assert uidsets.uid_set([7, 1, 2, 3, 9, 10]) == "1:3,7,9:10"
    assert uidsets.uid_set([5]) == "5"
    assert uidsets.uid_set([]) == ""
    assert uidsets.copyuid([b"1700000000 1:3,7 20:23"]) == {1: 20, 2: 21, 3: 22, 7: 23}
    assert uidsets.copyuid([b"1 1:2 5"]) == {}, "mismatched sets are not guessed at"
    assert uidsets.expand(b"3:5,9") == {3, 4, 5, 9}


# -- failures ----------------------------------------------------------------------------------------------
def test_a_wrong_password_is_a_clear_error_without_the_password(dovecot: Dovecot, imap: Imap) -> None:
    secret = "hunter2-very-secret"
    mailbox = Mailbox(imap, Login(imap.username, secret))
    with pytest.raises(MailboxError) as caught:
        mailbox.connect()
    text = str(caught.value)
    assert "refused" in text and imap.username in text
    assert secret not in text and secret not in repr(caught.value)
    assert secret not in repr(Login(imap.username, secret))


def test_nothing_listening_is_a_mailbox_error(dovecot: Dovecot, imap: Imap, imap_login: Login) -> None:
    closed = imap.model_copy(update={"port": 1, "timeout": 1.0})
    started = time.monotonic()
    with pytest.raises(MailboxError, match="cannot connect"):
        Mailbox(closed, imap_login).connect()
    assert time.monotonic() - started < 10


def test_after_a_server_restart_commands_fail_then_connect_works(
    dovecot: Dovecot, imap_user: User, box: Mailbox
) -> None:
    uid = box.append("Outbox", message(1))
    dovecot.restart()
    with pytest.raises(MailboxError):
        box.uids("Outbox")
    with pytest.raises(MailboxError, match="not connected"):
        box.uids("Outbox")
    box.connect()
    assert box.uids("Outbox")[1] == [uid]


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_tls_and_starttls(dovecot: Dovecot, imap_user: User, security: Security) -> None:
    settings = dovecot.settings(imap_user, security=security)
    with Mailbox(settings, Dovecot.login(imap_user), ssl_context=dovecot.ssl_context()) as mailbox:
        assert mailbox.uids("INBOX")[1] == []
    with pytest.raises(MailboxError):  # the system trust store does not know the test CA
        Mailbox(settings, Dovecot.login(imap_user)).connect()


# -- watching ----------------------------------------------------------------------------------------------
def test_watcher_sees_an_append_quickly(
    dovecot: Dovecot, imap: Imap, imap_login: Login, imap_user: User, box: Mailbox
) -> None:
    watcher = Watcher(imap, imap_login, "Outbox")
    try:
        watcher.start()
        assert watcher.wait(0.3) is False
        threading.Timer(0.2, dovecot.append, (imap_user, "Outbox", message(1))).start()
        started = time.monotonic()
        assert watcher.wait(5) is True
        assert time.monotonic() - started < 1.5
        # a change made while nobody was waiting is still reported (IDLE stays open between calls)
        dovecot.append(imap_user, "Outbox", message(2))
        time.sleep(1.2)
        assert watcher.wait(2) is True
    finally:
        watcher.close()


def test_watcher_renews_idle_and_keeps_watching(
    dovecot: Dovecot, imap: Imap, imap_login: Login, imap_user: User, box: Mailbox
) -> None:
    fast = imap.model_copy(update={"idle_renew": 0.3})  # below the settings' floor, for the test only
    watcher = Watcher(fast, imap_login, "Outbox")
    try:
        assert watcher.wait(1.0) is False  # renewed about three times
        threading.Timer(0.2, dovecot.append, (imap_user, "Outbox", message(1))).start()
        assert watcher.wait(5) is True
    finally:
        watcher.close()


@pytest.mark.parametrize("security", ["plain", "tls"])
def test_watcher_sees_a_change_made_while_idle_was_being_renewed(
    dovecot: Dovecot, imap_user: User, imap_login: Login, box: Mailbox, security: str
) -> None:
    # A message that arrives between DONE and the next IDLE is reported right after "+ idling", often in the
    # same packet; imaplib then holds it in its own buffer, where select() on the socket cannot see it.
    watcher = Watcher(
        dovecot.settings(imap_user, security=security),  # type: ignore[arg-type]
        imap_login,
        "Outbox",
        ssl_context=dovecot.ssl_context(),
    )
    try:
        watcher.start()
        assert watcher._client is not None
        for n in range(3):
            watcher._client.idle_done()  # the renewal, taken apart
            dovecot.append(imap_user, "Outbox", message(n))
            time.sleep(0.2)
            watcher._idle()
            started = time.monotonic()
            assert watcher.wait(3) is True, f"round {n}: the change was not reported"
            assert time.monotonic() - started < 1.5
    finally:
        watcher.close()


def test_watcher_polls_without_idle(
    dovecot: Dovecot, imap: Imap, imap_login: Login, imap_user: User, box: Mailbox
) -> None:
    watcher = Watcher(imap, imap_login, "Outbox")
    watcher.use_idle = False
    try:
        assert watcher.wait(0.2) is False
        dovecot.append(imap_user, "Outbox", message(1))
        assert watcher.wait(3) is True
    finally:
        watcher.close()


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_watcher_raises_when_the_server_goes_away(
    dovecot: Dovecot, imap: Imap, imap_login: Login, box: Mailbox, how: str
) -> None:
    watcher = Watcher(imap, imap_login, "Outbox")
    try:
        watcher.start()
        timer = threading.Timer(0.2, dovecot.stop if how == "stop" else dovecot.kill)
        timer.start()
        started = time.monotonic()
        with pytest.raises(MailboxError):
            watcher.wait(10)
        assert time.monotonic() - started < 5
        timer.join()
        with pytest.raises(MailboxError):  # reconnecting fails while the server is down
            watcher.wait(0.1)
    finally:
        watcher.close()
        dovecot.start()
