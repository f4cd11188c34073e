"""One record of what the doors took, whichever took it (issue 22, fourth hostile round): a message the intake took
from the Outbox (dropped there, or Gmail's label door) is known to the star door, and a draft the star door took is
known to the label door, so that a compose window's re-save through the other door is never sent a second time.

- Every message the intake takes in to a mentor is kept as the star door keeps its own (its recipients and subject,
  its words as short hashes, never her text: :func:`agent.store.taken_drafts.took_in`).
- A labelled draft back in the Outbox (``\\Draft``, and in Drafts too) that is a copy of one the star door took in
  the last day (its text the taken one or an edit of it, in doubt a copy) is set aside with the label door's
  notice, never taken (its own takings the label door knows itself: :mod:`agent.reconcile.doors.came_back`). One
  she moved from Drafts herself, as the star door's notice of a copy advises, is hers: taken.
"""

from __future__ import annotations

from agent.reconcile.context import World
from agent.reconcile.doors.drafts import RECOGNISE_FOR, drafts_folder, to_mentor
from agent.rules.draft_edits import signature, word_prints
from agent.rules.envelope import Envelope, parse_envelope
from agent.store import taken_drafts
from agent.store.ledger import DONE, OPEN_STATES, Row


async def taken_copy(world: World, envelope: Envelope, raw: bytes) -> Row | None:
    """The message (taken by the star door, on its way or sent) this labelled draft in the Outbox is a copy of.
    Only while the draft stands in Drafts too (Gmail's label put on it in the compose window): one she moved from
    Drafts to the Outbox herself is hers to send (the star door's notice of a copy tells her to do just that)."""
    signatures = [to_mentor(world, envelope), signature(envelope)]
    since = world.now() - RECOGNISE_FOR
    key = taken_drafts.copy_of(world.ledger, signatures, since, word_prints(raw), outbox=False)
    row = world.ledger.get(key) if key else None
    if row is None or not (row.state in OPEN_STATES or row.state == DONE) or not envelope.message_id:
        return None
    return row if await _in_drafts(world, envelope) else None


async def _in_drafts(world: World, envelope: Envelope) -> bool:
    drafts = await drafts_folder(world)
    return drafts is not None and await world.locate(drafts, envelope.key, None) is not None


def took_in(world: World, row: Row, raw: bytes) -> None:
    """The intake took ``row`` in from the Outbox: kept for the star door (a starred re-save in Drafts), by its
    recipients and subject (a message of the day with another subject is not compared with it). Only while the
    star door is open: the record is the star door's alone, and its words cost ~1 ms a message (a backlog of
    thousands pays it for nothing otherwise)."""
    if row.mentor is not None and world.settings.drafts.take_flagged:
        taken_drafts.took_in(world.ledger, signature(parse_envelope(raw)), row.key, world.now(), word_prints(raw))
