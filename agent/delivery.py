"""Sending exactly once: claim, send, file — each step recorded in the ledger before it is taken.

A message is claimed by MOVing it into the Sending folder (of two agents on one account only one MOVE
succeeds). The ledger says ``sending`` before SMTP is spoken and ``accepted`` as soon as the server said
yes; filing in Sent and leaving the Sending folder come after. After a crash, :func:`recover` finishes what
was started: ``claimed`` is sent, ``accepted`` is filed, and ``sending`` — the one moment at which nobody can
know whether the mentor got it — goes to Needs attention with a notice that says *in doubt*.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from agent.crashpoints import crash_point
from agent.envelope import with_field, without_fields
from agent.ledger import ACCEPTED, ATTENTION, CANCELLED, CLAIMED, DONE, NEW, SCHEDULED, SENDING, Row
from agent.mailbox import MailboxError, MessageGone
from agent.notices import HOW_TO_STEER
from agent.outgoing import InDoubtError, PermanentSendError, TransientSendError, send
from agent.world import World

log = logging.getLogger("mentor_agent.delivery")

RETRY_LATER = timedelta(minutes=10)
MAX_ROUNDS = 6  # transient failures: six rounds of retries about ten minutes apart, then Needs attention


@dataclass(frozen=True)
class Prepared:
    """What goes over SMTP (no Bcc header) and what is filed in Sent (the original, with its Bcc)."""

    wire: bytes
    sent_copy: bytes
    message_id: str


def prepare(raw: bytes, row: Row) -> Prepared:
    """Add the Message-ID chosen at intake if the message had none; drop Bcc from the wire copy; body untouched."""
    if row.key.startswith("sha256:"):
        raw = with_field(raw, "Message-ID", row.message_id)
    return Prepared(wire=without_fields(raw, "Bcc"), sent_copy=raw, message_id=row.message_id)


async def claim(world: World, row: Row) -> Row | None:
    """Move the message into Sending. None when it is gone (deleted by the student, or claimed by another agent)."""
    folders = world.folders
    if row.folder == folders.sending and row.state == CLAIMED:
        return row  # claimed before a restart and never handed to SMTP
    assert row.folder is not None and row.uid is not None
    world.ledger.update(row.key, state=CLAIMED)
    try:
        new_uid = await world.imap(world.mailbox.move, row.folder, row.uid, folders.sending)
    except MessageGone:
        world.ledger.update(row.key, state=CANCELLED, detail=f"gone from {row.folder} before it was sent")
        world.ledger.log("cancelled", mentor=row.mentor, message=row.key, detail=f"no longer in {row.folder}")
        log.info("%s: gone from %s before sending; not sent", row.key, row.folder)
        return None
    if new_uid is None:
        new_uid = await world.locate(folders.sending, row.key, None)
    world.ledger.update(row.key, folder=folders.sending, uid=new_uid)
    crash_point("claimed")
    return world.ledger.get(row.key)


async def deliver(world: World, rows: Sequence[Row], *, follow_up: bool = False) -> None:
    """Send one item: a single message, or several as one digest. Never raises for mail problems."""
    claimed = [c for c in [await claim(world, row) for row in rows] if c is not None]
    if not claimed:
        return
    raws: list[tuple[Row, bytes]] = []
    for row in claimed:
        raw = await world.imap(world.mailbox.fetch, world.folders.sending, row.uid) if row.uid else None
        if raw is None:
            await _attention(world, [row], "it vanished from the Sending folder before it could be sent", doubt=False)
            continue
        raws.append((row, raw))
    if not raws:
        return
    if len(raws) == 1:
        row, raw = raws[0]
        prepared = [prepare(raw, row)]
        recipients = list(row.recipients)
    else:
        from agent.digesting import compose_digest  # composition lives with the digest feature

        prepared, recipients = compose_digest(world, raws)
        if len(prepared) > 1:
            limit = world.settings.digest.max_bytes // 1_000_000
            await world.notify(
                f"Digest split in {len(prepared)}: {raws[0][0].subject}",
                [f"The {len(raws)} waiting messages together are larger than the digest limit (about {limit} MB), "
                 f"so they go as {len(prepared)} e-mails at the same time, counted as one.",
                 "\n".join(f"  • {row.subject}" for row, _ in raws)],
                about=raws[0][0].message_id,
            )
    await _send(world, [row for row, _ in raws], prepared, recipients, follow_up)


async def _send(world: World, rows: list[Row], prepared: list[Prepared], recipients: list[str],
                follow_up: bool) -> None:
    ledger = world.ledger
    item = prepared[0].message_id
    with ledger.transaction():
        for row in rows:
            ledger.update(row.key, state=SENDING, item=item)
    crash_point("sending")
    refused: dict[str, str] = {}
    try:
        for part in prepared:
            delivery = await send(
                world.settings.smtp, world.smtp_login(), part.wire, world.settings.student.address, recipients
            )
            refused.update(delivery.refused)
    except PermanentSendError as error:
        await _attention(world, rows, f"the mail server refused it: {error.reply}", doubt=False)
        return
    except InDoubtError as error:
        await _attention(world, rows, f"the connection broke while the server was accepting it ({error})", doubt=True)
        return
    except TransientSendError as error:
        await _retry_later(world, rows, str(error))
        return
    sent_at = world.now()
    with ledger.transaction():
        for row in rows:
            ledger.update(row.key, state=ACCEPTED, sent_at=sent_at, detail="")
        mentor = rows[0].mentor
        if mentor:
            members = [m for row in rows for m in (row.key, row.message_id)]
            ledger.add_item(mentor, item, sent_at, members, follow_up=follow_up)
        ledger.log("sent", mentor=mentor, message=item, detail=f"{len(rows)} message(s) to {', '.join(recipients)}")
    log.info("sent %s (%d message(s)) to %s", item, len(rows), ", ".join(recipients))
    crash_point("accepted")
    if refused:
        lines = [f"  • {address}: {answer}" for address, answer in refused.items()]
        await world.notify(
            f"Some recipients were refused: {rows[0].subject}",
            ["The message was sent, but the server refused these recipients:", "\n".join(lines)],
            about=rows[0].message_id,
        )
    await file_sent(world, rows, prepared)


async def file_sent(world: World, rows: Sequence[Row], prepared: Sequence[Prepared] | None) -> None:
    """After acceptance: one copy in Sent (unless the provider files it), then out of the Sending folder."""
    folders = world.folders
    missing = False
    if world.file_in_sent and rows:
        copies: list[tuple[str, bytes | None]] = [(p.message_id, p.sent_copy) for p in prepared or ()]
        if not copies:  # after a restart: from the Sending folder, or the digest kept on disk
            item = rows[0].item or rows[0].message_id
            copies = [(item, await _sending_copy(world, rows))]
        for message_id, copy in copies:
            present = await world.imap(world.mailbox.find_by_message_id, folders.sent, message_id)
            if not present and copy is not None:
                await world.imap(world.mailbox.append, folders.sent, copy, ["\\Seen"])
            missing = missing or (not present and copy is None)
    for row in rows:
        uid = await world.locate(folders.sending, row.key, row.uid)
        if uid is not None and missing:  # no copy of what went out: file the originals themselves
            await world.imap(world.mailbox.move, folders.sending, uid, folders.sent)
        elif uid is not None:
            await world.imap(world.mailbox.delete, folders.sending, uid)
        world.ledger.update(row.key, state=DONE, folder=folders.sent, uid=None)
    if len(rows) > 1:
        from agent.digesting import forget

        forget(world, rows[0].item or "")


async def _sending_copy(world: World, rows: Sequence[Row]) -> bytes | None:
    if len(rows) != 1:
        from agent.digesting import load_saved

        return load_saved(world, rows[0].item or "")
    row = rows[0]
    uid = await world.locate(world.folders.sending, row.key, row.uid)
    raw = await world.imap(world.mailbox.fetch, world.folders.sending, uid) if uid else None
    return prepare(raw, row).sent_copy if raw is not None else None


async def _attention(world: World, rows: Sequence[Row], why: str, *, doubt: bool) -> None:
    """Move to Needs attention and tell the student. Nothing is retried from there."""
    folders = world.folders
    for row in rows:
        uid = await world.locate(folders.sending, row.key, row.uid) if row.folder == folders.sending else row.uid
        source = folders.sending if row.folder == folders.sending else row.folder
        new_uid = None
        if uid is not None and source:
            try:
                new_uid = await world.imap(world.mailbox.move, source, uid, folders.needs_attention)
            except MessageGone:
                new_uid = None
        world.ledger.update(row.key, state=ATTENTION, folder=folders.needs_attention, uid=new_uid, detail=why)
        world.ledger.log("in doubt" if doubt else "attention", mentor=row.mentor, message=row.key, detail=why)
        log.warning("%s: needs attention: %s", row.key, why)
        if doubt:
            lines = [
                f"“{row.subject}” is IN DOUBT: it may or may not have reached {', '.join(row.recipients)}.",
                f"What happened: {why}.",
                "mentor-agent will not send it again by itself, so that nobody gets it twice. Check with the "
                "recipient or your Sent folder; to send it anyway, move it back to the Outbox.",
            ]
            title = f"In doubt: {row.subject}"
        else:
            lines = [
                f"“{row.subject}” was not sent: {why}.",
                "It is in the Needs attention folder. Fix it and move it back to the Outbox to try again.",
            ]
            title = f"Not sent: {row.subject}"
        await world.notify(title, lines, about=row.message_id)


async def _retry_later(world: World, rows: Sequence[Row], why: str) -> None:
    """A temporary failure: back to Scheduled to try again later, or to Needs attention after many rounds."""
    folders = world.folders
    attempts = max(row.attempts for row in rows) + 1
    if attempts >= MAX_ROUNDS:
        await _attention(world, rows, f"the mail server kept failing ({why}); tried {attempts} times", doubt=False)
        return
    due = world.now() + RETRY_LATER
    for row in rows:
        uid = await world.locate(folders.sending, row.key, row.uid)
        new_uid = await world.imap(world.mailbox.move, folders.sending, uid, folders.scheduled) if uid else None
        if new_uid is None and uid is not None:
            new_uid = await world.locate(folders.scheduled, row.key, None)
        world.ledger.update(row.key, state=SCHEDULED, folder=folders.scheduled, uid=new_uid, attempts=attempts,
                            due=due, detail=f"temporary failure: {why}")
        world.ledger.log("retry", mentor=row.mentor, message=row.key, detail=why)
    log.warning("temporary send failure (%s); trying again in %s", why, RETRY_LATER)
    await world.notify(
        f"Delayed by a mail server problem: {rows[0].subject}",
        [f"Sending failed for a moment ({why}). mentor-agent tries again in about ten minutes "
         f"(attempt {attempts} of {MAX_ROUNDS}).", HOW_TO_STEER],
        about=rows[0].message_id,
    )


async def recover(world: World) -> None:
    """Finish what a crash interrupted (see the module docstring)."""
    ledger = world.ledger
    folders = world.folders
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
    by_item: dict[str, list[Row]] = {}
    for row in ledger.in_states(SENDING):
        by_item.setdefault(row.item or row.key, []).append(row)
    for item, rows in by_item.items():
        filed = [] if world.file_in_sent else await world.imap(world.mailbox.find_by_message_id, folders.sent, item)
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
        await _attention(world, rows, "mentor-agent stopped while the mail server was receiving it", doubt=True)
    accepted: dict[str, list[Row]] = {}
    for row in ledger.in_states(ACCEPTED):
        accepted.setdefault(row.item or row.key, []).append(row)
    for rows in accepted.values():
        try:
            await file_sent(world, rows, None)
        except MailboxError as error:
            log.warning("could not file %s in Sent yet: %s", rows[0].item, error)
