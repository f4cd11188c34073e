"""The star door's reminders (issue 22, fourth hostile round): a draft flagged before the door opened never sends,
whatever its mail program does when she types in it again: a save APPENDed without its flag and flagged a moment
later (a two-step save), a save that gets a new Message-ID as she types the mentor's address or the subject. She
is told once per reminder, not once per autosave; taking the star off and setting it again hands it over."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from email.utils import make_msgid
from pathlib import Path

import pytest

from tests.agent_process import MENTOR, OUTBOX
from tests.test_star_door_copies import DRAFTS, Door, draft

IDEA = "Dear Dr. Rivera,\n\nI had an idea about TODO"
UNSTARRED = ("\\Draft", "\\Seen")


@pytest.fixture
def door(tmp_path: Path) -> Iterator[Door]:
    made = Door(tmp_path)
    try:
        yield made
    finally:
        made.world.ledger.close()


def opened_on(door: Door, raw: bytes) -> None:
    """The reminder starred long ago; the door opens with it flagged (its baseline)."""
    door.save(raw)
    door.run(later=timedelta(days=2))
    assert door.subjects(OUTBOX) == []


def resave(door: Door, raw: bytes, flags: tuple[str, ...] = ("\\Draft", "\\Seen", "\\Flagged")) -> int:
    """She types in it: her mail program replaces it with a new save (a new UID)."""
    for uid in list(door.server.messages(DRAFTS)):
        del door.server.folders[DRAFTS].messages[uid]
    return door.save(raw, flags)


def test_a_two_step_save_flagged_a_moment_after_it_was_appended_is_still_a_reminder(door: Door) -> None:
    mid = make_msgid(domain="med.example.edu")
    opened_on(door, draft("Research idea", IDEA, mid))
    uid = resave(door, draft("Research idea", IDEA + " the lactate", mid), UNSTARRED)
    door.run(later=timedelta(seconds=1))  # IDLE woke the daemon at the APPEND
    door.server.folders[DRAFTS].messages[uid].flags.add("\\Flagged")  # the client's STORE, 1.5 s later
    door.run(later=timedelta(seconds=1.5))
    door.run()
    assert door.subjects(OUTBOX) == [], door.notices()
    assert "\\Flagged" in door.server.flags(DRAFTS, uid)


@pytest.mark.parametrize("typed", ["recipient", "subject"])
def test_a_reminder_saved_with_a_new_message_id_as_she_types_the_mentor_or_subject_is_still_one(
    door: Door, typed: str
) -> None:
    first = draft("Research idea" if typed == "recipient" else "", IDEA)
    if typed == "recipient":
        first = first.replace(f"To: Dr. Ana Rivera <{MENTOR}>\r\n".encode(), b"")
    opened_on(door, first)
    resave(door, draft("Research idea", IDEA + " the lactate"))
    door.run()
    door.run()
    assert door.subjects(OUTBOX) == [], door.notices()


def test_she_is_told_once_per_reminder_not_once_per_autosave(door: Door) -> None:
    mid = make_msgid(domain="med.example.edu")
    opened_on(door, draft("Research idea", IDEA, mid))
    for words in (" the", " the lactate", " the lactate threshold"):
        resave(door, draft("Research idea", IDEA + words, mid))
        door.run(later=timedelta(seconds=5))
    assert door.subjects(OUTBOX) == []
    assert [n for n in door.notices() if n.startswith("Still a reminder")] == [
        "Still a reminder, not taken: Research idea"
    ]


def test_a_two_step_saved_reminder_is_handed_over_by_its_star_taken_off_and_set_again(door: Door) -> None:
    mid = make_msgid(domain="med.example.edu")
    opened_on(door, draft("Research idea", IDEA, mid))
    uid = resave(door, draft("Research idea", IDEA + " the lactate", mid), UNSTARRED)
    door.run(later=timedelta(seconds=1))
    door.server.folders[DRAFTS].messages[uid].flags.add("\\Flagged")
    door.run(later=timedelta(seconds=2))
    door.server.folders[DRAFTS].messages[uid].flags.discard("\\Flagged")
    door.run()
    door.server.folders[DRAFTS].messages[uid].flags.add("\\Flagged")
    door.run()
    door.run()
    assert door.subjects(OUTBOX) == ["Research idea"]


def test_a_star_set_long_after_a_reminders_unstarred_save_is_told_even_when_the_reminder_was(door: Door) -> None:
    mid = make_msgid(domain="med.example.edu")
    opened_on(door, draft("Research idea", IDEA, mid))
    resave(door, draft("Research idea", IDEA + " the", mid))  # kept its star: told once
    door.run(later=timedelta(seconds=5))
    told = len(door.notices())
    uid = resave(door, draft("Research idea", IDEA + " the lactate", mid), UNSTARRED)
    door.run(later=timedelta(seconds=5))
    door.server.folders[DRAFTS].messages[uid].flags.add("\\Flagged")  # an hour later: her star, perhaps
    door.run(later=timedelta(hours=1))
    assert door.subjects(OUTBOX) == []
    assert len(door.notices()) == told + 1 and door.notices()[-1] == "Still a reminder, not taken: Research idea"


def test_a_new_message_that_begins_as_a_greeting_only_reminder_does_is_taken(door: Door) -> None:
    opened_on(door, draft("", "Dear Dr. Rivera,"))  # a reminder: the greeting, nothing else yet
    door.save(draft("Case log", "Dear Dr. Rivera,\n\nCould we talk about my case log on Friday? I have three cases."))
    door.run()
    door.run()
    assert door.subjects(OUTBOX) == ["Case log"]
