"""Mail in Scheduled that the agent did not put there (agent/reconcile/strangers.py): left where it is, never sent
from there, and she is told once; what another agent on the account holds is not hers to be told of. Pass by
pass, in memory."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agent.mail.port import HELD_KEYWORD
from agent.mail.session import MailboxError
from agent.reconcile import strangers
from agent.reconcile.intake import take_in_outbox
from agent.rules.envelope import parse_envelope
from agent.store.ledger import SCHEDULED as SCHEDULED_STATE
from tests.agent_process import OUTBOX, policy_text
from tests.fakes.memory_mailbox import MemoryServer
from tests.servers.smtp import SmtpServer
from tests.test_passes_on_fake import SENT, Pass, mail, one_a_day  # noqa: F401  (the fixture)

SCHEDULED = "Scheduled"


@contextmanager
def _two_agents(tmp_path: Path, smtp: SmtpServer, other_per_day: int = 1) -> Iterator[tuple[MemoryServer, Pass, Pass]]:
    """Two agents on one account: the laptop's (one a day) and the server's (``other_per_day``)."""
    server = MemoryServer(sent=SENT)
    made: list[Pass] = []
    try:
        for name, per_day in (("laptop", 1), ("server", other_per_day)):
            (tmp_path / name).mkdir()
            made.append(Pass(tmp_path / name, smtp, policy_text(max_per_day=per_day), server=server, agent_id=name))
        yield server, made[0], made[1]
    finally:
        for one in made:
            one.world.ledger.close()


def told(one: Pass) -> list[str]:
    return [s for s in one.subjects("INBOX") if "will not go from" in s.lower()]


def test_a_message_she_put_in_scheduled_herself_is_told_once_and_goes_once_she_moves_it(one_a_day: Pass) -> None:  # noqa: F811
    """Found in review: it waited there for ever, unsent and untold (she took Scheduled for "send later")."""
    uid = one_a_day.server.put(SCHEDULED, mail("Put there by hand"))
    for _ in range(3):
        one_a_day.run()
    assert one_a_day.received() == [] and one_a_day.subjects(SCHEDULED) == ["Put there by hand"]
    assert told(one_a_day) == ["[mentor-agent] Will not go from Scheduled: Put there by hand"]
    notice = next(m for m in one_a_day.server.messages("INBOX").values() if b"Will not go" in m)
    assert b"move it to Mentor Outbox" in notice.replace(b"\r\n ", b" ")
    one_a_day.box.move(SCHEDULED, uid, OUTBOX)  # as told
    one_a_day.run()
    one_a_day.run()
    assert one_a_day.received() == ["Put there by hand"] and len(told(one_a_day)) == 1


def test_an_edit_of_a_held_message_saved_as_a_new_one_is_told(one_a_day: Pass) -> None:  # noqa: F811
    """An older open item: her program saved the edit under a new Message-ID and removed the held copy; the held one
    was cancelled (taken out of Scheduled) and the edit stayed there, never sent, untold."""
    one_a_day.server.put(OUTBOX, mail("first"))
    one_a_day.run()
    one_a_day.server.put(OUTBOX, mail("Question"))
    one_a_day.run()
    [(uid, _)] = one_a_day.server.messages(SCHEDULED).items()
    one_a_day.box.delete(SCHEDULED, uid)
    one_a_day.server.put(SCHEDULED, mail("Question (edited)"))
    for _ in range(3):
        one_a_day.run()
    assert one_a_day.received() == ["first"]
    assert told(one_a_day) == ["[mentor-agent] Will not go from Scheduled: Question (edited)"]


def test_a_message_in_doubt_dragged_from_needs_attention_to_scheduled_is_told(one_a_day: Pass) -> None:  # noqa: F811
    one_a_day.server.put(OUTBOX, mail("In doubt"))
    one_a_day.smtp.drop_after_data()
    one_a_day.run()
    assert one_a_day.subjects("Needs attention") == ["In doubt"]
    [(uid, _)] = one_a_day.server.messages("Needs attention").items()
    one_a_day.box.move("Needs attention", uid, SCHEDULED)
    for _ in range(3):
        one_a_day.run()
    assert one_a_day.received() == ["In doubt"], "once, the try in doubt"
    assert told(one_a_day) == ["[mentor-agent] Will not go from Scheduled: In doubt"]


def test_many_at_once_are_one_notice_naming_the_first_and_counting_the_rest(one_a_day: Pass) -> None:  # noqa: F811
    for n in range(8):
        one_a_day.server.put(SCHEDULED, mail(f"old {n}"))
    one_a_day.run()
    one_a_day.server.put(SCHEDULED, mail("one more"))
    one_a_day.run()
    one_a_day.run()
    assert told(one_a_day) == [
        "[mentor-agent] 8 messages will not go from Scheduled",
        "[mentor-agent] Will not go from Scheduled: one more",
    ]
    first = next(m for m in one_a_day.server.messages("INBOX").values() if b"8 messages" in m)
    assert b"and 3 more are" in first.replace(b"\r\n ", b" ")


def test_what_another_agent_on_the_account_holds_is_left_alone_and_told_as_its_own(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two agents, one account: what the laptop's agent holds in Scheduled is no stranger to the other one's, which
    leaves it there and tells her once that another mentor-agent holds it (second hostile round: a held message of
    an install whose records are gone was never sent and never told)."""
    with _two_agents(tmp_path, smtp_server) as (server, laptop, other):
        server.put(OUTBOX, mail("first"))
        laptop.run()
        server.put(OUTBOX, mail("held by the laptop"))
        laptop.run()
        assert laptop.subjects(SCHEDULED) == ["held by the laptop"]
        [(uid, _)] = server.messages(SCHEDULED).items()
        assert server.flags(SCHEDULED, uid) == {HELD_KEYWORD + "laptop"}
        other.run()
        assert [s for s in other.subjects("INBOX") if "another" in s] == [], "seen a while first (a mark may be stale)"
        monkeypatch.setattr(strangers, "ANOTHER_WAIT", 0.0)
        for _ in range(3):
            other.run()
        assert told(other) == [] and other.subjects(SCHEDULED) == ["held by the laptop"]
        assert [s for s in other.subjects("INBOX") if "another mentor-agent" in s] == [
            "[mentor-agent] Held by another mentor-agent: held by the laptop"
        ]
        assert [parse_envelope(r.content).subject for r in smtp_server.messages] == ["first"]


def test_an_edit_the_agent_took_for_its_held_message_is_marked_as_held(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """Second hostile round: her program saved an edit of a held message in place (same Message-ID, no keywords);
    the agent took it as its held message but left it unmarked, and an agent started later on the account told her
    it "will not go" (and the first then sent it)."""
    with _two_agents(tmp_path, smtp_server) as (server, laptop, other):
        server.put(OUTBOX, mail("first"))
        laptop.run()
        held = mail("Question", message_id="<q-2@med.example.edu>")
        server.put(OUTBOX, held)
        laptop.run()
        [(uid, _)] = server.messages(SCHEDULED).items()
        laptop.box.delete(SCHEDULED, uid)
        server.put(SCHEDULED, held.replace(b"Hello.", b"Hello, edited."))  # her edit, saved without keywords
        laptop.run()
        [(edited, _)] = server.messages(SCHEDULED).items()
        assert HELD_KEYWORD + "laptop" in server.flags(SCHEDULED, edited)
        other.run()
        other.run()
        assert told(other) == []


# -- hostile round on ea093ad -------------------------------------------------------------------------------------
@pytest.mark.parametrize("renumbered", [False, True])
def test_a_held_message_under_a_message_id_another_one_in_needs_attention_has_is_not_a_stranger(
    one_a_day: Pass,  # noqa: F811
    renumbered: bool,
) -> None:
    """A in doubt (Needs attention) and B, another text under A's Message-ID, held under its content's key with the
    answer to its placing MOVE lost: B was found by the Message-ID as A's row and told as "will not go"."""
    one_a_day.server.put(OUTBOX, mail("In doubt", message_id="<x-1@med.example.edu>"))
    one_a_day.smtp.drop_after_data()
    one_a_day.run()
    one_a_day.server.put(OUTBOX, mail("B, other text", message_id="<x-1@med.example.edu>"))
    one_a_day.server.fail("move_many", OUTBOX, after=True)
    with pytest.raises(MailboxError):
        one_a_day.run()
    one_a_day.box.connect()
    if renumbered:
        one_a_day.server.renumber(SCHEDULED)
    for _ in range(3):
        one_a_day.run()
    assert one_a_day.subjects(SCHEDULED) == ["B, other text"] and told(one_a_day) == []


def test_a_notice_whose_append_went_unanswered_is_not_told_twice(one_a_day: Pass) -> None:  # noqa: F811
    one_a_day.server.put(SCHEDULED, mail("Put there by hand"))
    one_a_day.server.fail("append", "INBOX", after=True)  # appended, then the connection dropped
    with pytest.raises(MailboxError):
        one_a_day.run()  # the pass's next command: not connected
    one_a_day.box.connect()
    one_a_day.run()
    one_a_day.run()
    assert told(one_a_day) == ["[mentor-agent] Will not go from Scheduled: Put there by hand"]


def test_another_message_she_puts_there_under_a_message_id_told_before_is_told_too(one_a_day: Pass) -> None:  # noqa: F811
    """A program that keeps a draft's Message-ID across saves: the second version is another message."""
    uid = one_a_day.server.put(SCHEDULED, mail("Draft v1", message_id="<draft-1@med.example.edu>"))
    one_a_day.run()
    one_a_day.box.delete(SCHEDULED, uid)
    one_a_day.run()
    one_a_day.server.put(SCHEDULED, mail("Draft v2", message_id="<draft-1@med.example.edu>"))
    one_a_day.run()
    one_a_day.run()
    assert told(one_a_day) == [
        "[mentor-agent] Will not go from Scheduled: Draft v1",
        "[mentor-agent] Will not go from Scheduled: Draft v2",
    ]


def test_what_another_agent_holds_is_neither_claimed_nor_taken_in_again(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """Found by looping the two-agents test: the server's agent took "Question" in to go now; the laptop's held it in
    Scheduled first. The server's agent then claimed it from Scheduled as its own placed before a restart and sent
    it (against what the laptop held it for), or, once it had cancelled it as gone, took it in again as her edit;
    then both set it aside as "a copy of it is already scheduled", and it was never sent."""
    with _two_agents(tmp_path, smtp_server, other_per_day=5) as (server, laptop, other):
        server.put(OUTBOX, mail("first"))
        laptop.run()
        server.put(OUTBOX, mail("Question"))
        asyncio.run(take_in_outbox(other.world))  # the server's agent has it first, to go now (five a day)
        laptop.run()  # the laptop's holds it (one a day: "first" went)
        for _ in range(3):
            other.run()
        laptop.run()
        assert [parse_envelope(r.content).subject for r in smtp_server.messages] == ["first"]
        assert server_subjects(server, SCHEDULED) == ["Question"] and server_subjects(server, "Needs attention") == []
        assert told(other) == [] and told(laptop) == []
        assert [r.subject for r in laptop.world.ledger.in_states(SCHEDULED_STATE)] == ["Question"]


def server_subjects(server: MemoryServer, folder: str) -> list[str]:
    return [parse_envelope(raw).subject for raw in server.messages(folder).values()]


def test_a_notice_whose_append_went_unanswered_is_not_told_again_with_another(one_a_day: Pass) -> None:  # noqa: F811
    """Second hostile round: the notice naming A was stored, its answer lost; B came before the next look, and A was
    named again in "2 messages will not go"."""
    one_a_day.server.put(SCHEDULED, mail("A"))
    one_a_day.server.fail("append", "INBOX", after=True)
    with pytest.raises(MailboxError):
        one_a_day.run()
    one_a_day.box.connect()
    one_a_day.server.put(SCHEDULED, mail("B"))
    one_a_day.run()
    one_a_day.run()
    assert told(one_a_day) == [
        "[mentor-agent] Will not go from Scheduled: A",
        "[mentor-agent] Will not go from Scheduled: B",
    ]


# -- third hostile round ----------------------------------------------------------------------------------------
def test_two_agents_that_took_one_message_in_never_both_hold_it(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """The server's agent took "Question" in; the laptop's held it in Scheduled first. The server's agent then found
    the laptop's copy there as its own placed by a try whose answer was lost, and both held it: two "Scheduled"
    notices, and whichever sent it, the other recorded her cancel and sent its next message at once."""
    with _two_agents(tmp_path, smtp_server) as (server, laptop, other):
        server.put(OUTBOX, mail("first"))
        laptop.run()
        other.run()
        server.put(OUTBOX, mail("Question"))
        asyncio.run(take_in_outbox(other.world))  # the server's agent sees it in the Outbox ...
        laptop.run()  # ... the laptop's holds it first
        for _ in range(2):
            other.run()
            laptop.run()
        scheduled = [s for s in server_subjects(server, "INBOX") if s.startswith("[mentor-agent] Scheduled: Question")]
        assert len(scheduled) == 1, scheduled
        assert [r.subject for r in other.world.ledger.in_states(SCHEDULED_STATE)] == []
        assert [r.subject for r in laptop.world.ledger.in_states(SCHEDULED_STATE)] == ["Question"]


def test_what_another_agent_sent_counts_for_this_one(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """Third hostile round: the server's agent had "first" as new when the laptop's sent it; it read the Sent copy
    then (its own, it thought), cancelled its row as gone, never counted it, and sent "second" the same day."""
    with _two_agents(tmp_path, smtp_server) as (server, laptop, other):
        server.put(OUTBOX, mail("first"))
        asyncio.run(take_in_outbox(other.world))
        laptop.run()  # sends "first", files it in Sent
        other.run()
        other.run()
        server.put(OUTBOX, mail("second"))
        other.run()
        other.run()
        assert [parse_envelope(r.content).subject for r in smtp_server.messages] == ["first"]
        assert server_subjects(server, SCHEDULED) == ["second"]


def test_a_stale_mark_of_another_agent_is_not_told_while_that_agent_takes_it_out(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """Third hostile round: the laptop's agent held "Question", she cancelled it (to Drafts) and dragged it back to
    Scheduled hours later. The laptop's agent set it aside as a late copy (told), and the server's said "Held by
    another mentor-agent: that one sends it at its time" (false: nobody did)."""
    with _two_agents(tmp_path, smtp_server) as (server, laptop, other):
        server.create("Drafts")
        server.put(OUTBOX, mail("first"))
        laptop.run()
        server.put(OUTBOX, mail("Question"))
        laptop.run()
        [(uid, _)] = server.messages(SCHEDULED).items()
        laptop.box.move(SCHEDULED, uid, "Drafts")  # she cancels it
        laptop.run()
        [(draft, _)] = server.messages("Drafts").items()
        laptop.box.move("Drafts", draft, SCHEDULED)  # and drags it back, its mark still on it
        other.run()  # the server's agent looks first
        laptop.run()
        other.run()
        assert [s for s in server_subjects(server, "INBOX") if "another mentor-agent" in s] == []
