"""A message a door handed over that the student sent herself too: Gmail's Send pressed in the compose window
(still open) on a labelled or starred draft, before the agent took it in or while it holds it.

Her mail program's copy of it is in Sent under its Message-ID, not filed by the agent: the mentor has it. The
history scan counts it as mail sent without the agent (``source = "sent-folder"``), and from then on:

- a message in the Outbox under that Message-ID (the draft still settling when she pressed Send) is not taken
  in: it goes to Needs attention, and she is told (:func:`set_aside_sent`);
- a message a door handed over that the agent holds (in the Outbox or in Scheduled, not yet claimed for sending)
  is not sent: the held copy goes to Needs attention (never deleted), its row is cancelled, and she is told
  (:func:`cancel_held`).

Told apart from the agent's own copy in Sent (filed only once SMTP accepted it: its row is claimed or done, and
the scan never reads what the agent filed) and from a mail program's early copy of what it handed over by SMTP
(the submission door: :mod:`agent.reconcile.doors.early_copies`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from agent.logs import named
from agent.mail.port import HeaderInfo
from agent.mail.session import MessageGone
from agent.reconcile.context import World
from agent.reconcile.doors.submission import SUBMITTED
from agent.reconcile.events import Cancelled, publish
from agent.rules.envelope import Envelope
from agent.store.answers import found_in_sent
from agent.store.ledger import CANCELLED, NEW, SCHEDULED
from agent.store.taken_drafts import HANDED_OVER

log = logging.getLogger("mentor_agent.drafts")


def already_sent(world: World, envelope: Envelope, found: Callable[[str], bool] | None = None) -> bool:
    """Whether mail under this Message-ID was found in Sent, sent without the agent (counted from there).
    ``found``: :func:`found_in_sent` asked for many at once (the intake's lookup)."""
    if not envelope.message_id:
        return False
    return found(envelope.message_id) if found is not None else found_in_sent(world.ledger, envelope.message_id)


async def set_aside_sent(world: World, info: HeaderInfo, envelope: Envelope) -> None:
    """The message in the Outbox was sent from her mail program already: to Needs attention, never sent again."""
    folders = world.folders
    try:
        await world.imap(world.mailbox.move, folders.outbox, info.uid, folders.needs_attention)
    except MessageGone:
        return
    why = "sent from your mail program (its copy is in Sent)"
    world.ledger.log("attention", message=envelope.key, detail=why)
    log.warning("%s: already %s: to %s", named(envelope.key, envelope.subject), why, folders.needs_attention)
    subject = envelope.subject or "(no subject)"
    await world.notify(
        f"Not sent again: {subject}",
        [
            f"“{subject}” was sent from your mail program (Send pressed there): its copy is in your {folders.sent} "
            f"folder, not filed by mentor-agent. So mentor-agent did not send it a second time.",
            f"Its copy from your {folders.outbox} is in {folders.needs_attention}: delete it. It counts in the "
            "agreement as sent.",
        ],
        about=envelope.message_id,
    )


async def cancel_held(world: World, found: Sequence[tuple[HeaderInfo, Envelope]], folder: str) -> set[str]:
    """``found``: copies in ``folder`` (Sent, or a folder named like it) whose Message-ID the ledger knows, not filed
    by the agent. Those of a door message the agent still holds, sent to its mentor: the held copy is not sent.
    Returns their Message-IDs (to be counted as sent from Sent)."""
    folders = world.folders
    cancelled: set[str] = set()
    for _info, envelope in found:
        row = world.ledger.get(envelope.key)
        if row is None or row.state not in (NEW, SCHEDULED) or not row.folder or row.uid is None:
            continue  # claimed or done: the copy may be the agent's own (or too late to hold back)
        written = {p.id for p in map(world.book.for_address, envelope.to + envelope.cc + envelope.bcc) if p}
        if row.mentor not in written:
            continue  # another message under its Message-ID (a program that reuses them): never proof it went
        if not world.ledger.logged(HANDED_OVER, row.key) or world.ledger.logged(SUBMITTED, row.key):
            continue  # not a door's draft (a program's early copy of a submission: early_copies)
        held = await world.locate(row.folder, row.key, row.uid)
        if held is None:
            continue  # gone meanwhile: follow_scheduled sees to it
        try:
            # Moved first: a crash before the row is updated finds it gone from its folder, never sends it
            await world.imap(world.mailbox.move, row.folder, held, folders.needs_attention)
        except MessageGone:
            continue
        world.ledger.update(
            row.key, state=CANCELLED, folder=folders.needs_attention, uid=None, detail="sent from her mail program"
        )
        world.ledger.log("cancelled", mentor=row.mentor, message=row.key, detail="sent from her mail program")
        log.warning(
            "%s: sent from her mail program (its copy is in %s) while held: the held copy not sent, to %s",
            named(row.key, row.subject),
            folder,
            folders.needs_attention,
        )
        publish(Cancelled(row.key, "sent from her mail program"))
        if envelope.message_id:
            cancelled.add(envelope.message_id)
        subject = row.subject or "(no subject)"
        await world.notify(
            f"Not sent again: {subject}",
            [
                f"“{subject}” was sent from your mail program (Send pressed there, its copy is in your {folder} "
                f"folder) while mentor-agent held it in {row.folder}. So mentor-agent will not send it a second time.",
                f"The copy it held is in {folders.needs_attention}: delete it. It counts in the agreement as sent.",
            ],
            about=row.message_id,
        )
    return cancelled
