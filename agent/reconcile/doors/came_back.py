"""A labelled draft that comes back to the Outbox (the label door): Gmail's compose window, still open after the
agent took the draft from the Mentor Outbox, saves it once more with its labels, so a new message stands in Drafts
and in the Mentor Outbox again (``\\Draft``; under its Message-ID with an edit, or with a Message-ID of its own).
Taken in, it would reach the mentor a second time.

- Such a save is known by its Message-ID (a draft handed over by a door), or by the star door's rule, in one place:
  among the drafts to the same mentor handed over in the last day and stored before it, one whose text it is or is
  an edit of (:mod:`agent.rules.draft_edits`: words, quotes and signature aside), whatever its subject and other
  recipients. A new draft with the same subject and a text of its own is a message of its own, and goes.
- Only while the message taken is on its way or sent: a draft whose message was cancelled is hers again.
- It is set aside in Needs attention, never taken; the student is told once per message taken (later saves of it
  follow the first there, and the log says so).
"""

from __future__ import annotations

import hashlib
import logging

from agent.logs import named
from agent.mail.port import HeaderInfo
from agent.mail.session import MessageGone
from agent.reconcile.context import World
from agent.reconcile.doors.drafts import RECOGNISE_FOR, to_mentor
from agent.rules.draft_edits import is_edit, signature, word_prints
from agent.rules.envelope import Envelope
from agent.store import taken_drafts
from agent.store.ledger import DONE, OPEN_STATES, Row
from agent.store.taken_drafts import HANDED_OVER, TAKEN, Stored

log = logging.getLogger("mentor_agent.drafts")
TOLD = "label draft came back"  # the student was told a save of this message came back (once)


def remember(world: World, envelope: Envelope, key: str, raw: bytes, stored: Stored) -> None:
    """A draft was taken in from the Outbox under ``key`` (where it stood there: ``stored``, its UIDVALIDITY and
    UID): its later saves are to be known by its mentor and its words, as the star door keeps its own (``draft
    taken as``)."""
    prints = word_prints(raw)
    taken_drafts.remember(world.ledger, to_mentor(world, envelope), key, world.now(), prints, stored)


def taken_before(world: World, envelope: Envelope, raw: bytes, stored: Stored) -> Row | None:
    """The message this draft in the Outbox (standing at ``stored``: UIDVALIDITY, UID) is a later save of (None: a
    draft of its own). A later save has a higher UID than the one taken (never ordered by the INTERNALDATEs: a
    client may APPEND with its own clock)."""
    ledger = world.ledger
    key = envelope.key if envelope.message_id and ledger.logged(HANDED_OVER, envelope.key) else None
    if key is None:
        signatures = [to_mentor(world, envelope), signature(envelope)]
        taken = [
            (kept_key, kept)
            for kept_key, kept, at in taken_drafts.recall(
                ledger, signatures, world.now() - RECOGNISE_FOR, outbox=False, done=HANDED_OVER
            )
            # the star door's takings are the star door's (doors.across: a copy only while it stands in Drafts too)
            if not ledger.logged(TAKEN, kept_key) and (at is None or at[0] != stored[0] or stored[1] > at[1])
        ]
        words = word_prints(raw) if taken else ""
        key = next((kept_key for kept_key, kept in taken if kept is None or is_edit(kept, words)), None)
    row = ledger.get(key) if key else None
    return row if row is not None and (row.state in OPEN_STATES or row.state == DONE) else None


async def set_aside(world: World, info: HeaderInfo, envelope: Envelope, taken: Row) -> None:
    folders = world.folders
    subject = taken.subject or envelope.subject or "(no subject)"
    where = "already sent" if taken.state == DONE else f"{taken.state}, in {taken.folder}"
    why = "its Message-ID" if envelope.message_id and envelope.key == taken.key else "same mentor, similar text"
    # Told once for the message taken (its mark logged when the notice is in her mailbox, by whichever pass tells
    # it), under an id of that message: owed before the move (a lost answer to it, or a stop right after it, still
    # tells her); a later save while it is owed joins it (her mail program may replace a save by the next), so it is
    # one notice, owed while any of its saves is there
    made = "came-back-" + hashlib.sha256(taken.key.encode()).hexdigest()[:24]
    notice = None
    if not world.ledger.logged(TOLD, taken.key):
        notice = world.owe(
            f"Not taken again: {subject}",
            [
                f"The draft “{envelope.subject or '(no subject)'}” came back to your {folders.outbox}; it looks like a "
                f"save of “{subject}”, which mentor-agent had taken ({why}). It was not taken a second time; the "
                f"message taken is {where}.",
                f"This save is in {folders.needs_attention} (later saves of it go there too): delete it, and close "
                "the compose window without saving. A message of its own (its own text) is taken as ever.",
            ],
            taken.message_id,
            made=made,
            while_in=(folders.needs_attention, envelope.key, info.uid),  # its saves all gone: nothing to tell
            told_log=(TOLD, taken.mentor, taken.key, envelope.subject or ""),
        )
    placed = None
    if notice is not None:
        placed = await world.move_owed(folders.outbox, info.uid, folders.needs_attention, notice)
        if placed is None:
            return  # gone from the Outbox meanwhile
    else:
        try:
            await world.imap(world.mailbox.move, folders.outbox, info.uid, folders.needs_attention)
        except MessageGone:
            return
    log.warning(
        "%s: a later save of its draft came back to %s; not taken again: to %s",
        named(taken.key, subject),
        folders.outbox,
        folders.needs_attention,
    )
    if placed is not None:
        await world.tell(placed)
