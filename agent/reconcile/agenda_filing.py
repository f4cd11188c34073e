"""Filing the questions of an agenda once the e-mail that carried them left, or giving them back to e-mail.

Delivered first (each row's ``item`` is the carrying e-mail's Message-ID, which also lists them as members),
then moved from Scheduled to Sent (\\Seen) and ``done``, then the student is told: a crash in between finds
``item`` set and finishes the move, never sends them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from agent.crashpoints import crash_point
from agent.logs import named
from agent.mail.session import MessageGone
from agent.reconcile.context import World
from agent.rules import agenda
from agent.rules.policy import LoadedPolicy
from agent.store.delivered import add_members
from agent.store.ledger import ATTENTION, DONE, Row

log = logging.getLogger("mentor_agent.agenda")


def in_doubt(world: World, message_id: str) -> bool:
    """Whether the e-mail ``message_id`` (an invitation carrying an agenda) is in doubt: handed to the mail server,
    its answer lost. Its questions may have reached her with it: they are never e-mailed on a guess."""
    key = world.ledger.key_of(message_id, ATTENTION)
    return key is not None and world.ledger.logged("in doubt", key)


def release(world: World, rows: Sequence[Row], why: str) -> None:
    """Back to e-mail: the pacing engine takes them again, and they never go onto an agenda again."""
    with world.ledger.transaction():
        for row in rows:
            world.ledger.update(row.key, digest=None, told="", reason="", detail=f"{agenda.OFF} {why}")
            world.ledger.log("agenda off", mentor=row.mentor, message=row.key, detail=why)
    for row in rows:
        log.info("%s: not on an agenda any more (%s); goes by e-mail", named(row.key, row.subject), why)


async def file_questions(world: World, loaded: LoadedPolicy, rows: Sequence[Row], invitation: str) -> None:
    """The invitation that listed them left: they are delivered (recorded first), then filed in Sent."""
    ledger = world.ledger
    folders = world.folders
    fresh = [row for row in rows if row.item is None]
    if fresh:
        sent_at = world.now()
        with ledger.transaction():
            for row in fresh:
                ledger.update(row.key, item=invitation, sent_at=sent_at, detail="sent as the agenda of an invitation")
            add_members(ledger, invitation, [m for row in fresh for m in (row.key, row.message_id)])
            ledger.log("agenda sent", mentor=loaded.id, message=invitation, detail=f"{len(fresh)} question(s)")
        crash_point("agenda-delivered")
    for row in rows:
        uid = await world.locate(row.folder, row.key, row.uid) if row.folder and row.folder != folders.sent else None
        if uid is not None and row.folder is not None:
            try:
                new_uid = await world.imap(world.mailbox.move, row.folder, uid, folders.sent)
            except MessageGone:
                new_uid = None
            if new_uid is not None:
                await world.imap(world.mailbox.set_flags, folders.sent, new_uid, ["\\Seen"])
                world.filed.setdefault(folders.sent, set()).add(new_uid)
        ledger.update(row.key, state=DONE, folder=folders.sent, uid=None)
        log.info(
            "%s: sent to %s as the agenda of %s; filed in Sent", named(row.key, row.subject), loaded.name, invitation
        )
    if fresh:
        title, lines = agenda.filed_lines(loaded.name, [agenda.clean_subject(r.subject) for r in fresh])
        await world.notify(title, lines, about=invitation)
