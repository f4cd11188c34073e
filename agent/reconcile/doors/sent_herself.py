"""A message a door handed over that the student sent herself too: Gmail's Send pressed in the compose window
(still open) on a labelled or starred draft, before the agent took it in or while it holds it.

Her mail program's copy of it is in Sent under its Message-ID, not filed by the agent: the mentor has it. The
history scan counts it as mail sent without the agent (``source = "sent-folder"``), and from then on:

- a message in the Outbox under that Message-ID (the draft still settling when she pressed Send) is not taken
  in: it goes to Needs attention, and she is told (:func:`set_aside_sent`);
- a message a door handed over that the agent holds (in the Outbox or in Scheduled, not yet claimed for sending)
  is not sent: the held copy goes to Needs attention (never deleted), its row is cancelled, and she is told
  (:func:`cancel_held`).

Crash safety: the row is marked before the held copy moves (:data:`CANCELLING`), so a stop in between is finished
at the next start (:func:`finish_cancels`), never read as her own cancel of it; its notice is owed in the ledger
until it is in her mailbox (:data:`TOLD`, under a Message-ID made from the row: never told twice); and a copy in
Sent read again after a stop is counted as hers however far the cancel had come (her send is counted with the mark:
she may delete that copy before the restart).

Told apart from the agent's own copy in Sent (filed only once SMTP accepted it: its row is claimed or done, and
the scan never reads what the agent filed) and from a mail program's early copy of what it handed over by SMTP
(the submission door: :mod:`agent.reconcile.doors.early_copies`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable, Sequence

from agent.logs import named
from agent.mail.port import HeaderInfo
from agent.mail.session import MessageGone
from agent.reconcile.context import World, aside_id
from agent.reconcile.doors.submission import SUBMITTED
from agent.reconcile.events import Cancelled, publish
from agent.reconcile.sent_counts import count_found, where_found
from agent.rules.addresses import normal_address
from agent.rules.draft_edits import is_edit, word_prints
from agent.rules.envelope import Envelope, same_subject_line
from agent.store.answers import found_in_sent, sent_to
from agent.store.in_doubt_kept import untold
from agent.store.ledger import CANCELLED, NEW, SCHEDULED, Row
from agent.store.taken_drafts import HANDED_OVER

log = logging.getLogger("mentor_agent.drafts")

CANCELLED_HERS = "sent from her mail program"  # a held door message's row, once its copy is in Needs attention
CANCELLING = "sent from her mail program: being set aside"  # ... marked before the held copy moves
TOLD = "sent from her mail program told"  # logged about the row once its notice is in her mailbox


def already_sent(world: World, envelope: Envelope, found: Callable[[str], bool] | None = None) -> bool:
    """Whether mail under this Message-ID was found in Sent, sent without the agent (counted from there).
    ``found``: :func:`found_in_sent` asked for many at once (the intake's lookup)."""
    if not envelope.message_id:
        return False
    if not (found(envelope.message_id) if found is not None else found_in_sent(world.ledger, envelope.message_id)):
        return False
    # A message to none of those it went to is another one under its Message-ID (a program that reuses them)
    counted_for = sent_to(world.ledger, envelope.message_id)
    return not counted_for or bool(counted_for & {normal_address(a) for a in envelope.recipients})


async def set_aside_sent(world: World, info: HeaderInfo, envelope: Envelope) -> None:
    """The message in the Outbox was sent from her mail program already: to Needs attention, never sent again."""
    folders = world.folders
    why = "sent from your mail program (its copy is in Sent)"
    subject = envelope.subject or "(no subject)"
    notice = world.owe(  # before the move: a lost answer to it, or a stop right after it, still tells her
        f"Not sent again: {subject}",
        [
            f"“{subject}” was sent from your mail program (Send pressed there): its copy is in your {folders.sent} "
            f"folder, not filed by mentor-agent. So mentor-agent did not send it a second time.",
            f"Its copy from your {folders.outbox} is in {folders.needs_attention}: delete it. It counts in the "
            "agreement as sent.",
        ],
        envelope.message_id,
        made=aside_id("sent-herself", envelope.key, info.uid),
        while_in=(folders.needs_attention, envelope.key, info.uid),
    )
    placed = await world.move_owed(folders.outbox, info.uid, folders.needs_attention, notice)
    if placed is None:
        return
    world.ledger.log("attention", message=envelope.key, detail=why)
    log.warning("%s: already %s: to %s", named(envelope.key, envelope.subject), why, folders.needs_attention)
    await world.tell(placed)


async def cancel_held(world: World, found: Sequence[tuple[HeaderInfo, Envelope]], folder: str) -> set[str]:
    """``found``: copies in ``folder`` (Sent, or a folder named like it) whose Message-ID the ledger knows, not filed
    by the agent. Those of a door message the agent still holds, sent to its mentor: the held copy is not sent.
    Returns their Message-IDs (to be counted as sent from Sent), those of a cancel a stop interrupted too."""
    ledger = world.ledger
    cancelled: set[str] = set()
    for info, envelope in found:
        row = ledger.get(envelope.key)
        if row is None:
            continue
        written = {p.id for p in map(world.book.for_address, envelope.to + envelope.cc + envelope.bcc) if p}
        if row.mentor not in written:
            continue  # another message under its Message-ID (a program that reuses them): never proof it went
        if row.state == CANCELLED and row.detail in (CANCELLING, CANCELLED_HERS):
            if envelope.message_id:  # read again after a stop: counted still (counting twice is not possible)
                cancelled.add(envelope.message_id)
            continue
        if row.state not in (NEW, SCHEDULED) or not row.folder or row.uid is None:
            continue  # claimed or done: the copy may be the agent's own (or too late to hold back)
        if not ledger.logged(HANDED_OVER, row.key) or ledger.logged(SUBMITTED, row.key):
            continue  # not a door's draft (a program's early copy of a submission: early_copies)
        held = await world.locate(row.folder, row.key, row.uid)
        if held is None:
            continue  # gone meanwhile: follow_scheduled sees to it
        if not same_subject_line(envelope.subject, row.subject) and not await _same_words(
            world, (row.folder, held), (folder, info.uid)
        ):
            continue  # another subject and other words: another message under its Message-ID, no proof it went
        # Marked first, and her send counted with it: a stop before the move is finished at the next start, never
        # read as her cancel, and her send counts even if she deletes its copy before then
        with ledger.transaction():
            ledger.update(row.key, state=CANCELLED, uid=held, detail=CANCELLING)
            ledger.log("cancelled", mentor=row.mentor, message=row.key, detail=CANCELLED_HERS)
            count_found(world, info, envelope, where_found(world, folder))
        if envelope.message_id:
            cancelled.add(envelope.message_id)
        await _set_aside(world, row.key, folder)
    return cancelled


async def _same_words(world: World, held: tuple[str, int], copy: tuple[str, int]) -> bool:
    """Whether the copy says what the held message says (:func:`agent.rules.draft_edits.is_edit`): her program's copy
    of it with the subject's typo fixed in the compose window before she pressed Send, say."""
    first = await world.imap(world.mailbox.fetch, *held)
    second = await world.imap(world.mailbox.fetch, *copy)
    return first is not None and second is not None and is_edit(word_prints(first), word_prints(second))


async def finish_cancels(world: World) -> None:
    """At start: finish each cancel a stop interrupted (its held copy to Needs attention), and tell each one
    whose notice she has not had yet."""
    for row in world.ledger.in_states(CANCELLED):
        if row.detail == CANCELLING:
            await _set_aside(world, row.key, world.folders.sent)
    for row in untold(world.ledger, (CANCELLED_HERS,), TOLD, state=CANCELLED):
        await _tell(world, row, world.folders.sent)


async def _set_aside(world: World, key: str, folder: str) -> None:
    """The held copy of a row marked :data:`CANCELLING` to Needs attention; then she is told."""
    folders = world.folders
    row = world.ledger.get(key)
    if row is None:
        return
    if row.folder and row.folder != folders.needs_attention:
        held = await world.locate(row.folder, row.key, row.uid)
        if held is not None:
            with contextlib.suppress(MessageGone):  # moved by her meanwhile: it is not sent all the same
                await world.imap(world.mailbox.move, row.folder, held, folders.needs_attention)
    world.ledger.update(row.key, folder=folders.needs_attention, uid=None, detail=CANCELLED_HERS)
    log.warning(
        "%s: sent from her mail program (its copy is in %s) while held: the held copy not sent, to %s",
        named(row.key, row.subject),
        folder,
        folders.needs_attention,
    )
    publish(Cancelled(row.key, CANCELLED_HERS))
    await _tell(world, row, folder, row.folder if row.folder != folders.needs_attention else None)


async def _tell(world: World, row: Row, folder: str, held_in: str | None = None) -> None:
    """Her notice of ``row``'s cancel (its copy found in ``folder``; the held copy was in ``held_in``), once: under
    a Message-ID made from the row, looked for before it is appended (one whose APPEND went unanswered, or a stop
    before its :data:`TOLD`, is not told twice)."""
    folders = world.folders
    made = hashlib.sha256(f"sent from her mail program\0{row.key}".encode()).hexdigest()[:24]
    subject = row.subject or "(no subject)"
    where = f"while mentor-agent held it in {held_in}" if held_in else "while mentor-agent held it"
    told = await world.notify_once(
        f"Not sent again: {subject}",
        [
            f"“{subject}” was sent from your mail program (Send pressed there, its copy is in your {folder} "
            f"folder) {where}. So mentor-agent will not send it a second time.",
            f"The copy it held is in {folders.needs_attention}: delete it. It counts in the agreement as sent.",
        ],
        f"{made}.held",
        about=row.message_id,
    )
    if told:
        world.ledger.log(TOLD, mentor=row.mentor, message=row.key)
