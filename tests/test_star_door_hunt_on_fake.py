"""The star door, what a hostile hunt found (on the in-memory mailbox, with a clock the test moves; the hunt's own
runs were on the real daemon against Dovecot):

- two flagged saves of one draft (one Message-ID), the older left behind by her mail program: the older,
  unfinished text was taken when its own settle time ran out, and her final one held back;
- a star taken off while the agent read the draft (a big draft, a slow line): taken and sent all the same;
- a draft without a Message-ID whose star the agent took off before a stop (kill -9) before its MOVE: never taken,
  and never told;
- a draft she took back with `cancel` and flagged again, the agent stopped after it took the flag off: "Taken" told
  again, untrue, and her flag lost."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.mail.session import MailboxError
from agent.reconcile.doors.drafts import TAKING
from tests.agent_process import OUTBOX
from tests.test_star_door_copies import DRAFTS, QUESTION, Door, draft


def stopped_after_the_flag_came_off(door: Door, monkeypatch: pytest.MonkeyPatch) -> None:
    """One pass that takes the flag off and stops before the MOVE (as a kill -9 there)."""

    def stopped(*_: object) -> None:
        raise MailboxError("the daemon stopped (as a kill -9 right after the flag came off)")

    monkeypatch.setattr(door.box, "move", stopped)
    with pytest.raises(MailboxError):
        door.run(later=timedelta(seconds=5))
    monkeypatch.undo()


def without_message_id(raw: bytes) -> bytes:
    return b"\r\n".join(line for line in raw.split(b"\r\n") if not line.startswith(b"Message-ID"))


@pytest.fixture
def door(tmp_path: Path) -> Iterator[Door]:
    made = Door(tmp_path, settle=4)
    made.run()  # the door opens on an empty Drafts
    try:
        yield made
    finally:
        made.world.ledger.close()


def test_of_two_flagged_saves_of_one_draft_the_newest_is_taken_once_it_settled(door: Door) -> None:
    first = draft("Two saves", "Version one, unfinished.\n", message_id="<two-saves@med.example.edu>")
    final = draft("Two saves", "Version two, final and complete.\n", message_id="<two-saves@med.example.edu>")
    door.save(first)
    door.run(later=timedelta(seconds=1))
    door.save(final)  # her program saved again, and left the older save behind
    door.run(later=timedelta(seconds=3))  # the older save has waited its 4 seconds, the newest has not
    assert door.subjects(OUTBOX) == [], "nothing taken before her last save settled"
    door.run(later=timedelta(seconds=2))
    door.run(later=timedelta(seconds=5))
    assert door.bodies(OUTBOX) == [b"Version two, final and complete.\r\n"]
    assert door.notices().count("Taken from Drafts: Two saves") == 1


def test_a_star_taken_off_while_the_draft_is_read_leaves_it_in_drafts(
    door: Door, monkeypatch: pytest.MonkeyPatch
) -> None:
    door.save(draft("Not after all", QUESTION))
    door.run(later=timedelta(seconds=1))
    fetch = door.box.fetch

    def read_while_she_unstars(folder: str, uid: int) -> Any:
        found = fetch(folder, uid)
        if folder == DRAFTS:
            door.server.folders[DRAFTS].messages[uid].flags.discard("\\Flagged")  # she took the star off
        return found

    monkeypatch.setattr(door.box, "fetch", read_while_she_unstars)
    door.run(later=timedelta(seconds=5))
    assert door.subjects(OUTBOX) == [] and door.subjects(DRAFTS) == ["Not after all"]
    assert not [n for n in door.notices() if n.startswith("Taken from")]


def test_a_draft_without_a_message_id_unflagged_before_a_stop_is_still_taken(
    door: Door, monkeypatch: pytest.MonkeyPatch
) -> None:
    door.save(without_message_id(draft("No id", QUESTION)))
    door.run(later=timedelta(seconds=1))
    stopped_after_the_flag_came_off(door, monkeypatch)
    assert door.server.flags(DRAFTS, 1) == {"\\Seen"}, "its star taken off by the agent, the MOVE not done"
    assert door.world.ledger.db.execute("SELECT count(*) FROM log WHERE event = ?", (TAKING,)).fetchone()[0] == 1
    restarted = type(door.door)()  # a new daemon: nothing in memory from before
    door.door = restarted
    for _ in range(3):
        door.run(later=timedelta(seconds=5))
    assert door.subjects(OUTBOX) == ["No id"] and door.subjects(DRAFTS) == []
    assert door.notices().count("Taken from Drafts: No id") == 1


# -- a second hostile round -------------------------------------------------------------------------------------
def test_a_newer_save_without_the_flag_holds_the_flagged_older_one_back_and_she_is_told_once(door: Door) -> None:
    first = draft("Two saves", "Version one, unfinished.\n", message_id="<saves@med.example.edu>")
    door.save(first)
    door.run(later=timedelta(seconds=1))
    door.save(draft("Two saves", "Version two, final.\n", message_id="<saves@med.example.edu>"), ("\\Draft", "\\Seen"))
    for _ in range(3):
        door.run(later=timedelta(seconds=5))
    assert door.subjects(OUTBOX) == [], "the older, unfinished text never goes"
    assert door.notices().count("Not taken yet: Two saves") == 1


def test_a_half_taken_draft_saved_again_meanwhile_waits_for_its_last_save(
    door: Door, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Her compose window kept saving (a new UID each time, the older save gone) while the agent was stopped after
    it took the flag off: the save first seen after the restart is not taken at once, mid-sentence."""
    mid = "<typing@med.example.edu>"
    door.save(draft("Still typing", "Version one.\n", message_id=mid))
    door.run(later=timedelta(seconds=1))
    stopped_after_the_flag_came_off(door, monkeypatch)
    door.server.folders[DRAFTS].messages.clear()
    door.save(draft("Still typing", "Version two, half a sen\n", message_id=mid), ("\\Draft", "\\Seen"))
    door.door = type(door.door)()
    door.run(later=timedelta(seconds=1))
    assert door.subjects(OUTBOX) == []
    door.server.folders[DRAFTS].messages.clear()
    door.save(draft("Still typing", "Version three, final.\n", message_id=mid), ("\\Draft", "\\Seen"))
    for _ in range(2):
        door.run(later=timedelta(seconds=5))
    assert door.bodies(OUTBOX) == [b"Version three, final.\r\n"]


def test_a_taking_cut_short_whose_draft_changed_is_told_not_dropped_unsaid(
    door: Door, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = without_message_id(draft("No id", QUESTION))
    door.save(raw)
    door.run(later=timedelta(seconds=1))
    stopped_after_the_flag_came_off(door, monkeypatch)
    door.server.folders[DRAFTS].messages.clear()  # her program saved an edit (another text, no flag) over it
    edited = b"\r\n".join(
        b"Date: Mon, 07 Dec 2026 09:00:00 +0000" if line.startswith(b"Date:") else line for line in raw.split(b"\r\n")
    ).replace(b"lactate", b"lactate level")  # a new save: a new Date, another header block
    door.save(edited, ("\\Draft", "\\Seen"))
    door.door = type(door.door)()
    for _ in range(3):
        door.run(later=timedelta(seconds=5))
    assert door.subjects(OUTBOX) == []
    assert door.notices().count("Not taken: No id") == 1


# -- a fourth hostile round ---------------------------------------------------------------------------------------
def test_a_half_taken_draft_whose_older_saves_stay_behind_sends_the_last_text(
    door: Door, monkeypatch: pytest.MonkeyPatch
) -> None:
    mid = "<left-behind@med.example.edu>"
    door.save(draft("Left behind", "Version one, half a sen\n", message_id=mid))
    door.run(later=timedelta(seconds=1))
    stopped_after_the_flag_came_off(door, monkeypatch)
    for text in ("Version two, nearly.\n", "Version three, final.\n"):  # saved while the agent was stopped
        door.save(draft("Left behind", text, message_id=mid), ("\\Draft", "\\Seen"))
    door.door = type(door.door)()
    for _ in range(3):
        door.run(later=timedelta(seconds=5))
    assert door.bodies(OUTBOX) == [b"Version three, final.\r\n"]


def test_after_she_was_told_not_taken_a_save_without_the_flag_stays_hers(
    door: Door, monkeypatch: pytest.MonkeyPatch
) -> None:
    mid = "<not-taken@med.example.edu>"
    door.save(draft("Not taken", QUESTION, message_id=mid))
    door.run(later=timedelta(seconds=1))
    stopped_after_the_flag_came_off(door, monkeypatch)
    door.server.folders[DRAFTS].messages.clear()  # she deleted it
    door.door = type(door.door)()
    door.run(later=timedelta(seconds=5))
    assert door.notices().count("Not taken: Not taken") == 1
    door.save(draft("Not taken", QUESTION + "PS.\n", message_id=mid), ("\\Draft", "\\Seen"))  # her window saves
    for _ in range(3):
        door.run(later=timedelta(seconds=5))
    assert door.subjects(OUTBOX) == [] and door.subjects(DRAFTS) == ["Not taken"]


def test_a_save_in_two_steps_is_not_told_as_a_newer_save_without_the_flag(door: Door) -> None:
    mid = "<two-steps@med.example.edu>"
    first = door.save(draft("Two steps", "Version one.\n", message_id=mid))
    door.run(later=timedelta(seconds=1))
    second = door.save(draft("Two steps", "Version two.\n", message_id=mid), ("\\Draft", "\\Seen"))
    door.run(later=timedelta(seconds=1))
    door.server.folders[DRAFTS].messages[second].flags.add("\\Flagged")  # her program's second step
    del door.server.folders[DRAFTS].messages[first]
    for _ in range(3):
        door.run(later=timedelta(seconds=5))
    assert not [n for n in door.notices() if n.startswith("Not taken yet")]
    assert door.bodies(OUTBOX) == [b"Version two.\r\n"]


def test_several_newer_saves_without_the_flag_are_told_once(door: Door) -> None:
    mid = "<many-saves@med.example.edu>"
    door.save(draft("Many saves", "Version one.\n", message_id=mid))
    for number in ("two", "three", "four"):
        door.run(later=timedelta(seconds=5))
        door.save(draft("Many saves", f"Version {number}.\n", message_id=mid), ("\\Draft", "\\Seen"))
    for _ in range(3):
        door.run(later=timedelta(seconds=5))
    assert door.notices().count("Not taken yet: Many saves") == 1
    assert door.subjects(OUTBOX) == []


# -- a fifth hostile round ------------------------------------------------------------------------------------------
def test_a_subject_edited_in_a_newer_save_without_the_flag_holds_the_older_one_back(door: Door) -> None:
    """A save keeps its Message-ID whatever its subject becomes: grouping saves by subject too (a fifth round's fix
    for a program bug) sent the older, unfinished text under the old subject (a final round)."""
    mid = "<subject-edit@med.example.edu>"
    door.save(draft("Question about rotation", "Version one, unfinished.\n", message_id=mid))
    door.run(later=timedelta(seconds=1))
    door.save(draft("Question about the ICU rotation", "Version two.\n", message_id=mid), ("\\Draft", "\\Seen"))
    for _ in range(3):
        door.run(later=timedelta(seconds=5))
    assert door.subjects(OUTBOX) == []
    assert door.notices().count("Not taken yet: Question about rotation") == 1


def test_flagged_again_after_not_taken_a_second_cut_taking_still_counts(
    door: Door, monkeypatch: pytest.MonkeyPatch
) -> None:
    mid = "<again@med.example.edu>"
    door.save(draft("Again", QUESTION, message_id=mid))
    door.run(later=timedelta(seconds=1))
    stopped_after_the_flag_came_off(door, monkeypatch)
    door.server.folders[DRAFTS].messages.clear()  # she deleted it: "Not taken"
    door.door = type(door.door)()
    door.run(later=timedelta(seconds=5))
    door.save(draft("Again", QUESTION, message_id=mid))  # saved again and flagged: a new hand-over
    door.run(later=timedelta(seconds=1))
    stopped_after_the_flag_came_off(door, monkeypatch)
    door.door = type(door.door)()
    for _ in range(3):
        door.run(later=timedelta(seconds=5))
    assert door.subjects(OUTBOX) == ["Again"]
    assert door.notices().count("Taken from Drafts: Again") == 1


def test_a_draft_she_took_back_with_cancel_and_flagged_again_is_taken_again_after_a_stop(
    door: Door, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Taken and held, put back in Drafts (as `cancel` does), flagged again, and the agent stopped right after it took
    the flag off: the held row of the first taking is no proof the second was done. Before, the restart said "Taken"
    a second time while the draft sat in Drafts without its flag: her flag lost, and the notice untrue."""
    import asyncio

    from agent.reconcile.intake import carry_out, follow_scheduled, take_in_outbox
    from agent.rules.policy import PolicyBook, load_policies
    from tests.agent_process import closed_window, policy_text

    policies = door.world.settings.policies_dir
    (policies / "rivera.toml").write_text(policy_text(windows=closed_window()))
    door.world.book = PolicyBook(load_policies(policies))
    door.save(draft("Sepsis papers", QUESTION, message_id="<came-back@med.example.edu>"))
    door.run(later=timedelta(seconds=1))
    door.run(later=timedelta(seconds=5))
    door.run(later=timedelta(seconds=1))
    assert door.subjects(OUTBOX) == ["Sepsis papers"], door.notices()
    asyncio.run(take_in_outbox(door.world))
    asyncio.run(carry_out(door.world))
    scheduled = door.world.folders.scheduled
    assert door.subjects(scheduled) == ["Sepsis papers"], "held: her window is closed"
    ((uid, raw),) = door.server.messages(scheduled).items()
    del door.server.folders[scheduled].messages[uid]  # `cancel`: out of Scheduled, back into Drafts
    back = door.server.put(DRAFTS, raw, ("\\Draft", "\\Seen"), when=door.at)
    asyncio.run(follow_scheduled(door.world))
    assert door.world.ledger.in_states("cancelled"), "the pass saw it taken back"
    door.run(later=timedelta(seconds=1))
    door.server.folders[DRAFTS].messages[back].flags.add("\\Flagged")
    door.run(later=timedelta(seconds=1))
    stopped_after_the_flag_came_off(door, monkeypatch)
    assert door.subjects(DRAFTS) == ["Sepsis papers"] and "\\Flagged" not in door.server.flags(DRAFTS, back)
    door.door = type(door.door)()  # a new daemon
    for _ in range(3):
        door.run(later=timedelta(seconds=5))
    assert door.subjects(OUTBOX) == ["Sepsis papers"] and door.subjects(DRAFTS) == []
    assert door.notices().count("Taken from Drafts: Sepsis papers") == 2, "each taking told once, and truly"
