"""After a crash or a restart: finish what was started (see :mod:`agent.reconcile.delivery`).

``queued`` goes back to ``claimed`` (or counts as ``sending`` after a machine restart), ``claimed`` is sent
again (or found back where it was; several of one mentor's, one digest, go back to Scheduled to go as one
again), ``sending`` is in doubt unless the provider's copy in Sent proves it was accepted, and ``accepted`` is
filed in Sent.

A release split into several e-mails is taken part by part (the parts' marks kept on disk,
:mod:`agent.reconcile.digest_delivery`): the messages in accepted parts are filed in Sent with every such part,
those in the part that was in flight are in doubt, and those in parts never started go back to Scheduled, to go
again as one digest under the mentor's rules (:func:`agent.reconcile.digest_delivery.back_to_scheduled`), never
one e-mail each at once.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from agent.mail.session import MailboxError
from agent.reconcile.attention import attention
from agent.reconcile.context import World
from agent.reconcile.digest_delivery import (
    PART_ACCEPTED,
    PART_PLANNED,
    Part,
    back_to_scheduled,
    divide,
    forget,
    in_own_part,
    load_parts,
    mark_part,
    record_received,
)
from agent.reconcile.doors.sent_herself import finish_cancels
from agent.reconcile.events import Cancelled, publish
from agent.reconcile.sent_filing import file_sent
from agent.reconcile.went_after_all import tell_owed
from agent.store.ledger import ACCEPTED, CANCELLED, CLAIMED, NEW, QUEUED, SCHEDULED, SENDING, Row

log = logging.getLogger("mentor_agent.delivery")


# What cut a send off, as she is told it. At a process's first session it was a stop, or a connection that dropped
# before it (the daemon stopped before it could reconnect); at a later one, a dropped connection.
STOPPED, DROPPED = "mentor-agent stopped (or its connection dropped)", "a connection dropped"


async def recover(world: World, *, after_stop: bool = True) -> None:
    """Finish what a crash interrupted (see the module docstring). ``after_stop``: the first session of this process;
    later ones follow a dropped connection, and her notices say so (the daemon did not stop: STOPPED, DROPPED)."""
    cut = STOPPED if after_stop else DROPPED
    ledger = world.ledger
    folders = world.folders
    queued = ledger.in_states(QUEUED)
    if queued:
        # Not yet marked sending: never handed to SMTP, unless the machine restarted and lost that mark.
        after_reboot = ledger.queued_before_reboot()
        with ledger.transaction():
            for row in queued:
                if after_reboot:  # when it was handed to SMTP, if ever, is lost: now, the safe side
                    ledger.update(row.key, state=SENDING, sent_at=world.now())
                else:
                    ledger.update(row.key, state=CLAIMED)
        if after_reboot:
            log.warning("%d message(s) were next in line when the machine stopped: treated as in doubt", len(queued))
    in_sending: dict[str | None, list[Row]] = {}
    for row in ledger.in_states(CLAIMED):
        uid = await world.locate(folders.sending, row.key, row.uid if row.folder == folders.sending else None)
        if uid is not None:
            ledger.update(row.key, folder=folders.sending, uid=uid)
            in_sending.setdefault(row.mentor, []).append(replace(row, folder=folders.sending, uid=uid))
            continue  # it was never handed to SMTP, so it is safe to send
        origin = row.folder if row.folder and row.folder != folders.sending else folders.scheduled
        back = await world.locate(origin, row.key, None)
        if back is not None:
            ledger.update(row.key, state=SCHEDULED if row.mentor else NEW, folder=origin, uid=back)
        else:
            ledger.update(row.key, state=CANCELLED, detail="gone before it was sent")
            publish(Cancelled(row.key, "gone before it was sent"))
    # A pass sends at most one release to each mentor: several of hers left claimed were one digest. Claimed
    # again, each would go as an e-mail of its own; back in Scheduled, they go again as one (a single message
    # stays claimed and goes first).
    together = [row for mentor, rows in in_sending.items() if mentor and len(rows) > 1 for row in rows]
    await back_to_scheduled(world, together, f"not sent yet: {cut} before it went; it goes again")
    by_item: dict[str, list[Row]] = {}
    for row in ledger.in_states(SENDING):
        by_item.setdefault(row.item or row.key, []).append(row)
    for item, rows in by_item.items():
        parts = load_parts(world, item)
        if parts is not None and len(parts) > 1:
            await _recover_split(world, item, rows, parts, cut)
            continue
        # A copy in Sent that the provider filed proves the server accepted it ("always": it never files).
        filed = set() if world.settings.smtp.file_in_sent == "always" else await world.in_sent([item], wait=False)
        if filed:
            # The provider filed it in Sent: the server did accept it.
            await _accepted(world, item, rows, [])
            continue
        await attention(world, rows, f"{cut} while the mail server was receiving it", doubt=True)
    await tell_owed(world)  # a notice that a stop kept from her (agent.reconcile.went_after_all)
    await finish_cancels(world)  # a held door message she sent herself (agent.reconcile.doors.sent_herself)
    accepted: dict[str, list[Row]] = {}
    for row in ledger.in_states(ACCEPTED):
        accepted.setdefault(row.item or row.key, []).append(row)
    for rows in accepted.values():
        try:
            await file_sent(world, rows, None)
        except MailboxError as error:
            log.warning("could not file %s in Sent yet: %s", rows[0].item, error)


async def _accepted(world: World, item: str, rows: list[Row], parts: list[Part]) -> None:
    """Proved accepted after all: recorded as sent (what the mentor received) and filed in Sent."""
    ledger = world.ledger
    sent_at = world.now()
    with ledger.transaction():
        for row in rows:
            ledger.update(row.key, state=ACCEPTED, sent_at=sent_at)
        if rows[0].mentor:
            record_received(world, rows[0].mentor, item, sent_at, rows, [p.message_id for p in parts], follow_up=False)
    await file_sent(world, [ledger.get(r.key) or r for r in rows], None)


async def _recover_split(world: World, item: str, rows: list[Row], parts: list[Part], cut: str) -> None:
    """A split release that was going out when the daemon stopped (or the connection dropped: ``cut``), taken part by
    part (see the module docstring).

    The parts go one after another, each marked on disk before and after: a part the provider filed in Sent was
    accepted, and so was every part before it; after the last accepted part, one marked as being sent is in doubt
    and the rest were never handed to SMTP.
    """
    look = world.settings.smtp.file_in_sent != "always"
    found = await world.in_sent([p.message_id for p in parts], wait=False) if look else set()
    done = 1 + max((i for i, p in enumerate(parts) if p.state == PART_ACCEPTED or p.message_id in found), default=-1)
    for index in range(done):
        if parts[index].state != PART_ACCEPTED:
            mark_part(world, item, index, PART_ACCEPTED)  # what file_sent files
    sent, in_doubt, fresh = divide(rows, parts, done)
    if done < len(parts) and parts[done].state == PART_PLANNED:  # the next part never began either
        fresh += [row for row in in_doubt if row.key in parts[done].keys]
        in_doubt = [row for row in in_doubt if row.key not in parts[done].keys]
    if fresh:
        log.info(
            "%d of %d e-mails of a split release went before %s; %d message(s) never handed to the mail server go "
            "again",
            done,
            len(parts),
            cut,
            len(fresh),
        )
        # Each stays ``sending`` until it is back in Scheduled: a crash meanwhile brings it here again.
        await back_to_scheduled(world, fresh, f"not sent yet: {cut} before it went; it goes again")
    if in_doubt:
        number = done + 1
        in_doubt = in_own_part(world, item, in_doubt, done)
        await attention(
            world,
            in_doubt,
            f"{cut} while the mail server was receiving e-mail {number} of the {len(parts)} "
            "this release was split into",
            doubt=True,
        )
    if sent:
        await _accepted(world, item, sent, parts[:done])
    else:
        for part in parts:
            forget(world, part.message_id)
