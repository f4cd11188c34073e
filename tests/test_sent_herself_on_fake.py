"""Send pressed in her mail program on a draft a door handed over (agent/reconcile/doors/sent_herself.py; hostile
round on issue 22, a1 and a2): her program's copy in Sent means the mentor has it, so the agent never sends its
own copy too; the copy it had goes to Needs attention (never deleted) and she is told. Pass by pass, in memory."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.config.settings import Drafts
from agent.reconcile.doors.sent_herself import CANCELLED_HERS
from agent.reconcile.history import Seen
from agent.reconcile.recovery import recover
from agent.rules.envelope import parse_envelope
from agent.store.ledger import CANCELLED
from tests.agent_process import OUTBOX, policy_text
from tests.servers.smtp import SmtpServer
from tests.test_in_doubt_counts_on_fake import Crash
from tests.test_passes_on_fake import SENT, Pass, mail

DRAFT = ("\\Draft", "\\Seen")


@pytest.fixture
def one_a_day(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Pass]:
    made = Pass(tmp_path, smtp_server, policy_text(max_per_day=1))
    made.world.settings = made.settings.model_copy(update={"drafts": Drafts(settle=0)})
    try:
        yield made
    finally:
        made.world.ledger.close()


def told(one: Pass) -> list[str]:
    return [s for s in one.subjects("INBOX") if "Not sent again" in s]


def _held_draft(one: Pass) -> bytes:
    """ "first" sent (the day's one), then a labelled draft "Question" handed over: held in Scheduled."""
    one.server.put(OUTBOX, mail("first"))
    one.run()
    draft = mail("Question")
    one.server.put(OUTBOX, draft, DRAFT)
    one.run()
    assert one.subjects("Scheduled") == ["Question"]
    return draft


def test_send_pressed_on_a_held_labelled_draft_cancels_the_held_copy(one_a_day: Pass) -> None:
    """a2: held in Scheduled, then Gmail's Send in the still-open compose window: its copy lands in Sent."""
    draft = _held_draft(one_a_day)
    one_a_day.server.put(SENT, draft)  # Gmail's own copy, under the held message's Message-ID
    one_a_day.run()
    one_a_day.run()
    assert one_a_day.received() == ["first"], "the mentor has it from Gmail already"
    assert one_a_day.subjects("Scheduled") == [] and one_a_day.subjects("Needs attention") == ["Question"]
    assert sorted(one_a_day.subjects(SENT)) == ["Question", "first"]
    assert told(one_a_day) == ["[mentor-agent] Not sent again: Question"]
    assert [r.subject for r in one_a_day.world.ledger.in_states(CANCELLED)] == ["Question"]


@pytest.mark.parametrize("sent_copy", ["kept", "deleted by her before the restart"])
@pytest.mark.parametrize("at", ["before the move", "after the move", "before the notice"])
def test_a_stop_while_cancelling_the_held_copy_is_finished_at_the_next_start(
    one_a_day: Pass, monkeypatch: pytest.MonkeyPatch, at: str, sent_copy: str
) -> None:
    """Found by the hostile round on the folders: killed between the held copy's move and the ledger's word, the
    next start read the copy gone from Scheduled as her own cancel, and the mail she sent from her program was never
    counted (a mentor could get more than agreed). Now the row is marked first and the cancel finished at the next
    start: the held copy in Needs attention, her send counted, she told once. Hostile round: with her Sent copy
    deleted before the restart, her send was never counted; now it is counted with the mark."""
    draft = _held_draft(one_a_day)
    sent_uid = one_a_day.server.put(SENT, draft)
    world = one_a_day.world
    real_move, real_notify = world.mailbox.move, world.notify

    def move(folder: str, uid: int, target: str) -> int | None:
        if at == "before the move" and target == "Needs attention":
            raise Crash(at)
        moved = real_move(folder, uid, target)
        if at == "after the move" and target == "Needs attention":
            raise Crash(at)
        return moved

    async def notify(title: str, lines: list[str], about: str | None = None, **more: Any) -> bool:
        if "Not sent again" in title:
            raise Crash(at)
        return await real_notify(title, lines, about, **more)

    monkeypatch.setattr(world.mailbox, "move", move)
    monkeypatch.setattr(world, "notify", notify)
    with pytest.raises(Crash):
        one_a_day.run()
    monkeypatch.undo()
    if sent_copy != "kept":
        one_a_day.box.delete(SENT, sent_uid)
    one_a_day.seen = Seen()  # the restart: Sent is read again
    asyncio.run(recover(world))
    for _ in range(3):
        one_a_day.run()
    assert one_a_day.received() == ["first"], "the mentor has it from her program already"
    assert one_a_day.subjects("Scheduled") == [] and one_a_day.subjects("Needs attention") == ["Question"]
    assert told(one_a_day) == ["[mentor-agent] Not sent again: Question"]
    rows = world.ledger.in_states(CANCELLED)
    assert [(r.subject, r.detail) for r in rows] == [("Question", CANCELLED_HERS)], "not her cancel"
    assert parse_envelope(draft).message_id in world.ledger.item_ids(), "her send counts in the agreement"


def test_another_message_under_its_message_id_in_sent_cancels_nothing(one_a_day: Pass) -> None:
    """Hostile round: a program that reuses Message-IDs sent another message (another subject) to the mentor; the
    held draft was cancelled, and she was told it counts as sent."""
    one_a_day.server.put(OUTBOX, mail("first"))
    one_a_day.run()
    one_a_day.server.put(OUTBOX, mail("Question", message_id="<reused-1@med.example.edu>"), DRAFT)
    one_a_day.run()
    other = mail("Thank-you note", message_id="<reused-1@med.example.edu>")
    one_a_day.server.put(SENT, other.replace(b"Hello.", b"Thank you for the dinner last night; it meant a lot to me."))
    one_a_day.run()
    one_a_day.run()
    assert one_a_day.subjects("Scheduled") == ["Question"] and told(one_a_day) == []


def test_her_copy_with_the_subject_fixed_before_she_pressed_send_is_her_send(one_a_day: Pass) -> None:
    """Second hostile round: she fixed a typo in the subject in the still-open compose window and pressed Send. The
    rule above skipped her copy: it was not counted, and the agent sent its held copy a day later (twice to the
    mentor). The same words under another subject are her send."""
    one_a_day.server.put(OUTBOX, mail("first"))
    one_a_day.run()
    draft = mail("Qestion", message_id="<typo-1@med.example.edu>")
    one_a_day.server.put(OUTBOX, draft, DRAFT)
    one_a_day.run()
    one_a_day.server.put(SENT, draft.replace(b"Subject: Qestion", b"Subject: Question"))
    one_a_day.run()
    one_a_day.run()
    assert one_a_day.subjects("Scheduled") == [] and one_a_day.subjects("Needs attention") == ["Qestion"]
    assert told(one_a_day) == ["[mentor-agent] Not sent again: Qestion"]
    assert "<typo-1@med.example.edu>" in one_a_day.world.ledger.item_ids(), "her send counts in the agreement"


def test_a_new_message_to_someone_else_under_a_message_id_found_in_sent_is_sent(one_a_day: Pass) -> None:
    """Hostile round: a note to a friend reusing the Message-ID of what she had sent the mentor was set aside as
    "sent from your mail program"."""
    one_a_day.server.put(SENT, mail("Question", message_id="<reused-2@med.example.edu>"))
    one_a_day.run()
    note = mail("A new note", message_id="<reused-2@med.example.edu>", to="friend@example.org")
    one_a_day.server.put(OUTBOX, note)
    one_a_day.run()
    one_a_day.run()
    assert one_a_day.received() == ["A new note"] and told(one_a_day) == []


def test_send_pressed_while_the_labelled_draft_settles_is_not_sent_again(one_a_day: Pass) -> None:
    """a1: Gmail sent it (its copy in Sent, counted) before the agent took the draft in from the Outbox."""
    draft = mail("Pressed Send by habit")
    one_a_day.server.put(SENT, draft)
    one_a_day.server.put(OUTBOX, draft, DRAFT)
    one_a_day.run()
    one_a_day.run()
    assert one_a_day.received() == []
    assert one_a_day.subjects("Needs attention") == ["Pressed Send by habit"]
    assert told(one_a_day) == ["[mentor-agent] Not sent again: Pressed Send by habit"]


def test_the_agents_own_sent_copy_never_cancels_anything(one_a_day: Pass) -> None:
    one_a_day.server.put(OUTBOX, mail("Question"), DRAFT)
    one_a_day.run()
    one_a_day.run()
    assert one_a_day.received() == ["Question"] and one_a_day.subjects(SENT) == ["Question"]
    assert one_a_day.subjects("Needs attention") == [] and told(one_a_day) == []
