"""The label door's saves that come back (agent/reconcile/doors/came_back.py), pass by pass on the in-memory mailbox:
a draft in the Outbox that is a later save of one already taken is set aside, never sent twice; a draft of its own
is taken as ever. The same end to end, behind the Gmail emulation: tests/test_doors_paced_on_providers.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config.settings import Drafts
from agent.store.ledger import SCHEDULED
from tests.agent_process import OUTBOX, policy_text
from tests.servers.smtp import SmtpServer
from tests.test_passes_on_fake import Pass, mail

DRAFT = ("\\Draft", "\\Seen")


@pytest.fixture
def one_a_day(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Pass]:
    made = Pass(tmp_path, smtp_server, policy_text(max_per_day=1))
    made.world.settings = made.settings.model_copy(update={"drafts": Drafts(settle=0)})
    try:
        yield made
    finally:
        made.world.ledger.close()


def labelled_draft_held(one: Pass) -> None:
    """One message sent today; then a labelled draft, taken in and held in Scheduled (one a day)."""
    one.server.put(OUTBOX, mail("first"))
    one.run()
    one.server.put(OUTBOX, mail("Question"), DRAFT)
    one.run()
    assert one.subjects("Scheduled") == ["Question"]


def told(one: Pass) -> list[str]:
    return [s for s in one.subjects("INBOX") if "Not taken again" in s]


def test_saves_that_come_back_are_set_aside_and_told_once(one_a_day: Pass) -> None:
    labelled_draft_held(one_a_day)
    one_a_day.server.put(OUTBOX, mail("Question"), DRAFT)  # saved again: a Message-ID of its own
    one_a_day.run()
    one_a_day.server.put(OUTBOX, mail("Question"), DRAFT)  # and again
    one_a_day.run()
    assert one_a_day.subjects("Needs attention") == ["Question", "Question"]
    assert one_a_day.subjects(OUTBOX) == []
    assert told(one_a_day) == ["[mentor-agent] Not taken again: Question"]
    assert [r.subject for r in one_a_day.world.ledger.in_states(SCHEDULED)] == ["Question"], "one message waits"


def test_an_edit_saved_under_the_taken_drafts_message_id_is_set_aside(one_a_day: Pass) -> None:
    one_a_day.server.put(OUTBOX, mail("first"))
    one_a_day.run()
    one_a_day.server.put(OUTBOX, mail("Question", message_id="<q1@med.example.edu>"), DRAFT)
    one_a_day.run()
    edited = mail("Question", message_id="<q1@med.example.edu>").replace(b"Hello.", b"Hello again.")
    one_a_day.server.put(OUTBOX, edited, DRAFT)
    one_a_day.run()
    assert one_a_day.subjects("Scheduled") == ["Question"]
    assert one_a_day.subjects("Needs attention") == ["Question"]
    assert len(told(one_a_day)) == 1


def test_a_draft_of_its_own_is_taken(one_a_day: Pass) -> None:
    labelled_draft_held(one_a_day)
    one_a_day.server.put(OUTBOX, worded(mail("Another question"), "A text of its own."), DRAFT)
    one_a_day.run()
    assert sorted(one_a_day.subjects("Scheduled")) == ["Another question", "Question"]
    assert told(one_a_day) == []


def test_once_the_taken_message_is_cancelled_a_new_save_is_hers_again(one_a_day: Pass) -> None:
    labelled_draft_held(one_a_day)
    (uid,) = one_a_day.server.messages("Scheduled")
    one_a_day.box.delete("Scheduled", uid)  # she cancels it
    one_a_day.run()
    one_a_day.server.put(OUTBOX, mail("Question"), DRAFT)
    one_a_day.run()
    assert one_a_day.subjects("Scheduled") == ["Question"]
    assert one_a_day.subjects("Needs attention") == [] and told(one_a_day) == []


def worded(raw: bytes, text: str) -> bytes:
    return raw.replace(b"Hello.", text.encode())


def test_a_new_labelled_draft_with_the_same_subject_and_its_own_text_goes(one_a_day: Pass) -> None:
    """Hostile round a3: a new message "Re: Rotation schedule" the same day, its own text: not a save come back."""
    one_a_day.server.put(OUTBOX, mail("first"))
    one_a_day.run()
    one_a_day.server.put(OUTBOX, worded(mail("Re: Rotation schedule"), "Thank you, Monday works for me."), DRAFT)
    one_a_day.run()
    second = worded(mail("Re: Rotation schedule"), "One more thing: may I bring the case log on Monday?")
    one_a_day.server.put(OUTBOX, second, DRAFT)
    one_a_day.run()
    assert one_a_day.subjects("Scheduled") == ["Re: Rotation schedule", "Re: Rotation schedule"]
    assert one_a_day.subjects("Needs attention") == [] and told(one_a_day) == []


@pytest.mark.parametrize("edit", ["cc added", "subject corrected"])
def test_a_later_save_with_a_cc_or_a_corrected_subject_is_not_a_second_message(one_a_day: Pass, edit: str) -> None:
    """Hostile round a11: the open compose window saves the taken draft again, a Cc added or its subject corrected
    (a new Message-ID): the same text to the same mentor, set aside, never held twice."""
    text = "Could we move Thursday's meeting to Friday morning? The clinic runs late on Thursdays."
    one_a_day.server.put(OUTBOX, mail("first"))
    one_a_day.run()
    one_a_day.server.put(OUTBOX, worded(mail("Rotation question"), text), DRAFT)
    one_a_day.run()
    if edit == "cc added":
        again = mail("Rotation question", Cc="coordinator@hospital.example.org")
    else:
        again = mail("Rotation question (corrected)")
    one_a_day.server.put(OUTBOX, worded(again, text + " Thank you."), DRAFT)
    one_a_day.run()
    assert one_a_day.subjects("Scheduled") == ["Rotation question"]
    assert one_a_day.subjects("Needs attention") == [again_subject(again)]
    assert told(one_a_day) == ["[mentor-agent] Not taken again: Rotation question"]


def again_subject(raw: bytes) -> str:
    return next(line[9:] for line in raw.decode().split("\r\n") if line.startswith("Subject: "))
