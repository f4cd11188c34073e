"""A labelled draft that comes back to the Outbox (the label door): Gmail's compose window, still open after the
agent took the draft from the Mentor Outbox, saves it once more with its labels, so a new message stands in Drafts
and in the Mentor Outbox again (``\\Draft``; under its Message-ID with an edit, or with a Message-ID of its own).
Taken in, it would reach the mentor a second time.

- Such a save is known by its Message-ID (a draft handed over by a door), or by its recipients and subject among
  the drafts handed over through the Outbox in the last day (as the star door knows its own copies in Drafts).
- Only while the message taken is on its way or sent: a draft whose message was cancelled is hers again.
- It is set aside in Needs attention, never taken; the student is told once per message taken (later saves of it
  follow the first there, and the log says so).
"""

from __future__ import annotations

import logging
from datetime import datetime

from agent.logs import named
from agent.mail.port import HeaderInfo
from agent.mail.session import MessageGone
from agent.reconcile.context import World
from agent.reconcile.doors.drafts import RECOGNISE_FOR
from agent.rules.draft_edits import signature
from agent.rules.envelope import Envelope
from agent.store.answers import last_detail
from agent.store.ledger import DONE, OPEN_STATES, Row
from agent.store.taken_drafts import HANDED_OVER

log = logging.getLogger("mentor_agent.drafts")
TAKEN_AS = "label draft taken as"  # message: the draft's signature, detail: "key\nwhen" (as the star door keeps)
TOLD = "label draft came back"  # the student was told a save of this message came back (once)


def remember(world: World, envelope: Envelope, key: str) -> None:
    """A draft was taken in from the Outbox under ``key``: its later saves are to be known by who and what."""
    world.ledger.log(TAKEN_AS, message=signature(envelope), detail=f"{key}\n{world.now().isoformat()}")


def taken_before(world: World, envelope: Envelope) -> Row | None:
    """The message this draft in the Outbox is a later save of (None: a draft of its own)."""
    ledger = world.ledger
    key = envelope.key if envelope.message_id and ledger.logged(HANDED_OVER, envelope.key) else None
    if key is None:
        detail = last_detail(ledger, TAKEN_AS, signature(envelope))
        if detail:
            taken, _, when = detail.partition("\n")
            try:
                key = taken if datetime.fromisoformat(when) >= world.now() - RECOGNISE_FOR else None
            except ValueError:
                key = None
    row = ledger.get(key) if key else None
    return row if row is not None and (row.state in OPEN_STATES or row.state == DONE) else None


async def set_aside(world: World, info: HeaderInfo, envelope: Envelope, taken: Row) -> None:
    folders = world.folders
    try:
        await world.imap(world.mailbox.move, folders.outbox, info.uid, folders.needs_attention)
    except MessageGone:
        return
    subject = taken.subject or envelope.subject or "(no subject)"
    log.warning(
        "%s: a later save of its draft came back to %s; not taken again: to %s",
        named(taken.key, subject),
        folders.outbox,
        folders.needs_attention,
    )
    if world.ledger.logged(TOLD, taken.key):
        return
    world.ledger.log(TOLD, mentor=taken.mentor, message=taken.key, detail=envelope.subject)
    where = "already sent" if taken.state == DONE else f"{taken.state}, in {taken.folder}"
    await world.notify(
        f"Not taken again: {subject}",
        [
            f"“{subject}” came back to your {folders.outbox}: your compose window saved the draft once more after "
            f"mentor-agent had taken it. It was not taken a second time; the message taken is {where}.",
            f"This save is in {folders.needs_attention} (later saves of it go there too): delete it, and close the "
            "compose window without saving. To send it as a message of its own, write it anew with another subject.",
        ],
        about=taken.message_id,
    )
