"""A held message she edits in Scheduled: her mail program saves the edit as a new copy with the same Message-ID.

It goes as edited, to whom the edit names. The same mentor: at its time, to the edit's recipients (a Cc she added
gets it too). Another mentor, no mentor, or a mistake in the edit: it is no longer the message the plan was made for,
so it goes back to the Outbox and is taken in afresh there, paced by the rules of whom it is to now. It never goes to
the old recipients with the new ones in its header. (On the in-memory mailbox and the real aiosmtpd server.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from agent.store.ledger import CANCELLED, DONE, SCHEDULED
from tests.agent_process import MENTOR, OUTBOX, policy_text
from tests.fakes.memory_mailbox import MemoryMailbox
from tests.servers.smtp import SmtpServer
from tests.test_in_doubt_counts_on_fake import START
from tests.test_passes_on_fake import Pass, mail
from tests.test_waiting_behind_on_fake import KIM, two_mentors

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
def readdressed(tmp_path: Path, smtp_server: SmtpServer, to: str, folder: str = "Scheduled") -> Iterator[Pass]:
    """Dr. Rivera's "second", held, then edited to be to ``to`` (Dr. Kim's rules: an hour's gap); the passes of that
    day and of two days later."""
    made, clock = two_mentors(tmp_path, smtp_server, policy_text(min_gap="1h"))
    try:
        raw = held_second(made, clock)
        edited(made, raw, f"To: {MENTOR}\r\n".encode(), f"To: {to}\r\n".encode(), folder)
        passes(made, clock, timedelta(minutes=20))
        passes(made, clock, timedelta(days=2))
        yield made
    finally:
        made.world.ledger.close()


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
        made.server.put(OUTBOX, mail("rivera first"))
        made.server.put(OUTBOX, mail("kim first", to=KIM))
        made.run()
        clock[0] = START + timedelta(minutes=10)
        same = "<same@med.example.edu>"
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
