"""A mail program's own Sent copy of a message it handed to the agent by SMTP while the agent still holds it.

Programs that send through the agent file their own copy in Sent (at once, late, or never). While the message
waits (in the Outbox or in Scheduled) that copy would show it twice, and in Sent as if the mentor had it: it is
taken out of Sent, and the agent files the one copy once the mentor has the message (Sent filing looks for the
Message-ID before filing, so a copy filed late by the program is not doubled either). Such a copy never counts as
a message the mentor received: its Message-ID is the held one's, which the history scan knows. Only messages
that came through the submission door are touched; a copy whose message is not taken in yet is looked at again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from agent.logs import named
from agent.mail.port import HeaderInfo
from agent.mail.session import MessageGone
from agent.reconcile.context import World
from agent.reconcile.doors.submission import SUBMITTED
from agent.rules.envelope import Envelope
from agent.store.ledger import NEW, SCHEDULED

log = logging.getLogger("mentor_agent.submission")


async def take_out_early_copies(
    world: World, found: Sequence[tuple[HeaderInfo, Envelope]], again: Callable[[int], None]
) -> None:
    """``found``: Sent messages whose Message-ID the ledger knows; ``again(uid)``: read it on the next pass."""
    folder = world.folders.sent
    for info, envelope in found:
        if not world.ledger.logged(SUBMITTED, envelope.key):
            continue
        row = world.ledger.get(envelope.key)
        if row is None:
            again(info.uid)  # handed over, not taken in yet: its place is not known
        elif row.state in (NEW, SCHEDULED):
            try:
                await world.imap(world.mailbox.delete, folder, info.uid)
            except MessageGone:
                continue
            world.ledger.log("early copy", mentor=row.mentor, message=row.key, detail="taken out of Sent")
            log.info(
                "%s: your mail program filed it in Sent while it waits; taken out (filed once the mentor has it)",
                named(row.key, row.subject),
            )
