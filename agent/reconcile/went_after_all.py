"""A send in doubt whose copy turns up in Sent later: it went.

A send is in doubt when the agent cannot tell whether the mail server took it (the line cut after DATA, the daemon
killed between hand-over and answer): it waits in Needs attention, counted as sent from its hand-over, until the
student decides (:mod:`agent.reconcile.attention`). The recovery looks in Sent for the provider's copy once, at
once; a provider that files it later (or the student, dragging it to Sent: "it went") settles the doubt then:

- still in Needs attention: it is recorded as sent when it was handed over (counted once: the count it had as a
  send in doubt becomes the count of a send), she is told it went after all, and a copy moved back to the Outbox
  from then on is set aside, not sent twice (the intake's "already sent");
- moved back to the Outbox already and held there or in Scheduled (not yet claimed for sending): the held copy is
  not sent. It goes to Needs attention, never deleted, and she is told. Its earlier hand-over already counts
  (:func:`agent.store.in_doubt_kept.keep_counting`), so nothing is counted again.

The copy is known by the message's own Message-ID, or by the e-mail the agent made of several (a digest's). A
mail program's own copy of what it handed over by SMTP (the submission door) proves nothing about the provider
and is left to :mod:`agent.reconcile.doors.early_copies`. A moved-back copy already claimed for sending is too late
to hold back: that is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from agent.logs import named
from agent.mail.port import HeaderInfo
from agent.mail.session import MessageGone
from agent.reconcile.context import World
from agent.reconcile.digest_delivery import record_received
from agent.reconcile.doors.submission import SUBMITTED
from agent.reconcile.events import Cancelled, publish
from agent.rules.envelope import Envelope
from agent.store.in_doubt import handed_over, kept_id
from agent.store.ledger import ATTENTION, CANCELLED, CLAIMED, DONE, NEW, QUEUED, SCHEDULED, SENDING, Row

log = logging.getLogger("mentor_agent.delivery")

IN_DOUBT = "in doubt"  # the ledger's log event of a send put in doubt (agent.reconcile.attention)
WENT = "went after all"  # logged when a send in doubt is proved gone by its copy in Sent


async def settle_doubts(world: World, found: Sequence[tuple[HeaderInfo, Envelope]]) -> None:
    """``found``: copies in Sent, not filed by the agent, whose Message-ID the ledger knows."""
    for _info, envelope in found:
        message_id = envelope.message_id
        if not message_id:
            continue
        rows = _in_doubt(world, message_id)
        if rows:
            await _went(world, message_id, rows)
            continue
        row = world.ledger.get(envelope.key)
        if row is not None and row.message_id == message_id and world.ledger.logged(IN_DOUBT, row.key):
            await _moved_back(world, row)


def _in_doubt(world: World, message_id: str) -> list[Row]:
    """The rows in doubt that the copy with ``message_id`` is of: the message itself, or the e-mail made of
    several (its release). A program's own copy of a message it handed over is none of them."""
    rows = [
        row
        for row in world.ledger.in_states(ATTENTION)
        if row.sent_at is not None and message_id in (row.message_id, row.item)
    ]
    return [row for row in rows if row.item == message_id or not world.ledger.logged(SUBMITTED, row.key)]


async def _went(world: World, message_id: str, rows: list[Row]) -> None:
    ledger = world.ledger
    first = rows[0]
    assert first.sent_at is not None  # _in_doubt
    handed = handed_over(first.sent_at)
    release = first.item or first.key
    with ledger.transaction():
        for row in rows:
            ledger.update(row.key, state=DONE, folder=world.folders.sent, uid=None, detail=WENT)
            ledger.log(WENT, mentor=row.mentor, message=row.key, detail=f"its copy is in {world.folders.sent}")
        counted = ledger.item_ids()
        if first.mentor and release not in counted and kept_id(release, handed) not in counted:
            record_received(world, first.mentor, release, handed, rows, [], follow_up=False)
    subjects = ", ".join(f"“{row.subject}”" for row in rows)
    log.info("%s: in doubt, went after all: its copy is in %s", named(first.key, first.subject), world.folders.sent)
    zone = world.settings.student.zone
    at = handed.astimezone(zone).strftime("%a %d %b %H:%M")
    await world.notify(
        f"Went after all: {first.subject}",
        [
            f"{subjects} did reach the mail server: a copy turned up in your {world.folders.sent} folder (your mail "
            "provider files what its server takes; or you put it there).",
            f"mentor-agent now counts it as sent when it was handed over ({at}) and will not send it again. Its copy "
            f"in {world.folders.needs_attention} can be deleted; moved back to the Outbox, it is set aside, not sent "
            "twice.",
        ],
        about=message_id,
    )


async def _moved_back(world: World, row: Row) -> None:
    """Her copy of a send in doubt, moved back to the Outbox, while its earlier try's copy turned up in Sent."""
    folders = world.folders
    if row.state in (CLAIMED, QUEUED, SENDING):
        log.warning(
            "%s: its earlier try, in doubt, went after all (its copy is in %s), but the copy moved back is already "
            "being sent",
            named(row.key, row.subject),
            folders.sent,
        )
        return
    if row.state not in (NEW, SCHEDULED) or not row.folder or row.uid is None:
        return
    held = await world.locate(row.folder, row.key, row.uid)
    if held is None:
        return  # gone meanwhile: the intake and follow_scheduled see to it
    try:
        # Moved first: a crash before the row is updated finds it gone from its folder, never sends it
        await world.imap(world.mailbox.move, row.folder, held, folders.needs_attention)
    except MessageGone:
        return
    why = "its earlier try went after all"
    world.ledger.update(row.key, state=CANCELLED, folder=folders.needs_attention, uid=None, detail=why)
    world.ledger.log("cancelled", mentor=row.mentor, message=row.key, detail=why)
    world.ledger.log(WENT, mentor=row.mentor, message=row.key, detail=f"its copy is in {folders.sent}")
    log.warning("%s: %s (its copy is in %s): not sent again", named(row.key, row.subject), why, folders.sent)
    publish(Cancelled(row.key, why))
    subject = row.subject or "(no subject)"
    await world.notify(
        f"Not sent again: {subject}",
        [
            f"“{subject}” was in doubt, and you moved it back to {folders.outbox} to send it again. Its earlier try "
            f"did reach the mail server after all: a copy of it turned up in your {folders.sent} folder.",
            f"So mentor-agent will not send it a second time. The copy you moved back is in "
            f"{folders.needs_attention}: delete it. It counts in the agreement as sent when it was first handed over.",
        ],
        about=row.message_id,
    )
