"""After a crash or a restart: finish what was started (see :mod:`agent.reconcile.delivery`).

``queued`` goes back to ``claimed`` (or counts as ``sending`` after a machine restart), ``claimed`` is sent
again (or found back where it was), ``sending`` is in doubt unless the provider's copy in Sent proves it was
accepted, and ``accepted`` is filed in Sent.
"""

from __future__ import annotations

import logging

from agent.mail.session import MailboxError
from agent.reconcile.attention import attention
from agent.reconcile.context import World
from agent.reconcile.events import Cancelled, publish
from agent.reconcile.sent_filing import file_sent
from agent.store.ledger import ACCEPTED, CANCELLED, CLAIMED, NEW, QUEUED, SCHEDULED, SENDING, Row

log = logging.getLogger("mentor_agent.delivery")


async def recover(world: World) -> None:
    """Finish what a crash interrupted (see the module docstring)."""
    ledger = world.ledger
    folders = world.folders
    queued = ledger.in_states(QUEUED)
    if queued:
        # Not yet marked sending: never handed to SMTP, unless the machine restarted and lost that mark.
        after_reboot = ledger.queued_before_reboot()
        with ledger.transaction():
            for row in queued:
                ledger.update(row.key, state=SENDING if after_reboot else CLAIMED)
        if after_reboot:
            log.warning("%d message(s) were next in line when the machine stopped: treated as in doubt", len(queued))
    for row in ledger.in_states(CLAIMED):
        uid = await world.locate(folders.sending, row.key, row.uid if row.folder == folders.sending else None)
        if uid is not None:
            ledger.update(row.key, folder=folders.sending, uid=uid)
            continue  # planned again below: it was never handed to SMTP, so it is safe to send
        origin = row.folder if row.folder and row.folder != folders.sending else folders.scheduled
        back = await world.locate(origin, row.key, None)
        if back is not None:
            ledger.update(row.key, state=SCHEDULED if row.mentor else NEW, folder=origin, uid=back)
        else:
            ledger.update(row.key, state=CANCELLED, detail="gone before it was sent")
            publish(Cancelled(row.key, "gone before it was sent"))
    by_item: dict[str, list[Row]] = {}
    for row in ledger.in_states(SENDING):
        by_item.setdefault(row.item or row.key, []).append(row)
    for item, rows in by_item.items():
        # A copy in Sent that the provider filed proves the server accepted it ("always": it never files).
        filed = set() if world.settings.smtp.file_in_sent == "always" else await world.in_sent([item], wait=False)
        if filed:
            # The provider filed it in Sent: the server did accept it.
            sent_at = world.now()
            with ledger.transaction():
                for row in rows:
                    ledger.update(row.key, state=ACCEPTED, sent_at=sent_at)
                if rows[0].mentor:
                    ledger.add_item(rows[0].mentor, item, sent_at, [m for r in rows for m in (r.key, r.message_id)])
            await file_sent(world, [ledger.get(r.key) or r for r in rows], None)
            continue
        await attention(world, rows, "mentor-agent stopped while the mail server was receiving it", doubt=True)
    accepted: dict[str, list[Row]] = {}
    for row in ledger.in_states(ACCEPTED):
        accepted.setdefault(row.item or row.key, []).append(row)
    for rows in accepted.values():
        try:
            await file_sent(world, rows, None)
        except MailboxError as error:
            log.warning("could not file %s in Sent yet: %s", rows[0].item, error)
