"""What could not be sent: Needs attention with a notice (*in doubt* when it may have reached the mentor), or,
after a temporary failure, back to Scheduled to try again later. Nothing is retried from Needs attention."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import NamedTuple

from agent.logs import named
from agent.mail.session import MailboxError, MessageGone
from agent.reconcile import went_after_all
from agent.reconcile.context import World
from agent.reconcile.went_after_all import WENT
from agent.rules.notices import HOW_TO_STEER, notice_id
from agent.store.ledger import ATTENTION, SCHEDULED, SENDING, Row
from agent.store.rounds import MeetingStore

log = logging.getLogger("mentor_agent.delivery")

RETRY_LATER = timedelta(minutes=10)
OWED, IN_DOUBT, NOT_SENT = "owed", "in-doubt", "not-sent"  # Row.told of a row whose notice is still to be told
OWED_AFTER = "owed notices after"  # ledger meta: a try of the owed notices failed; the next one not before then
MOVED_BACK = "owed moved back "  # ledger meta: an owed in-doubt notice of a message moved back (owe_moved_back)
MAX_ROUNDS = 6  # transient failures: six rounds of retries about ten minutes apart, then Needs attention


async def attention(world: World, rows: Sequence[Row], why: str, *, doubt: bool) -> None:
    """Move to Needs attention and tell the student. Nothing is retried from there."""
    folders = world.folders
    for row in rows:
        detail = why
        if doubt and len(rows) > 1:  # the messages of one digest: one e-mail, so the mentor has all of them or none
            others = ", ".join(f"“{other.subject}”" for other in rows if other.key != row.key)
            detail = f"{why}; it went inside one digest e-mail together with {others}, all in doubt with it"
        uid = await world.locate(folders.sending, row.key, row.uid) if row.folder == folders.sending else row.uid
        source = folders.sending if row.folder == folders.sending else row.folder
        new_uid = None
        if uid is not None and source:
            try:
                new_uid = await world.imap(world.mailbox.move, source, uid, folders.needs_attention)
            except MessageGone:
                new_uid = None
        # In doubt, it keeps when it was handed to SMTP: it counts as sent to her until the student decides
        # (agent.store.in_doubt); any other message here has no sent_at.
        handed = _handed(world, row) if doubt else None
        # Owed until it is in her mailbox: a notice refused, cut or stopped before is told by a later pass, once.
        made = f"attention-{secrets.token_hex(16)}"  # kept in the row: a retry looks for this very notice
        owed = f"{OWED} {IN_DOUBT if doubt else NOT_SENT} {made}"
        world.ledger.update(
            row.key,
            state=ATTENTION,
            folder=folders.needs_attention,
            uid=new_uid,
            detail=detail,
            sent_at=handed,
            told=owed,
        )
        world.ledger.log("in doubt" if doubt else "attention", mentor=row.mentor, message=row.key, detail=detail)
        log.warning("%s: needs attention: %s", named(row.key, row.subject), detail)
        await _tell(world, replace(row, detail=detail), owed)


async def tell_owed(world: World) -> None:
    """Tell again what she is owed: the notices not known to be in her mailbox (an APPEND refused or cut, its answer
    lost, a stop before it): of Needs attention (here), of a send that went after all
    (:func:`agent.reconcile.went_after_all.tell_owed`), and any other (:meth:`World.tell_owed_notices`). Each is
    looked for first under its own id: told once. Run last in a pass; a try that fails leaves them owed, tried again
    RETRY_LATER on (a server that cuts every APPEND to her notices folder ends the session at most that often, after
    its work is done). Meanwhile each pass only looks for those whose APPEND may have reached her mailbox, so that one
    she files away soon after is not told twice."""
    after = world.ledger.meta_value(OWED_AFTER)
    now = world.now()
    waiting = bool(after) and now < datetime.fromisoformat(after or "") <= now + RETRY_LATER  # (a clock set back)
    told = True
    try:
        if waiting:
            await world.tell_owed_notices(look_only=True)
            await _found_told(world, world.ledger.owed_notices(OWED))
            return
        # Each kind in turn, one refused not holding back the others (a big one her full mailbox has no room for)
        told = await world.tell_owed_notices()
        told = await went_after_all.tell_owed(world) and told
        told = await _tell_moved_back(world, world.ledger.metas(MOVED_BACK)) and told
        for row in world.ledger.owed_notices(OWED):
            told = await _tell(world, row, row.told) and told
    except MailboxError as error:
        log.warning("could not tell the notices still owed: %s", error)
        told = waiting  # a look between tries: the back-off stands as it is
    if not told:
        world.ledger.set_meta(OWED_AFTER, (world.now() + RETRY_LATER).isoformat())  # the next try, RETRY_LATER on


async def _found_told(world: World, rows: Sequence[Row]) -> None:
    """The owed notices of Needs attention found in her mailbox (an APPEND whose answer was lost): told."""
    for row in rows:
        made = row.told.split(" ", 2)[2]
        if await world.locate(world.folders.notices, notice_id(world.settings.student.address, made), None) is not None:
            world.ledger.update(row.key, told="")


def owe_moved_back(world: World, old: Row) -> None:
    """``old``, in Needs attention with its notice still owed, is moved back to the Outbox by the student (its row
    starts afresh; called in the transaction that forgets it): an owed *in doubt* stays owed, kept apart from the row
    (the first hand-over may have reached the mentor, and it still counts in the pace), told by :func:`tell_owed` at
    the end of the pass; an owed *not sent* is dropped (she has acted on it)."""
    if not old.told.startswith(f"{OWED} {IN_DOUBT} "):
        return
    fields = {name: getattr(old, name) for name in _Moved._fields}
    world.ledger.set_meta(MOVED_BACK + old.told.split(" ", 2)[2], json.dumps(fields))


async def _tell_moved_back(world: World, moved: dict[str, str]) -> bool:
    """Tell what :func:`owe_moved_back` kept (``moved``: its ledger meta), once each; whether all of it is told."""
    for key, text in moved.items():
        owed = _Moved(**json.loads(text))
        copy = world.ledger.get(owed.key)  # the copy she moved back, if it is still known
        went = copy is not None and copy.detail.startswith(WENT)  # the first try went: she is told that instead
        if not went and not await _tell(world, owed, owed.told, keep=False):
            return False
        world.ledger.drop_meta(key)
    return True


class _Moved(NamedTuple):
    """What a notice owed for a message moved back to the Outbox tells (the fields of its row then)."""

    key: str
    subject: str
    recipients: list[str]
    mentor: str | None
    message_id: str
    detail: str
    told: str


async def _tell(world: World, row: Row | _Moved, owed: str, *, keep: bool = True) -> bool:
    """Tell the student that ``row`` is in Needs attention (``owed``: its Row.told while not yet told); whether it
    is in her mailbox now. ``keep``: the row is the ledger's, marked told once it is (else it was moved back)."""
    _, kind, made = owed.split(" ", 2)
    why = row.detail
    # A meeting invitation's offer is withdrawn once it is here: moved back, it would not go (never invited).
    offer = MeetingStore(world.ledger).offer_of_request(row.message_id) is not None
    if kind == IN_DOUBT:
        lines = [
            f"“{row.subject}” is IN DOUBT: it may or may not have reached {', '.join(row.recipients)}.",
            f"What happened: {why}.",
            "mentor-agent will not send it again by itself, so that nobody gets it twice. "
            + (
                f"Its meeting offer is withdrawn: if {', '.join(row.recipients)} answer it, you are told; "
                "moving it back to the Outbox will not send it. Propose the meeting again if you need to."
                if offer
                else "You have since moved it back to the Outbox, where it is a new message of its own."
                if not keep
                else "Check with the recipient or your Sent folder; to send it anyway, move it back to the Outbox."
            ),
        ]
        if row.mentor:  # agent.store.in_doubt
            lines.append(
                "It counts as sent in the pace agreed with your mentor (from when it was handed to the mail "
                "server), so your next message waits as it would after a sent one; moved back to the Outbox, "
                "it is a new message."
            )
        title = f"In doubt: {row.subject}"
    else:
        lines = [
            f"“{row.subject}” was not sent: {why}.",
            "It is in the Needs attention folder. "
            + (
                "Its meeting offer is withdrawn, so moving it back to the Outbox will not send it: once the "
                "problem is fixed, propose the meeting again."
                if offer
                else "Fix it and move it back to the Outbox to try again."
            ),
        ]
        title = f"Not sent: {row.subject}"
    try:
        told = await world.notify_once(title, lines, made, about=row.message_id)
    except MailboxError as error:  # the look for an earlier copy failed: no answer, so not appended
        log.warning("could not look for the notice %r: %s", title, error)
        return False
    if told and keep:
        world.ledger.update(row.key, told="")
    return told


def _handed(world: World, row: Row) -> datetime:
    """When the message in doubt was handed to SMTP: its ``sending`` mark's time, else now (the safe side)."""
    current = world.ledger.get(row.key)
    if current is not None and current.state == SENDING and current.sent_at is not None:
        return current.sent_at
    return world.now()


async def retry_later(world: World, rows: Sequence[Row], why: str) -> None:
    """A temporary failure: back to Scheduled to try again later, or to Needs attention after many rounds."""
    folders = world.folders
    attempts = max(row.attempts for row in rows) + 1
    if attempts >= MAX_ROUNDS:
        await attention(world, rows, f"the mail server kept failing ({why}); tried {attempts} times", doubt=False)
        return
    due = world.now() + RETRY_LATER
    for row in rows:
        uid = await world.locate(folders.sending, row.key, row.uid)
        new_uid = await world.imap(world.mailbox.move, folders.sending, uid, folders.scheduled) if uid else None
        if new_uid is None and uid is not None:
            new_uid = await world.locate(folders.scheduled, row.key, None)
        world.ledger.update(
            row.key,
            state=SCHEDULED,
            folder=folders.scheduled,
            uid=new_uid,
            attempts=attempts,
            due=due,
            detail=f"temporary failure: {why}",
        )
        world.ledger.log("retry", mentor=row.mentor, message=row.key, detail=why)
    log.warning(
        "%s: temporary send failure (%s); trying again in %s", named(rows[0].key, rows[0].subject), why, RETRY_LATER
    )
    await world.notify(
        f"Delayed by a mail server problem: {rows[0].subject}",
        [
            f"Sending failed for a moment ({why}). mentor-agent tries again in about ten minutes "
            f"(attempt {attempts} of {MAX_ROUNDS}).",
            HOW_TO_STEER,
        ],
        about=rows[0].message_id,
    )
