"""A held message she edits in Scheduled: her mail program saves the edit as a new copy with the same Message-ID.

It goes as edited, to whom the edit names. The same mentor: at its time, to the edit's recipients (a Cc she added
gets it too). Another mentor, no mentor, or a mistake in the edit: it is no longer the message the plan was made for,
so it goes back to the Outbox and is taken in afresh there, paced by the rules of whom it is to now. It never goes to
the old recipients with the new ones in its header. (On the in-memory mailbox and the real aiosmtpd server.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from agent.mail.session import MailboxError
from agent.reconcile.intake import take_in_outbox
from agent.reconcile.recovery import recover
from agent.rules.policy import PolicyBook, load_policies
from agent.store.ledger import CANCELLED, CLAIMED, DONE, SCHEDULED
from tests.agent_process import MENTOR, OUTBOX, policy_text
from tests.fakes.memory_mailbox import MemoryMailbox
from tests.servers.smtp import SmtpServer
from tests.test_in_doubt_counts_on_fake import START
from tests.test_passes_on_fake import Pass, mail
from tests.test_waiting_behind_on_fake import KIM, firsts_gone, two_mentors

FRIEND = "friend@elsewhere.example.org"


def held_second(made: Pass, clock: list[datetime]) -> bytes:
    """Dr. Rivera (one a day) got "first"; "second" waits in Scheduled for tomorrow. Its text there."""
    made.server.put(OUTBOX, mail("first"))
    made.run()
    clock[0] = START + timedelta(minutes=10)
    made.server.put(OUTBOX, mail("second"))
    made.run()
    made.run()
    ((_, raw),) = made.server.messages("Scheduled").items()
    assert made.received() == ["first"]
    return raw


def edited(made: Pass, raw: bytes, old: bytes, new: bytes, folder: str = "Scheduled") -> None:
    """Her mail program saves the edit: the old copy expunged, the new one appended to ``folder``, the same
    Message-ID (``folder`` the Outbox: the agent's move back done, then a kill before the ledger was told)."""
    ((uid, _),) = made.server.messages("Scheduled").items()
    MemoryMailbox(made.server, agent_id="student").delete("Scheduled", uid)
    assert old in raw
    made.server.put(folder, raw.replace(old, new))


def passes(made: Pass, clock: list[datetime], at: timedelta) -> None:
    clock[0] = START + at
    for _ in range(3):
        made.run()


@contextmanager
def edited_held(
    tmp_path: Path, smtp_server: SmtpServer, old: bytes, new: bytes, folder: str = "Scheduled"
) -> Iterator[Pass]:
    """Dr. Rivera's "second", held, then edited (``old`` made ``new``; Dr. Kim's rules: an hour's gap); the passes of
    that day and of two days later."""
    made, clock = two_mentors(tmp_path, smtp_server, policy_text(min_gap="1h"))
    try:
        raw = held_second(made, clock)
        edited(made, raw, old, new, folder)
        passes(made, clock, timedelta(minutes=20))
        passes(made, clock, timedelta(days=2))
        yield made
    finally:
        made.world.ledger.close()


def readdressed(
    tmp_path: Path, smtp_server: SmtpServer, to: str, folder: str = "Scheduled"
) -> AbstractContextManager[Pass]:
    """:func:`edited_held`, the edit to be to ``to``."""
    return edited_held(tmp_path, smtp_server, f"To: {MENTOR}\r\n".encode(), f"To: {to}\r\n".encode(), folder)


def test_a_held_message_she_edits_in_scheduled_goes_as_edited_at_its_time(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """Found by the third hostile round of issue 21: the check that keeps two messages sharing a Message-ID apart had
    made this "taken out of Scheduled by the student": never sent, left in Scheduled, nobody told."""
    made, clock = two_mentors(tmp_path, smtp_server, policy_text(max_per_day=1))
    try:
        raw = held_second(made, clock)
        edited(made, raw, b"Hello.", b"Hello, typo fixed.")
        passes(made, clock, timedelta(minutes=20))
        (row,) = made.world.ledger.in_states(SCHEDULED)
        assert row.subject == "second", "still held, not cancelled"
        passes(made, clock, timedelta(days=1, hours=2))
        assert made.received() == ["first", "second"]
        assert b"typo fixed" in smtp_server.messages[-1].content
    finally:
        made.world.ledger.close()


def test_a_cc_she_adds_to_a_held_message_gets_it_too_at_its_time(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """Left by the fourth hostile round of issue 21, as all below: the edit went to the row's old recipients."""
    made, clock = two_mentors(tmp_path, smtp_server, policy_text(max_per_day=1))
    try:
        raw = held_second(made, clock)
        edited(made, raw, b"Subject: second\r\n", f"Subject: second, with Cc\r\nCc: {FRIEND}\r\n".encode())
        passes(made, clock, timedelta(minutes=20))
        (row,) = made.world.ledger.in_states(SCHEDULED)
        assert row.subject == "second, with Cc", "still held for its time, as edited"
        assert made.received() == ["first"], "the same mentor: it waits for its time"
        passes(made, clock, timedelta(days=1, hours=2))
        assert made.received() == ["first", "second, with Cc"]
        assert sorted(smtp_server.messages[-1].rcpt_tos) == sorted([MENTOR, FRIEND])
    finally:
        made.world.ledger.close()


def test_a_held_message_she_readdresses_to_another_mentor_never_goes_to_the_first(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    with readdressed(tmp_path, smtp_server, KIM) as made:
        assert made.received() == ["first", "second"], "Dr. Kim's rules allow it at once"
        assert [m.rcpt_tos for m in smtp_server.messages] == [(MENTOR,), (KIM,)], "never to Dr. Rivera"
        assert made.subjects("Scheduled") == [] and made.subjects(OUTBOX) == []
        states = sorted(row.state for row in made.world.ledger.in_states(DONE, SCHEDULED, CANCELLED))
        assert states == [DONE, DONE], "the edit is one message, sent once"


def test_a_held_message_she_readdresses_to_a_friend_goes_to_the_friend_only(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    with readdressed(tmp_path, smtp_server, FRIEND) as made:
        assert made.received() == ["first", "second"]
        assert [m.rcpt_tos for m in smtp_server.messages] == [(MENTOR,), (FRIEND,)], "never to Dr. Rivera as well"


def test_a_held_message_she_readdresses_to_two_mentors_is_put_in_needs_attention(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    with readdressed(tmp_path, smtp_server, f"{MENTOR}, {KIM}") as made:
        assert made.received() == ["first"], "to two mentors at once: not sent, as from the Outbox"
        assert made.subjects("Needs attention") == ["second"]
        assert any("second" in subject for subject in made.subjects("INBOX")), "and she is told"


def test_killed_after_the_edit_went_back_to_the_outbox_it_still_goes_once_to_whom_it_names(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """The move back to the Outbox done, the ledger not told (a kill): the edit is taken in there as a message of its
    own and the old row is cancelled as taken out of Scheduled; nothing goes to Dr. Rivera, nothing twice."""
    with readdressed(tmp_path, smtp_server, KIM, folder=OUTBOX) as made:
        assert [m.rcpt_tos for m in smtp_server.messages] == [(MENTOR,), (KIM,)]
        assert made.subjects("Scheduled") == [] and made.subjects(OUTBOX) == []


def test_an_edit_of_one_of_two_held_messages_sharing_a_message_id_goes_as_edited_and_never_swaps(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """Left by the fourth hostile round of issue 21: two held messages share a Message-ID (issue 20); she edits one.
    Which copy was whose could not be told, so the edited one was recorded as cancelled by her and its edit stayed
    in Scheduled, never sent, nobody told. While the other's copy is where its row says, the new copy is the edit."""
    made, clock = two_mentors(tmp_path, smtp_server, policy_text(max_per_day=1))
    try:
        same = firsts_gone(made, clock)
        made.server.put(OUTBOX, mail("for RIVERA only", message_id=same))
        made.server.put(OUTBOX, mail("for KIM only", to=KIM, message_id=same))
        made.run()
        made.run()
        held = {raw.split(b"Subject: ")[1].split(b"\r\n")[0]: raw for raw in made.server.messages("Scheduled").values()}
        assert sorted(held) == [b"for KIM only", b"for RIVERA only"]
        uid = next(u for u, raw in made.server.messages("Scheduled").items() if b"for KIM only" in raw)
        MemoryMailbox(made.server, agent_id="student").delete("Scheduled", uid)
        made.server.put("Scheduled", held[b"for KIM only"].replace(b"Hello.", b"Hello, Dr. Kim, edited."))
        passes(made, clock, timedelta(minutes=20))
        assert sorted(row.subject for row in made.world.ledger.in_states(SCHEDULED)) == [
            "for KIM only",
            "for RIVERA only",
        ]
        passes(made, clock, timedelta(days=1, hours=2))
        passes(made, clock, timedelta(days=2, hours=2))
        got = {(m.rcpt_tos, b"edited" in m.content) for m in smtp_server.messages if b"only" in m.content}
        assert got == {((KIM,), True), ((MENTOR,), False)}, "each to its own mentor, the edit as edited"
        assert made.subjects("Scheduled") == []
    finally:
        made.world.ledger.close()


# -- the third hostile round (on the change above; each failed before its fix) ----------------------------------------


def test_an_edit_made_while_the_daemon_was_down_after_its_claim_never_goes_to_the_old_recipients(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """Killed after the claim marked it and before its move to Sending; she re-addresses it meanwhile. recover() took
    the copy with its Message-ID for the row's and it went to Dr. Rivera with her friend in its header."""
    made, clock = two_mentors(tmp_path, smtp_server, policy_text(min_gap="1h"))
    try:
        raw = held_second(made, clock)
        clock[0] = START + timedelta(days=1, hours=2)
        made.server.fail("move_many", "Scheduled")  # the kill: the move to Sending never happens
        with contextlib.suppress(MailboxError):
            made.run()
        assert made.world.ledger.in_states(CLAIMED)
        edited(made, raw, f"To: {MENTOR}\r\n".encode(), f"To: {FRIEND}\r\n".encode())
        made.box.connect()
        asyncio.run(recover(made.world))
        passes(made, clock, timedelta(days=1, hours=3))
        passes(made, clock, timedelta(days=3))
        assert [m.rcpt_tos for m in smtp_server.messages] == [(MENTOR,), (FRIEND,)], "never to Dr. Rivera"
    finally:
        made.world.ledger.close()


def test_an_edit_renumbered_into_the_old_copys_uid_never_goes_to_the_old_recipients(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """She re-addresses "second" to a friend; the server renumbers Scheduled before the daemon looks, and the edit
    gets the UID the old copy had: nothing looked gone, and it went to Dr. Rivera with her friend in its header."""
    made, clock = two_mentors(tmp_path, smtp_server, policy_text(min_gap="1h"))
    try:
        raw = held_second(made, clock)
        edited(made, raw, f"To: {MENTOR}\r\n".encode(), f"To: {FRIEND}\r\n".encode())
        made.server.renumber("Scheduled")
        passes(made, clock, timedelta(minutes=20))
        passes(made, clock, timedelta(days=2))
        assert [m.rcpt_tos for m in smtp_server.messages] == [(MENTOR,), (FRIEND,)], "never to Dr. Rivera"
    finally:
        made.world.ledger.close()


def test_a_held_digest_member_she_makes_a_reply_goes_alone(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """In-Reply-To and References are not in what a message's content is known by: the edit was taken for the same
    message and went inside a digest; a reply in her thread never does (README)."""
    made, clock = two_mentors(tmp_path, smtp_server, policy_text(min_gap="1h"))
    (made.settings.policies_dir / "rivera.toml").write_text(policy_text(max_per_day=1, over_limit="batch"))
    made.world.book = PolicyBook(load_policies(made.settings.policies_dir))
    try:
        made.server.put(OUTBOX, mail("first"))
        made.run()
        clock[0] = START + timedelta(minutes=10)
        for subject in ("second", "third"):
            made.server.put(OUTBOX, mail(subject))
        made.run()
        made.run()
        thread = b"<thread@hospital.example.org>"
        raw = next(r for r in made.server.messages("Scheduled").values() if b"Subject: second\r\n" in r)
        uid = next(u for u, r in made.server.messages("Scheduled").items() if r == raw)
        MemoryMailbox(made.server, agent_id="student").delete("Scheduled", uid)
        made.server.put(
            "Scheduled", raw.replace(b"Subject: second\r\n", b"Subject: second\r\nIn-Reply-To: %s\r\n" % thread)
        )
        passes(made, clock, timedelta(minutes=20))
        for day in (1, 2, 3):
            passes(made, clock, timedelta(days=day, hours=2))
        assert sorted(made.received()) == ["first", "second", "third"], "three e-mails: the reply alone, no digest"
    finally:
        made.world.ledger.close()


@pytest.mark.parametrize("tag", ["[agenda]", "[meeting]"])
def test_a_tag_she_adds_in_an_edit_is_acted_on_as_from_the_outbox(
    tmp_path: Path, smtp_server: SmtpServer, tag: str
) -> None:
    """An [agenda] tag for a mentor with no meeting windows is refused from the Outbox, a [meeting] tag makes a meeting
    request: added in an edit, the tag went to Dr. Rivera in the subject."""
    with edited_held(tmp_path, smtp_server, b"Subject: second\r\n", f"Subject: {tag} second\r\n".encode()) as made:
        assert not [s for s in made.received() if tag in s], made.received()
        assert not made.world.ledger.in_states(SCHEDULED), "not held as the message it was"


@pytest.mark.parametrize("how", ["expunged, seen gone, then the edit saved", "marked deleted, never expunged"])
def test_an_edit_saved_after_the_old_copy_is_gone_or_marked_deleted_still_goes(
    tmp_path: Path, smtp_server: SmtpServer, how: str
) -> None:
    """Her program removes the old copy first and a pass sees it gone (the row is cancelled), or only marks it
    \\Deleted (gone at its claim): the edit stayed in Scheduled, never sent, nobody told."""
    made, clock = two_mentors(tmp_path, smtp_server, policy_text(min_gap="1h"))
    student = MemoryMailbox(made.server, agent_id="student")
    try:
        raw = held_second(made, clock)
        ((uid, _),) = made.server.messages("Scheduled").items()
        new = raw.replace(b"Subject: second\r\n", b"Subject: second, edited\r\n")
        if how.startswith("expunged"):
            student.delete("Scheduled", uid)
            passes(made, clock, timedelta(minutes=15))
            made.server.put("Scheduled", new)
        else:
            made.server.put("Scheduled", new)
            student.set_flags("Scheduled", uid, ["\\Deleted"])
        passes(made, clock, timedelta(minutes=20))
        passes(made, clock, timedelta(days=2))
        assert made.received() == ["first", "second, edited"]
        assert [m.rcpt_tos for m in smtp_server.messages] == [(MENTOR,), (MENTOR,)]
    finally:
        made.world.ledger.close()


def test_an_edit_saved_while_its_old_copy_went_is_not_sent_and_she_is_told(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """The third hostile round: her program appended the edit (to a friend), the message fell due before it expunged
    the old copy. The old text went as planned; the edit stayed in Scheduled, never sent, nobody told."""
    made, clock = two_mentors(tmp_path, smtp_server, policy_text(min_gap="1h"))
    try:
        raw = held_second(made, clock)
        ((uid, _),) = made.server.messages("Scheduled").items()
        made.server.put("Scheduled", raw.replace(f"To: {MENTOR}\r\n".encode(), f"To: {FRIEND}\r\n".encode()))
        clock[0] = START + timedelta(days=1, hours=2)
        made.run()
        made.run()
        with contextlib.suppress(KeyError):  # the old copy went: nothing left to expunge
            MemoryMailbox(made.server, agent_id="student").delete("Scheduled", uid)
        passes(made, clock, timedelta(days=3))
        assert [m.rcpt_tos for m in smtp_server.messages] == [(MENTOR,), (MENTOR,)], "the old text, as planned, once"
        assert made.subjects("Scheduled") == [] and made.subjects("Needs attention") == ["second"]
        assert any(subject.startswith("[mentor-agent] Not sent: a copy of") for subject in made.subjects("INBOX"))
    finally:
        made.world.ledger.close()


# -- the fourth hostile round ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cancelled_at", ["2026-01-01T00:00:00+00:00", "2099-01-01T00:00:00+00:00"])
def test_a_copy_of_a_message_she_cancelled_days_ago_is_not_sent_and_she_is_told(
    tmp_path: Path, smtp_server: SmtpServer, cancelled_at: str
) -> None:
    """She deleted a held message for good; days later her phone syncs an old draft of it into Scheduled. It was
    taken for an edit and sent. A copy within minutes of the cancel is her edit (or her undoing it); later, not;
    nor when the cancel's time is ahead of the clock (the machine's clock was ahead then, fifth round)."""
    made, clock = two_mentors(tmp_path, smtp_server, policy_text(min_gap="1h"))
    try:
        raw = held_second(made, clock)
        ((uid, _),) = made.server.messages("Scheduled").items()
        MemoryMailbox(made.server, agent_id="student").delete("Scheduled", uid)
        passes(made, clock, timedelta(minutes=15))
        assert made.world.ledger.in_states(CANCELLED)
        with made.world.ledger.db as db:  # the cancel, long ago (or ahead) by the ledger's own clock
            db.execute("UPDATE log SET at = ? WHERE event = 'cancelled'", (cancelled_at,))
        made.server.put("Scheduled", raw.replace(b"Hello.", b"Hello (a draft from the phone)."))
        passes(made, clock, timedelta(days=3))
        passes(made, clock, timedelta(days=5))
        assert made.received() == ["first"], "a message she deleted for good was sent"
        assert made.subjects("Needs attention") == ["second"] and made.subjects("Scheduled") == []
        assert any(subject.startswith("[mentor-agent] Not sent: a copy of") for subject in made.subjects("INBOX"))
    finally:
        made.world.ledger.close()


@pytest.mark.parametrize("kept", [True, False], ids=["uidvalidity kept", "after an upgrade"])
def test_a_renumbering_of_scheduled_never_sends_one_held_message_for_another_nor_loses_one(
    tmp_path: Path, smtp_server: SmtpServer, kept: bool
) -> None:
    """A, B and C held; she deletes A; the server renumbers Scheduled (B takes A's old UID, C B's). C's row was
    recorded as taken out by her, B's copy was claimed for C and left in Sending, never sent. Also on the first look
    after an upgrade, when no UIDVALIDITY was kept (fifth round)."""
    made, clock = two_mentors(tmp_path, smtp_server, policy_text(min_gap="1h"))
    try:
        made.server.put(OUTBOX, mail("first"))
        made.run()
        clock[0] = START + timedelta(minutes=10)
        for subject in ("A", "B", "C"):
            made.server.put(OUTBOX, mail(subject))
        made.run()
        made.run()
        if not kept:
            with made.world.ledger.db as db:
                db.execute("DELETE FROM meta WHERE key LIKE 'uidvalidity%'")
        uid = next(u for u, r in made.server.messages("Scheduled").items() if b"Subject: A\r\n" in r)
        MemoryMailbox(made.server, agent_id="student").delete("Scheduled", uid)
        made.server.renumber("Scheduled")
        for day in range(1, 5):  # Dr. Rivera: one a day
            passes(made, clock, timedelta(days=day, hours=2))
        assert made.received() == ["first", "B", "C"]
        assert made.subjects("Scheduled") == [] and made.server.messages("Sending") == {}
        cancelled = [row.subject for row in made.world.ledger.in_states(CANCELLED)]
        assert cancelled == ["A"], "only the one she deleted"
    finally:
        made.world.ledger.close()


def test_two_held_messages_both_edited_then_renumbered_both_go_as_edited(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """Fifth round: both held messages edited, then a renumbering, then their due pass: the rows not found again
    (UID 0) were one entry of the folder's UID map, so one was claimed as gone and recorded as cancelled by her."""
    made, clock = two_mentors(tmp_path, smtp_server, policy_text(max_per_day=1))
    try:
        made.server.put(OUTBOX, mail("first"))
        made.server.put(OUTBOX, mail("kim first", to=KIM))
        made.run()
        clock[0] = START + timedelta(minutes=10)
        made.server.put(OUTBOX, mail("second"))
        made.server.put(OUTBOX, mail("kim second", to=KIM))
        made.run()
        made.run()
        student = MemoryMailbox(made.server, agent_id="student")
        for uid, raw in dict(made.server.messages("Scheduled")).items():
            student.delete("Scheduled", uid)
            made.server.put("Scheduled", raw.replace(b"Hello.", b"Hello, edited."))
        made.server.renumber("Scheduled")
        clock[0] = START + timedelta(days=1, hours=2)
        made.run()  # the pass they are due in
        passes(made, clock, timedelta(days=1, hours=2, minutes=5))
        passes(made, clock, timedelta(days=3))
        assert not list(made.world.ledger.db.execute("SELECT 1 FROM log WHERE event = 'cancelled'")), (
            "she cancelled none"
        )
        assert sorted(made.received()) == ["first", "kim first", "kim second", "second"]
        assert all(b"edited" in m.content for m in smtp_server.messages if b"second" in m.content)
    finally:
        made.world.ledger.close()


def test_an_outbox_renumbered_after_a_kill_strands_nothing_in_sending(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """Fifth round: two messages taken in, the daemon killed before the claim; she takes one back and drops another;
    the server renumbers the Outbox. The claim moved by stale UIDs: the new one sat in Sending, untold, for good."""
    made, clock = two_mentors(tmp_path, smtp_server, policy_text(max_per_day=1))
    try:
        made.server.put(OUTBOX, mail("to rivera"))
        made.server.put(OUTBOX, mail("to kim", to=KIM))
        asyncio.run(take_in_outbox(made.world))
        uid = next(u for u, r in made.server.messages(OUTBOX).items() if b"to rivera" in r)
        MemoryMailbox(made.server, agent_id="student").delete(OUTBOX, uid)
        made.server.put(OUTBOX, mail("new one to a friend", to=FRIEND))
        made.server.renumber(OUTBOX)
        asyncio.run(recover(made.world))
        passes(made, clock, timedelta(minutes=5))
        passes(made, clock, timedelta(days=1, hours=2))
        assert sorted(made.received()) == ["new one to a friend", "to kim"]
        assert made.server.messages("Sending") == {} and made.subjects(OUTBOX) == []
    finally:
        made.world.ledger.close()
