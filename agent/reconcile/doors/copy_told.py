"""What the star door tells the student of a draft that looks like one taken before (a copy that "came back"), and
what it does to her star (:mod:`agent.reconcile.doors.drafts` finds the copy).

- A message cancelled (``mentor-agent cancel`` puts it back in Drafts) is hers again: no copy of anything, until she
  flags it again and it is taken: then a later save of it is a copy of that taking.
- The one taken must be where the ledger says (a message moved out of Scheduled by hand, the ledger a step behind):
  until it is, nothing is claimed and her star stays as she left it.
- One notice for the saves of a compose window: a copy with the text already told of, flagged within
  ``TELL_AGAIN`` of that notice, keeps its star (never taken off unsaid) until she is told again; a flagged copy
  with another text is told at once. A star is taken off only in a notice that says so.
- The notice is titled with THIS draft's subject and names the one taken, when it was taken and why this one was
  not, and how to send it as a message of its own (move it to the Mentor Outbox).
"""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

from agent.logs import named
from agent.mail.port import HeaderInfo
from agent.mail.session import MailboxError
from agent.reconcile.context import World
from agent.rules.draft_edits import word_prints
from agent.rules.envelope import Envelope
from agent.store import taken_drafts
from agent.store.answers import last_detail
from agent.store.ledger import CANCELLED, DONE, OPEN_STATES, Row

log = logging.getLogger("mentor_agent.drafts")
TELL_AGAIN = timedelta(minutes=10)  # a copy flagged this long after the last word about it is told of again


async def tell_copy(
    world: World, folder: str, info: HeaderInfo, envelope: Envelope, taken: str, why: str, first_look: bool
) -> bool:
    """The draft ``info`` looks like the one taken under ``taken`` (``why``): False when it is hers after all (that
    message was cancelled); else True, and she is told as the rules above say."""
    row = world.ledger.get(taken)
    if row is not None and row.state == CANCELLED:
        row = _taken_again(world, taken, row)
        if row is None:
            return False  # cancelled: back in Drafts, hers again
    flagged = "\\Flagged" in info.flags
    if not (first_look or flagged):
        return True
    if row is not None and row.state in OPEN_STATES:
        held = await world.locate(row.folder, row.key, row.uid) if row.folder else None
        if held is None:
            return True  # not where the ledger says (moved by hand, a cancel under way): nothing claimed yet
    raw = await world.imap(world.mailbox.fetch, folder, info.uid)
    if raw is None:
        return True  # saved again or deleted meanwhile
    text = hashlib.sha256(word_prints(raw).encode()).hexdigest()[:12]
    told = taken_drafts.told_back(world.ledger, taken)
    if told is not None:
        told_at, told_text = told
        if not flagged or (world.now() - told_at < TELL_AGAIN and told_text in (None, text)):
            return True  # told of this text already; her star kept until she is told again
    subject = (row.subject if row else last_detail(world.ledger, taken_drafts.TAKEN, taken)) or "(no subject)"
    unflagged = ""
    if flagged:
        try:
            await world.imap(world.mailbox.remove_flags, folder, info.uid, ["\\Flagged"])
            unflagged = " Its flag was taken off."
        except MailboxError as error:
            log.warning("%s: could not take the flag off its copy in Drafts: %s", named(taken, subject), error)
    taken_drafts.tell_back(world.ledger, taken, world.now(), text)
    if row is None:
        where = f"in your {world.folders.outbox}"
    else:
        where = "already sent" if row.state == DONE else f"{row.state}, in {row.folder}"
    log.info("%s: a copy came back to %s; it was taken before, so not again", named(taken, subject), folder)
    at = taken_drafts.taken_at(world.ledger, taken)
    when = f" at {at.astimezone(world.settings.student.zone):%H:%M}" if at is not None else ""
    this = envelope.subject or "(no subject)"
    await world.notify(
        f"Not taken again: {this}",
        [
            f"The draft “{this}” in {folder} looks like the draft “{subject}” taken{when} ({why}), so this one "
            f"was not sent. The one taken is {where}.{unflagged}",
            f"If it is a new message, move it to the {world.folders.outbox}: it is then taken as a message of its "
            "own. If it is the one already taken, delete it.",
        ],
        about=row.message_id if row else envelope.message_id,
    )
    return True


def _taken_again(world: World, key: str, row: Row) -> Row | None:
    """The message on its way again after ``row`` was cancelled: she flagged the draft again and it was taken (under
    a key of its text when she had edited it). None: nothing taken since, so the draft is hers again."""
    ledger = world.ledger
    if not taken_drafts.taken_since_cancelled(ledger, key):
        return None
    again = ledger.variants_of(key, *OPEN_STATES, DONE)  # an edited text is kept under a key of its own
    return again[-1] if again else None


async def newer_unflagged(world: World, folder: str, envelope: Envelope, uid: int) -> None:
    """A flagged save of a draft her program saved again since, without the flag: neither is taken. Told once for
    that flagged save, however many saves come after it."""
    subject = envelope.subject or "(no subject)"
    made = hashlib.sha256(f"{envelope.key}|{uid}".encode()).hexdigest()[:24]
    await world.notify_once(
        f"Not taken yet: {subject}",
        [
            f"You flagged “{subject}” in {folder}, and your mail program has saved a newer version of it since, "
            "without the flag. mentor-agent does not send the older text: flag the newest save to hand it over (and "
            "delete the older one).",
        ],
        f"newer-save-{made}",
        about=envelope.message_id,
    )


async def taking_void(world: World, folder: str, key: str, subject: str) -> None:
    """A draft being taken when the agent stopped (its flag already off) is neither in the Outbox nor in Drafts as
    it was (saved again with another text, or deleted): not taken, and she is told so, once, with the mark."""
    with world.ledger.transaction():
        world.ledger.log(taken_drafts.TAKING_VOID, message=key)
        notice = world.owe(
            f"Not taken: {subject or '(no subject)'}",
            [
                f"mentor-agent stopped while it was taking “{subject or '(no subject)'}” from {folder}, after it took "
                "its flag off. Since then the draft was saved again or deleted, so it was not taken and nothing was "
                "sent. If you still want to send it, flag it again.",
            ],
        )
    await world.tell(notice)
