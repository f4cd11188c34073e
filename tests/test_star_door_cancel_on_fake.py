"""The star door around `cancel` and cut takings, what a hostile round found (whole passes in the daemon's order on
the in-memory mailbox: intake, the door, the Scheduled check, sending; the hunt's runs were on the real daemon too):

- a held message she took back with `cancel` and flagged, the agent stopped right after it took the flag off,
  before it had seen the cancel: "Taken from Drafts" told while the draft sat in Drafts without its flag, for good;
- a cut taking whose draft the intake then set aside (her edit named a second mentor, or she had sent it herself):
  "Not taken … saved again or deleted … flag it again", though it was taken and is in Needs attention.

A taking counts as done when the intake took its message in after the taking began (the ledger's log says so in
order), or when it left Drafts for the agent's folders; a row from before the taking is no proof."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.mail.session import MailboxError
from agent.reconcile.history import Seen, scan_sent
from agent.reconcile.intake import carry_out, follow_scheduled, take_in_outbox
from agent.rules.policy import PolicyBook, load_policies
from tests.agent_process import OUTBOX, closed_window, policy_text
from tests.test_star_door_copies import DRAFTS, QUESTION, Door, draft

OKAFOR = """\
[mentor]
name = "Dr. Ben Okafor"
addresses = ["bokafor@hospital.example.org"]
timezone = "America/Chicago"

[email]
max_per_day = 50
max_per_week = 100
min_gap = "0"
send_windows = [{windows}]
max_unanswered = 50
follow_up_after = "7d"
over_limit = "delay"
"""


@pytest.fixture
def door(tmp_path: Path) -> Iterator[Door]:
    made = Door(tmp_path, settle=4)
    policies = made.world.settings.policies_dir
    (policies / "rivera.toml").write_text(policy_text(windows=closed_window()))  # everything is held
    (policies / "okafor.toml").write_text(OKAFOR.format(windows=closed_window()))
    made.world.book = PolicyBook(load_policies(policies))
    made.run()
    try:
        yield made
    finally:
        made.world.ledger.close()


def full(door: Door, seen: Seen | None = None, *, scheduled_check: bool = True) -> None:
    """One pass in the daemon's order, five seconds on."""
    door.at += timedelta(seconds=5)

    async def one() -> None:
        if seen is not None:
            await scan_sent(door.world, seen)
        await take_in_outbox(door.world)
        await door.door.pass_once(door.world)
        if scheduled_check:
            await follow_scheduled(door.world)
            await carry_out(door.world)

    asyncio.run(one())


def killed(door: Door, monkeypatch: pytest.MonkeyPatch, *, moved: bool, **kwargs: Any) -> None:
    """One pass that dies in the door's taking: after the flag came off (``moved``: after the server's MOVE too,
    its answer lost), as a kill -9 there; then a new daemon."""
    move = door.box.move

    def dying(folder: str, uid: int, to: str, *args: Any, **named: Any) -> Any:
        if folder == DRAFTS and to == OUTBOX:
            if moved:
                move(folder, uid, to, *args, **named)
            raise MailboxError("killed in the taking")
        return move(folder, uid, to, *args, **named)

    monkeypatch.setattr(door.box, "move", dying)
    with pytest.raises(MailboxError):
        full(door, **kwargs)
    monkeypatch.undo()
    door.door = type(door.door)()


def cancel(door: Door) -> int:
    """`mentor-agent cancel`: out of Scheduled, back into Drafts."""
    scheduled = door.world.folders.scheduled
    ((uid, raw),) = door.server.messages(scheduled).items()
    flags = tuple(door.server.flags(scheduled, uid))
    del door.server.folders[scheduled].messages[uid]
    return door.server.put(DRAFTS, raw, flags, when=door.at)


def untrue(door: Door) -> list[str]:
    return [notice for notice in door.notices() if notice.startswith("Not taken")]


def test_a_cancel_not_yet_seen_then_a_flag_and_a_stop_keeps_her_flag(
    door: Door, monkeypatch: pytest.MonkeyPatch
) -> None:
    door.server.put(OUTBOX, draft("Outbox held", QUESTION, message_id="<held@med.example.edu>"), ("\\Seen",))
    full(door)
    full(door)
    assert door.subjects(door.world.folders.scheduled) == ["Outbox held"]
    back = cancel(door)
    door.server.folders[DRAFTS].messages[back].flags.add("\\Flagged")
    full(door, scheduled_check=False)  # the Scheduled check has not run yet: its row still says "scheduled"
    killed(door, monkeypatch, moved=False, scheduled_check=False)
    assert door.subjects(DRAFTS) == ["Outbox held"] and "\\Flagged" not in door.server.flags(DRAFTS, back)
    for _ in range(4):
        full(door)
    assert door.subjects(DRAFTS) == [], "her flag still counted: taken"
    assert door.subjects(door.world.folders.scheduled) == ["Outbox held"]
    assert door.notices().count("Taken from Drafts: Outbox held") == 1 and not untrue(door)


@pytest.mark.parametrize("cancelled", [False, True], ids=["fresh", "after-cancel"])
def test_a_cut_taking_the_intake_then_set_aside_is_told_as_taken(
    door: Door, monkeypatch: pytest.MonkeyPatch, cancelled: bool
) -> None:
    mid = "<two-mentors@med.example.edu>"
    if cancelled:
        door.save(draft("Sepsis papers", QUESTION, message_id=mid))
        for _ in range(3):
            full(door)
        del door.server.folders[DRAFTS].messages[cancel(door)]
        full(door)
    two = draft("Sepsis papers", QUESTION, message_id=mid).replace(
        b"\r\nSubject:", b"\r\nCc: Dr. Ben Okafor <bokafor@hospital.example.org>\r\nSubject:"
    )  # to two mentors: the intake refuses it
    door.save(two)
    full(door)
    killed(door, monkeypatch, moved=True)
    for _ in range(3):
        full(door)
    assert door.subjects(door.world.folders.needs_attention) == ["Sepsis papers"]
    assert door.notices()[-1] == "Taken from Drafts: Sepsis papers" and not untrue(door), door.notices()


def test_a_cancelled_draft_she_sent_herself_then_flagged_and_cut_is_not_told_not_taken(
    door: Door, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = Seen()
    door.save(draft("Sepsis papers", QUESTION, message_id="<sent-herself@med.example.edu>"))
    for _ in range(3):
        full(door, seen)
    back = cancel(door)
    full(door, seen)
    door.server.put(door.world.folders.sent, door.server.messages(DRAFTS)[back], ("\\Seen",))  # Send in her program
    full(door, seen)
    door.server.folders[DRAFTS].messages[back].flags.add("\\Flagged")
    full(door, seen)
    killed(door, monkeypatch, moved=True)
    for _ in range(4):
        full(door, seen)
    assert door.subjects(OUTBOX) == [] and door.subjects(door.world.folders.scheduled) == [], "never a second time"
    assert door.subjects(door.world.folders.needs_attention) == ["Sepsis papers"]
    assert "Not sent again: Sepsis papers" in door.notices() and not untrue(door), door.notices()


EDITED = QUESTION.replace("Best,", "P.S. I can also send my notes beforehand.\n\nBest,")


@pytest.mark.parametrize(
    "again", [EDITED.replace("my notes", "my notes and the slides"), EDITED], ids=["edited-again", "same-text"]
)
def test_after_cancel_an_edit_flagged_and_taken_a_later_save_of_it_is_a_copy(door: Door, again: str) -> None:
    """Taken, held, taken back with `cancel`; she edits it (the same Message-ID, another text: kept under a key of
    its own) and flags it: taken. Her compose window, still open, saves it again, flagged: that is a copy of the
    taking, not hers again because the first was cancelled (both versions were held, and both went)."""
    mid = "<edited-after-cancel@med.example.edu>"
    scheduled = door.world.folders.scheduled
    door.save(draft("Sepsis papers", QUESTION, message_id=mid))
    for _ in range(3):
        full(door)
    del door.server.folders[DRAFTS].messages[cancel(door)]
    full(door)
    door.save(draft("Sepsis papers", EDITED, message_id=mid))  # her edit, flagged
    for _ in range(3):
        full(door)
    assert door.subjects(scheduled) == ["Sepsis papers"] and door.subjects(DRAFTS) == []
    door.save(draft("Sepsis papers", again, message_id=mid))  # the compose window's later save, flagged
    for _ in range(4):
        full(door)
    assert door.subjects(scheduled) == ["Sepsis papers"], "one version held: one goes"
    assert door.notices().count("Taken from Drafts: Sepsis papers") == 2
    assert "Not taken again: Sepsis papers" in door.notices()


def test_an_old_copy_set_aside_is_no_proof_that_a_cut_taking_was_done(
    door: Door, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy with the same Message-ID sits in Needs attention from before; the held one is taken back, flagged, and
    the agent stopped after the flag came off; then she deleted the draft. It was never taken: "Not taken", not
    "Taken" (the old copy counted as the taking's message)."""
    mid = "<old-copy@med.example.edu>"
    door.save(draft("Sepsis papers", QUESTION, message_id=mid))
    for _ in range(3):
        full(door)
    door.server.put(OUTBOX, draft("Sepsis papers", QUESTION, message_id=mid), ("\\Seen",))  # a copy, set aside
    full(door)
    assert door.subjects(door.world.folders.needs_attention) == ["Sepsis papers"]
    back = cancel(door)
    full(door)
    door.server.folders[DRAFTS].messages[back].flags.add("\\Flagged")
    full(door)
    killed(door, monkeypatch, moved=False)
    del door.server.folders[DRAFTS].messages[back]  # she deleted the draft meanwhile
    for _ in range(4):
        full(door)
    assert door.notices().count("Taken from Drafts: Sepsis papers") == 1, door.notices()
    assert untrue(door), "a taking never done is told: Not taken"


@pytest.mark.parametrize("she_deleted", [False, True], ids=["draft-still-there", "draft-deleted"])
def test_another_message_with_its_message_id_set_aside_is_no_proof_of_a_cut_taking(
    door: Door, monkeypatch: pytest.MonkeyPatch, she_deleted: bool
) -> None:
    """The agent stopped after it took the flag off; meanwhile another message with the draft's Message-ID (an edit
    to two mentors) was refused in the Outbox. That was taken for the taking's message: "Taken" told, and the draft
    left in Drafts without its flag, never sent (found by a third hostile round)."""
    mid = "<shared-id@med.example.edu>"
    saved = door.save(draft("Sepsis papers", QUESTION, message_id=mid))
    full(door)
    killed(door, monkeypatch, moved=False)
    other = draft("Sepsis papers (Cc Ben)", EDITED, message_id=mid).replace(
        b"\r\nSubject:", b"\r\nCc: Dr. Ben Okafor <bokafor@hospital.example.org>\r\nSubject:"
    )
    door.server.put(OUTBOX, other, ("\\Seen",))
    if she_deleted:
        del door.server.folders[DRAFTS].messages[saved]
    for _ in range(5):
        full(door)
    if she_deleted:
        assert "Taken from Drafts: Sepsis papers" not in door.notices() and untrue(door), door.notices()
    else:
        assert door.subjects(DRAFTS) == [] and door.subjects(door.world.folders.scheduled) == ["Sepsis papers"]
