"""The label door's copy in Drafts leaves once the Outbox has taken the message in (hostile round on issue 22):
also for a draft labelled from the Drafts list long after it was saved (no new save, a6) and for one without a
Message-ID (a4). The door's passes on the in-memory mailbox, with a clock the test moves."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from agent.reconcile.intake import take_in_outbox
from tests.agent_process import OUTBOX
from tests.test_star_door_copies import DRAFTS, QUESTION, Door, draft

DRAFT = ("\\Draft", "\\Seen")


@pytest.fixture
def door(tmp_path: Path) -> Iterator[Door]:
    made = Door(tmp_path)
    made.run()
    try:
        yield made
    finally:
        made.world.ledger.close()


def labelled(door: Door, raw: bytes) -> None:
    """The label "Mentor Outbox" put on the draft (a copy in the Outbox), the Outbox taken in, the door's pass."""
    door.server.put(OUTBOX, raw, DRAFT, when=door.at)
    asyncio.run(take_in_outbox(door.world))
    door.run()


def test_a_draft_labelled_long_after_it_was_saved_leaves_drafts(door: Door) -> None:
    raw = draft("Written before lunch", QUESTION)
    door.save(raw, DRAFT)
    door.run()
    door.run(later=timedelta(minutes=11))  # the door has long stopped looking for its Outbox copy
    labelled(door, raw)
    assert door.subjects(DRAFTS) == [], "taken and held, yet still in Drafts: she could send it from there too"
    assert door.subjects(OUTBOX) == ["Written before lunch"]


def test_a_labelled_draft_without_a_message_id_leaves_drafts(door: Door) -> None:
    raw = b"\r\n".join(line for line in draft("No id", QUESTION).split(b"\r\n") if not line.startswith(b"Message-ID"))
    door.save(raw, DRAFT)
    door.run()
    labelled(door, raw)
    assert door.subjects(DRAFTS) == []
    assert door.subjects(OUTBOX) == ["No id"]
