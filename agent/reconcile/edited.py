"""A message she changed after the agent decided it: no longer the message the plan was made for.

Her mail program saves an edit of a held message as a new copy (the same Message-ID, other content). Where the
agent cannot keep the plan for it (the edit is to someone else, has a mistake, or is found only as it is about to
go), the message goes back to the Mentor Outbox and is taken in afresh there: paced by whom it is to now, told or
refused as any message put there. It never goes to the old recipients with the new ones in its header.
"""

from __future__ import annotations

import logging

from agent.logs import named
from agent.mail.session import MessageGone
from agent.reconcile.context import World
from agent.reconcile.events import Cancelled, publish
from agent.store.ledger import CANCELLED, Row

log = logging.getLogger("mentor_agent.intake")


async def taken_in_again(world: World, row: Row, folder: str, uid: int, content: str, why: str) -> None:
    """Move ``row``'s changed message (at ``uid`` in ``folder``; ``content``: its fingerprint now) to the Outbox and
    cancel the row, with ``why``. Moved first: a kill before the ledger says so leaves it in the Outbox, taken in there
    as a message of its own (its content differs from the row's); the row is then cancelled as gone from ``folder``.
    The row keeps the new fingerprint, so that the intake takes the copy as this message again, afresh."""
    try:
        await world.imap(world.mailbox.move, folder, uid, world.folders.outbox)
    except MessageGone:
        return
    world.ledger.update(
        row.key, state=CANCELLED, folder=world.folders.outbox, uid=None, fingerprint=content, detail=why
    )
    world.ledger.log("cancelled", mentor=row.mentor, message=row.key, detail=why)
    log.info("%s: %s", named(row.key, row.subject), why)
    publish(Cancelled(row.key, why))
