"""What every mailbox implementation must do, as the reconcile layer relies on it (agent/mail/port.py).

The same assertions run against Dovecot, the demo's pymap server and the in-memory fake (conftest.py).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime, timedelta

import pytest

from agent.mail.claim import CLAIM_KEYWORD
from agent.mail.session import MailboxError, MessageGone
from tests.mailbox_contract.conftest import Contract, ContractMailbox


def message(n: int = 1, body: bytes = b"Hello.\r\n", message_id: str | None = None) -> bytes:
    mid = message_id or f"<c{n}.{time.monotonic_ns()}@student.example.org>"
    return (
        b"From: Student <student@example.org>\r\n"
        b"To: Dr Rivera <rivera@example.org>\r\n"
        + f"Subject: Question {n}\r\nMessage-ID: {mid}\r\n".encode()
        + b"Date: Tue, 24 Nov 2026 09:00:00 +0000\r\n\r\n"
        + body
    )


def appended(box: ContractMailbox, folder: str, raw: bytes, **how: object) -> int:
    uid = box.append(folder, raw, **how)  # type: ignore[arg-type]
    if uid is None:  # no APPENDUID: find it as the reconcile code would
        _, uids = box.uids(folder)
        uid = uids[-1]
    return uid


def in_folder(box: ContractMailbox, folder: str) -> dict[int, bytes]:
    _, uids = box.uids(folder)
    return box.fetch_many(folder, uids)


# -- folders -----------------------------------------------------------------------------------------------
def test_resolving_creates_the_agents_folders_and_is_idempotent(contract: Contract) -> None:
    from agent.config.settings import Folders

    again = contract.box.resolve_folders(Folders())
    assert again == contract.folders
    listed = contract.box.folder_list()
    for name in ("Mentor Outbox", "Scheduled", "Needs attention", "Sending", contract.folders.sent, "INBOX"):
        assert name in listed
    assert contract.box.count("Scheduled") == 0


def test_sent_is_found_by_special_use(contract: Contract) -> None:
    contract.needs("special-use")
    listed = contract.box.folder_list()
    assert "\\sent" in listed[contract.folders.sent]
    drafts = contract.box.special_drafts()
    assert drafts is not None and "\\drafts" in listed[drafts]


def test_an_ordinary_folder_is_not_the_providers_own(contract: Contract) -> None:
    assert contract.box.providers_own(contract.folders.outbox) is None
    assert contract.box.providers_own("No such folder") is None


# -- reading -----------------------------------------------------------------------------------------------
def test_append_gives_growing_uids_never_reused(contract: Contract) -> None:
    box = contract.box
    first = [appended(box, "Scheduled", message(n)) for n in range(3)]
    validity, uids = box.uids("Scheduled")
    assert validity > 0 and uids == first == sorted(first)
    box.delete("Scheduled", first[-1])
    later = appended(box, "Scheduled", message(9))
    assert later > first[-1], "a UID is never given again"
    assert box.uids("Scheduled") == (validity, [*first[:-1], later])
    assert box.count("Scheduled") == 3


def test_headers_in_uid_order_and_the_gone_left_out(contract: Contract) -> None:
    box = contract.box
    raws = [message(n) for n in range(3)]
    when = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    uids = [appended(box, "Scheduled", raw, flags=["\\Seen"], when=when) for raw in raws]
    infos = box.headers("Scheduled", [*reversed(uids), 99_999])
    assert [info.uid for info in infos] == uids
    for info, raw in zip(infos, raws, strict=True):
        assert info.size == len(raw)
        assert "\\Seen" in info.flags
        assert info.headers == raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
        assert info.internaldate == when
    assert box.headers("Scheduled", []) == []


def test_messages_are_their_headers_and_their_whole_text(contract: Contract) -> None:
    box = contract.box
    raws = [message(n, body=b"x" * (n * 700) + b"\r\n.leading dot\r\n") for n in range(3)]
    uids = [appended(box, "Scheduled", raw) for raw in raws]
    found = box.messages("Scheduled", [*reversed(uids), 99_999])
    assert [info for info, _ in found] == box.headers("Scheduled", uids)
    assert [raw for _, raw in found] == raws
    assert "\\Seen" not in box.headers("Scheduled", uids)[0].flags
    assert box.messages("Scheduled", []) == []


def test_fetch_is_byte_for_byte_and_leaves_seen_alone(contract: Contract) -> None:
    box = contract.box
    raw = message(1, body="Liebe Frau Dr. Müller — 日本語\r\n".encode() + b"x" * 1500 + b"\r\n.leading dot\r\n")
    uid = appended(box, "Sending", raw)
    assert box.fetch("Sending", uid) == raw
    assert box.fetch_many("Sending", [uid, uid + 100]) == {uid: raw}
    assert "\\Seen" not in box.headers("Sending", [uid])[0].flags
    assert box.fetch("Sending", uid + 100) is None


def test_find_by_message_id_also_sees_what_another_session_appended(contract: Contract) -> None:
    box = contract.box
    first = appended(box, "Sending", message(1, message_id="<abc.1@student.example.org>"))
    assert box.find_by_message_id("Sending", "<abc.1@student.example.org>") == [first]
    assert box.find_by_message_id("Sending", "<missing@student.example.org>") == []
    with contract.other() as second:
        theirs = appended(second, "Sending", message(2, message_id="<abc.2@student.example.org>"))
    assert box.find_by_message_id("Sending", "<abc.2@student.example.org>") == [theirs]


def test_uids_since_reads_the_internal_date_and_gives_the_validity(contract: Contract) -> None:
    box = contract.box
    old = appended(box, "Sending", message(1), when=datetime(2020, 1, 2, 12, tzinfo=UTC))
    recent = appended(box, "Sending", message(2))
    validity, _ = box.uids("Sending")
    assert box.uids_since("Sending", datetime.now(UTC).date() - timedelta(days=2)) == (validity, [recent])
    assert box.uids_since("Sending", date(2019, 12, 1)) == (validity, [old, recent])


def test_flagged_is_flagged_and_not_deleted(contract: Contract) -> None:
    box = contract.box
    flagged, deleted, plain = (appended(box, "Scheduled", message(n)) for n in range(3))
    box.set_flags("Scheduled", flagged, ["\\Flagged"])
    box.set_flags("Scheduled", deleted, ["\\Flagged", "\\Deleted"])
    assert box.flagged("Scheduled") == [flagged]
    assert plain not in box.flagged("Scheduled")


def test_modseqs_move_with_a_flag_change_or_are_none_without_condstore(contract: Contract) -> None:
    box = contract.box
    uid = appended(box, "Scheduled", message(1))
    before = box.modseqs("Scheduled", [uid])
    if before is None:  # no CONDSTORE (the fake, as Microsoft 365): never a guess
        assert box.modseqs("Scheduled", [uid]) is None
        return
    box.set_flags("Scheduled", uid, ["\\Flagged"])
    box.remove_flags("Scheduled", uid, ["\\Flagged"])
    after = box.modseqs("Scheduled", [uid])
    assert after is not None and after[uid] > before[uid]
    assert box.modseqs("Scheduled", [uid + 1000]) == {}


# -- changing ----------------------------------------------------------------------------------------------
def test_move_puts_exactly_one_copy_in_the_target(contract: Contract) -> None:
    box = contract.box
    raw = message(1)
    uid = appended(box, "Mentor Outbox", raw)
    new = box.move("Mentor Outbox", uid, "Sending")
    assert new is not None
    assert in_folder(box, "Sending") == {new: raw}
    assert in_folder(box, "Mentor Outbox") == {}
    with pytest.raises(MessageGone):
        box.move("Mentor Outbox", uid, "Sending")


def test_move_many_maps_each_uid_to_its_own_message_and_skips_the_gone_and_deleted(contract: Contract) -> None:
    box = contract.box
    raws = {appended(box, "Mentor Outbox", raw): raw for raw in (message(n) for n in range(8))}
    uids = sorted(raws)
    students_deleted, gone = uids[2], uids[5]
    box.set_flags("Mentor Outbox", students_deleted, ["\\Deleted"])  # the student's, not ours to expunge
    box.delete("Mentor Outbox", gone)
    moved = box.move_many("Mentor Outbox", [*uids, 99_999], "Sending")
    assert set(moved) == set(uids) - {students_deleted, gone}
    in_sending = in_folder(box, "Sending")
    for source, target in moved.items():
        assert target is not None and in_sending[target] == raws[source]
    for info in box.headers("Sending", list(in_sending)):
        assert not any(f.startswith(CLAIM_KEYWORD) for f in info.flags), "no claim keyword left behind"
    _, left = box.uids("Mentor Outbox")
    assert left == [students_deleted]
    assert box.move_many("Mentor Outbox", [], "Sending") == {}


def test_a_message_another_agent_claimed_is_left_to_it(contract: Contract) -> None:
    contract.needs("claims")
    box = contract.box
    uid = appended(box, "Mentor Outbox", message(1))
    box.set_flags("Mentor Outbox", uid, [CLAIM_KEYWORD + "another"])  # its STORE landed, its MOVE is coming
    assert box.move_many("Mentor Outbox", [uid], "Sending") == {}
    with pytest.raises(MessageGone):
        box.move("Mentor Outbox", uid, "Sending")
    assert box.move_many("Sending", [], "Sent") == {}


def test_two_agents_racing_move_each_message_once(contract: Contract) -> None:
    box = contract.box
    uids = [appended(box, "Mentor Outbox", message(n)) for n in range(20)]
    with contract.other() as second:
        for agent in (box, second):
            agent.uids("Mentor Outbox")
        barrier = threading.Barrier(2)
        results: dict[str, dict[int, int | None]] = {}

        def claim(name: str, agent: ContractMailbox, wanted: list[int]) -> None:
            barrier.wait()
            results[name] = agent.move_many("Mentor Outbox", wanted, "Sending")

        threads = [
            threading.Thread(target=claim, args=("a", box, uids[:15])),
            threading.Thread(target=claim, args=("b", second, uids[5:])),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
    assert not set(results["a"]) & set(results["b"]), "no message moved by both"
    left = set(uids) - set(results["a"]) - set(results["b"])  # where both gave way: free again at once
    assert set(box.move_many("Mentor Outbox", sorted(left), "Sending")) == left
    assert len(in_folder(box, "Sending")) == len(uids)
    assert in_folder(box, "Mentor Outbox") == {}


def test_delete_and_discard_remove_exactly_those(contract: Contract) -> None:
    box = contract.box
    keep, drop, students = (appended(box, "Sending", message(n)) for n in range(3))
    box.set_flags("Sending", students, ["\\Deleted"])
    box.delete("Sending", drop)
    _, left = box.uids("Sending")
    assert left == [keep, students], "the student's other \\Deleted mail stays"
    box.discard_many("Sending", [keep])
    _, left = box.uids("Sending")
    assert left == [students]


def test_flags_are_added_or_replaced(contract: Contract) -> None:
    box = contract.box
    one, two = (appended(box, "Scheduled", message(n), flags=["\\Flagged"]) for n in range(2))
    box.set_flags("Scheduled", one, ["\\Seen", "\\Answered"])
    assert {"\\Seen", "\\Answered", "\\Flagged"} <= box.headers("Scheduled", [one])[0].flags
    box.replace_flags_many("Scheduled", [one, two], ["\\Seen"])
    assert [set(i.flags) - {"\\Recent"} for i in box.headers("Scheduled", [one, two])] == [{"\\Seen"}, {"\\Seen"}]
    box.remove_flags("Scheduled", one, ["\\Seen"])
    assert "\\Seen" not in box.headers("Scheduled", [one])[0].flags


def test_a_custom_keyword_is_kept(contract: Contract) -> None:
    contract.needs("keywords")
    box = contract.box
    uid = appended(box, "Scheduled", message(1))
    box.set_flags("Scheduled", uid, ["$MentorAgent"])
    assert "$MentorAgent" in box.headers("Scheduled", [uid])[0].flags
    box.remove_flags("Scheduled", uid, ["$MentorAgent"])
    assert "$MentorAgent" not in box.headers("Scheduled", [uid])[0].flags


def test_a_folder_that_does_not_exist_is_a_mailbox_error(contract: Contract) -> None:
    with pytest.raises(MailboxError):
        contract.box.uids("No such folder")
    with pytest.raises(MailboxError):
        contract.box.append("No such folder", message(1))
