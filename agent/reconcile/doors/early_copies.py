"""A mail program's own Sent copy of a message it handed to the agent by SMTP while the agent still holds it.

Programs that send through the agent file their own copy in Sent (at once, late, or never). While the message
waits (in the Outbox or in Scheduled) that copy would show it twice, and in Sent as if the mentor had it: it is
taken out of Sent, and the agent files the one copy once the mentor has the message (Sent filing looks for the
Message-ID before filing; a copy the program files after the agent filed its own is taken out again). A copy of a
message set aside (Needs attention) is taken out of Sent too: it was not sent. Such a copy never counts as
a message the mentor received: its Message-ID is the held one's, which the history scan knows. Only messages
that came through the submission door are touched; a copy whose message is not taken in yet is looked at again.
Sent is not watched (no IDLE on it): a pass runs again a few times in the minute after each submission
(:func:`next_look`), when programs file their copy, so that one filed late does not wait for the next mail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from agent.logs import named
from agent.mail.port import HeaderInfo
from agent.mail.session import MessageGone
from agent.reconcile.context import World
from agent.reconcile.doors.submission import SUBMITTED, SUBMITTED_HEAD
from agent.rules.envelope import Envelope, same_written
from agent.rules.submitted import head_print
from agent.store.answers import last_detail, last_event_at
from agent.store.ledger import ATTENTION, DONE, NEW, SCHEDULED

log = logging.getLogger("mentor_agent.submission")


LOOK_AGAIN = (timedelta(seconds=3), timedelta(seconds=10), timedelta(seconds=30), timedelta(seconds=60))


def next_look(world: World) -> datetime | None:
    """When to look at Sent again for a program's copy of the last submission (None: no need)."""
    last = last_event_at(world.ledger, SUBMITTED)
    if last is None:
        return None
    now = world.now()
    return next((last + after for after in LOOK_AGAIN if last + after > now), None)


def submitted_without_id(world: World, info: HeaderInfo, envelope: Envelope) -> Envelope | None:
    """A Sent copy without a Message-ID of a message handed over without one (the agent made its Message-ID,
    which the program's copy never has): the envelope under the key it was taken in with, known by its header
    block as submitted. None: not such a copy."""
    if envelope.message_id is not None:
        return None
    key = last_detail(world.ledger, SUBMITTED_HEAD, head_print(info.headers))
    return replace(envelope, key=key, message_id=key) if key else None


async def take_out_early_copies(
    world: World, found: Sequence[tuple[HeaderInfo, Envelope]], again: Callable[[int], None], folder: str
) -> None:
    """``found``: messages in ``folder`` (Sent, or another folder named like it that her programs may file in)
    whose Message-ID the ledger knows; ``again(uid)``: read it on the next pass."""
    for info, envelope in found:
        if not world.ledger.logged(SUBMITTED, envelope.key):
            continue
        row = world.ledger.get(envelope.key)
        if row is None and world.ledger.logged("attention", envelope.key):  # set aside at intake: not sent
            await _unless_only(world, (folder, info), envelope, world.folders.needs_attention, "set aside, not sent")
        elif row is None:
            again(info.uid)  # handed over, not taken in yet: its place is not known
        elif row.state == ATTENTION and row.folder and row.folder != folder:
            await _unless_only(world, (folder, info), envelope, row.folder, "set aside, not sent")
        elif row.state == DONE:
            late = "filed late by the mail program: one copy is enough"
            await _unless_only(world, (folder, info), envelope, folder, late)
        elif row.state in (NEW, SCHEDULED):
            waits_in = row.folder or ""
            held = await world.locate(waits_in, row.key, row.uid) if waits_in else None
            same, identical = await _compare(world, (waits_in, held), (folder, info.uid)) if held else (False, False)
            if not same:
                continue  # not the copy of what waits (another message sent without the agent): left in Sent
            try:
                await _take_out(world, folder, info.uid, identical)
            except MessageGone:
                continue
            world.ledger.log("early copy", mentor=row.mentor, message=row.key, detail="taken out of Sent")
            log.info(
                "%s: your mail program filed it in Sent while it waits; taken out (filed once the mentor has it)",
                named(row.key, row.subject),
            )


async def _unless_only(world: World, copy: tuple[str, HeaderInfo], envelope: Envelope, where: str, why: str) -> None:
    """Take the program's copy (in Sent, or a folder named like it) out while the message itself stands in ``where``
    (never the only copy: in that folder itself, the copy with the lowest UID stays, so that of two copies seen at
    once only one goes)."""
    sent, info = copy
    found = await world.imap(world.mailbox.find_by_message_id, where, envelope.message_id or envelope.key)
    others = [uid for uid in found if uid != info.uid] if where == sent else found
    if not others or (where == sent and min(found) == info.uid):
        return
    same, identical = await _compare(world, (where, min(others)), (sent, info.uid))
    if not same:
        return  # another message with that Message-ID, or none found by it: never delete a genuine copy
    try:
        # Two copies in Sent are two messages even at Gmail (one message is in a folder once): into Trash
        await _take_out(world, sent, info.uid, identical and where != sent)
    except MessageGone:
        return
    world.ledger.log("early copy", message=envelope.key, detail=f"taken out of Sent: {why}")
    log.info("%s: your mail program's copy in Sent taken out (%s)", named(envelope.key, envelope.subject), why)


async def _take_out(world: World, sent: str, uid: int, identical: bool) -> None:
    """The program's copy out of Sent. At Gmail a copy with other bytes than the one held is a message of its own:
    into Trash (an EXPUNGE would only take its Sent label off and leave it in All Mail, a second copy she sees).
    One with the very bytes may be the held message itself (Gmail merges copies): only its Sent label goes."""
    if identical:
        await world.imap(world.mailbox.delete, sent, uid)
    else:
        await world.imap(world.mailbox.discard_many, sent, [uid])


async def _compare(world: World, held: tuple[str, int], copy: tuple[str, int]) -> tuple[bool, bool]:
    """(whether ``copy`` is the message ``held``, a Bcc either lacks aside; whether their bytes are the same)."""
    (held_folder, held_uid), (copy_folder, copy_uid) = held, copy
    first = await world.imap(world.mailbox.fetch_many, held_folder, [held_uid])
    second = await world.imap(world.mailbox.fetch_many, copy_folder, [copy_uid])
    if held_uid not in first or copy_uid not in second:
        return False, False
    one, other = first[held_uid], second[copy_uid]
    return same_written(one, other, bcc_optional=True), one == other


async def same_text(world: World, held: tuple[str, int], copy: tuple[str, int]) -> bool:
    """Whether the message at ``copy`` is the very message at ``held`` (what its sender wrote: its addresses,
    subject and text, in any order: :func:`same_written`), read from the server. A door deletes a copy only when
    it is."""
    (held_folder, held_uid), (copy_folder, copy_uid) = held, copy
    first = await world.imap(world.mailbox.fetch_many, held_folder, [held_uid])
    second = await world.imap(world.mailbox.fetch_many, copy_folder, [copy_uid])
    if held_uid not in first or copy_uid not in second:
        return False
    return same_written(first[held_uid], second[copy_uid])
