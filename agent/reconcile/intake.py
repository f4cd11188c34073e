"""One pass over the student's folders: take in the Outbox, follow Scheduled, and carry out the plan.

This is "reconcile, don't react": whatever woke the daemon, the pass looks at the folders, the ledger and
the clock and brings them to what the policies ask for. Running it twice changes nothing the second time.

Why one module of ~700 lines: the three steps of a pass (take in the Outbox, follow Scheduled, carry out, with
what a restart left claimed) are one state machine over the ledger's rows (new → scheduled → claimed); each step
relies on what the one before left and they share the helpers that place a row (its policy, its hold, its
notice). Kept together so the machine reads in one place; the sending itself is :mod:`agent.reconcile.delivery`,
the start's folder check :mod:`agent.reconcile.outbox_folders`.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from agent.logs import log_decision, named
from agent.mail.port import HeaderInfo
from agent.reconcile import agenda_desk, attention, cancel_pace, invite_deadline, strangers
from agent.reconcile.context import World, aside_id
from agent.reconcile.delivery import Item, deliver_all
from agent.reconcile.digest_delivery import back_to_scheduled, is_split_rest, out_of_sending
from agent.reconcile.doors import across, autosaves, came_back, sent_herself
from agent.reconcile.edited import taken_in_again
from agent.reconcile.events import Cancelled, Decided, Kind, publish
from agent.reconcile.intake_lookup import IntakeLookup
from agent.reconcile.not_answers import tell_tagged_recipients
from agent.reconcile.sent_filing import follow_filing
from agent.rules.calendar_parts import carries_itip
from agent.rules.envelope import (
    Envelope,
    domain_of,
    fingerprint,
    new_message_id,
    parse_envelope,
    split_key,
    variant_key,
)
from agent.rules.notices import Held, held_lines, scheduled_lines
from agent.rules.pacing import Decision, Engine, Queued
from agent.rules.policy import LoadedPolicy, file_name
from agent.store import in_doubt_kept, taken_drafts
from agent.store.answers import last_logged_at
from agent.store.ledger import ATTENTION, CANCELLED, CLAIMED, DONE, EARLY, NEW, OPEN_STATES, SCHEDULED, Row

log = logging.getLogger("mentor_agent.intake")
HISTORY_DAYS = 60


CLOCK_STEP = timedelta(hours=1)  # the most a clock is stepped back by (NTP): a later message never arrives before


async def take_in_outbox(world: World, *, early: bool = False) -> datetime | None:
    """Every message in the Outbox gets a ledger row (or goes to Needs attention with a notice).

    ``early``: the first pass after the wait for a first policy. A message then to no mentor may be to a mentor
    whose policy is still to come: it stays in the Outbox, held (``EARLY``), until a policy paces it or the
    student flags it to go as ordinary mail (:func:`early_held` lists them for the one notice).

    A draft still being typed (``\\Draft``: Gmail's label door) waits to settle first (:mod:`doors.autosaves`);
    returns when it will have (None: nothing waits)."""
    folder = world.folders.outbox
    validity, uids = await world.imap(world.mailbox.uids, folder)
    await _renumbered(world, folder, validity)  # a row left at UID 0 is claimed as gone: she took it out
    known = world.ledger.in_folder(folder)
    fresh = [uid for uid in uids if uid not in known]
    if not fresh:
        world.outbox_drafts.clear()
        return None
    taken: list[tuple[Row, bool]] = []
    keys: dict[str, str] = {}  # taken in this time: key -> fingerprint
    drafted: dict[str, tuple[Envelope, bytes, taken_drafts.Stored]] = {}  # taken in as drafts (the label door): key ->
    # the draft's envelope, text and where it stood in the Outbox (UIDVALIDITY, UID)
    raws: dict[str, bytes] = {}  # key -> the message taken in (its words kept for the star door)
    # One FETCH for what decides and the text that goes (it is needed anyway), except for the drafts already seen
    # waiting to settle: their text is fetched once they have, not again on each pass while they wait.
    waits = [uid for uid in fresh if uid in world.outbox_drafts]
    firsts = [uid for uid in fresh if uid not in world.outbox_drafts]
    fetched = await world.imap(world.mailbox.messages, folder, firsts) if firsts else []
    whole = {info.uid: raw for info, raw in fetched}
    heads = [info for info, _ in fetched] + (await world.imap(world.mailbox.headers, folder, waits) if waits else [])
    infos, older, wake = autosaves.settled(world, validity, sorted(heads, key=lambda info: info.uid))
    for info in older:
        await _refuse(
            world, info, parse_envelope(info.headers), "a newer save of this draft is in the Outbox: that one goes"
        )
    settled = [info.uid for info in infos if info.uid not in whole]  # drafts that waited: their text now
    if settled:
        whole.update(await world.imap(world.mailbox.fetch_many, folder, settled))
    lookup = IntakeLookup(world.ledger, (parse_envelope(info.headers) for info in infos if info.uid in whole))
    for info in infos:
        if info.uid not in whole:
            continue  # gone meanwhile
        found = await _take_in(world, info, keys, whole[info.uid], early, validity, lookup)
        if found is not None:
            taken.append(found)
            raws[found[0].key] = whole[info.uid]
            if autosaves.DRAFT in info.flags:  # the label door: it goes as a message, not as the draft it was
                drafted[found[0].key] = (parse_envelope(info.headers), whole[info.uid], (validity, info.uid))
    ledger = world.ledger
    with ledger.transaction():  # one commit for the lot
        for row, again in taken:
            if again:  # moved back to the Outbox by the student: start afresh
                old = ledger.get(row.key)
                if old is not None and old.state == ATTENTION:  # in doubt: its hand-over still counts
                    in_doubt_kept.keep_counting(ledger, old)
                    attention.owe_moved_back(world, old)  # in doubt and she was not told yet: still owed
                ledger.forget(row.key)
            ledger.add(row)
            ledger.log(taken_drafts.SEEN, mentor=row.mentor, message=row.key, detail=row.subject)
            across.took_in(world, row, raws[row.key])
            if row.key in drafted:
                ledger.log(taken_drafts.HANDED_OVER, message=row.key)
                came_back.remember(world, drafted[row.key][0], row.key, *drafted[row.key][1:])
    return wake


async def _take_in(
    world: World,
    info: HeaderInfo,
    batch: dict[str, str],
    raw: bytes,
    early: bool,
    validity: int,
    lookup: IntakeLookup,
) -> tuple[Row, bool] | None:
    """The row to add for a message new in the Outbox (and whether it replaces an old one), or None when the
    message was dealt with here: refused, left alone, or taken by the meeting desk. ``lookup``: the ledger, asked
    for the whole pass at once."""
    ledger = world.ledger
    folders = world.folders
    content = fingerprint(raw)
    read = parse_envelope(info.headers)  # read once here (an Envelope never changes)
    if autosaves.DRAFT in info.flags:  # the compose window saved a draft again after it was taken: never twice
        taken = came_back.taken_before(world, read, raw, (validity, info.uid)) or await across.taken_copy(
            world, read, raw
        )
        if taken is not None:
            await came_back.set_aside(world, info, read, taken)
            return None
    if sent_herself.already_sent(world, read, lookup.found_in_sent):  # Send pressed in her mail program too
        await sent_herself.set_aside_sent(world, info, read)
        return None
    looked: dict[str, Row | None] = {}  # the ledger's rows read on the way, by key (read once, not twice)
    envelope = _identified(lookup, read, content, batch, looked)
    if envelope.key in batch:
        await _refuse(world, info, envelope, "another copy of it is in the Outbox too, and that one goes")
        return None
    existing = looked[envelope.key] if envelope.key in looked else lookup.get(envelope.key)
    # When the agent first saw it, by the clock every rule is read with; never before one taken in earlier (a clock
    # stepped back sent a later message ahead of an earlier one), unless that one was taken in under a clock far ahead
    # (its time would become every later message's, and the Date of those without one). No time is written back:
    # which of two clocks was wrong, the one then or the one now, the agent cannot tell
    now = world.now()
    latest = lookup.latest
    arrived = latest if latest is not None and now < latest <= now + CLOCK_STEP else now
    if existing is not None and existing.state in OPEN_STATES and existing.folder != folders.outbox:
        # A copy of a message that is already on its way: sending it would send it twice.
        await _refuse(world, info, envelope, f"a copy of it is already {existing.state} ({existing.folder})")
        return None
    if existing is not None and existing.state == DONE:
        when = existing.sent_at.isoformat(timespec="minutes") if existing.sent_at else "earlier"
        await _refuse(world, info, envelope, f"it was already sent ({when}); write it as a new message to send again")
        return None
    went = lookup.own_email_at(envelope.message_id) if existing is None and envelope.message_id else None
    if went is not None:  # the Sent copy of a digest (or of a part of one) put back: the mentor has it
        why = f"it was already sent ({went.isoformat(timespec='minutes')}) as a digest; write it as a new message"
        await _refuse(world, info, envelope, why + " to send again")
        return None
    if envelope.problems:
        await _refuse(world, info, envelope, "; ".join(envelope.problems))
        return None
    mentors = {p.id: p for p in (world.book.for_address(a) for a in envelope.recipients) if p is not None}
    if len(mentors) > 1:
        names = " and ".join(p.name for p in mentors.values())
        why = f"it is addressed to more than one mentor ({names}); write to each on their own"
        await _refuse(world, info, envelope, why)
        return None
    if not mentors and "\\Flagged" not in info.flags:
        if existing is not None and existing.state == ATTENTION and existing.detail == EARLY:
            return None  # still to no mentor: it waits for a policy, or for her flag
        if early and existing is None:
            log.info("%s: to no mentor, arrived before any policy: left in the Outbox", envelope.subject)
            ledger.add(_row(envelope, None, arrived, NEW, folders.outbox, info.uid, world, content))
            ledger.update(envelope.key, state=ATTENTION, detail=EARLY)
            return None
    if not mentors:
        await tell_tagged_recipients(world, envelope)  # her+tag@: told once, as mail to no mentor
    if not mentors and not world.settings.pass_through:
        if existing is None:
            log.info(
                "%s: to no mentor, and pass_through is off: left in the Outbox", named(envelope.key, envelope.subject)
            )
            ledger.add(_row(envelope, None, arrived, NEW, folders.outbox, info.uid, world, content))
            ledger.update(envelope.key, state=ATTENTION, detail="pass_through is off")
        return None
    mentor = next(iter(mentors.values()), None)
    why_not = _no_agenda(world, mentor, envelope) if mentor is not None else None
    if why_not:
        await _refuse(world, info, envelope, why_not)
        return None
    if mentor is not None and envelope.meeting_request and envelope.agent_kind != "invite":
        from agent.reconcile import meeting_desk

        if await meeting_desk.meeting_requested(world, mentor, envelope, info):
            return None
    row = _row(envelope, mentor, arrived, NEW, folders.outbox, info.uid, world, content, "\\Flagged" in info.flags)
    if not row.standalone and carries_itip(raw):  # a calendar request or reply: one iTIP object per e-mail
        row = replace(row, standalone=True)
    batch[row.key] = content
    return row, existing is not None


def early_held(world: World) -> list[Row]:
    """The messages held in the Outbox since the wait for a first policy (see :func:`take_in_outbox`)."""
    rows = world.ledger.in_states(ATTENTION)
    return [row for row in rows if row.detail == EARLY and row.folder == world.folders.outbox]


def _identified(
    lookup: IntakeLookup, envelope: Envelope, content: str, batch: dict[str, str], looked: dict[str, Row | None]
) -> Envelope:
    """The envelope with the ledger key this message is known by: its Message-ID, unless another message (other
    content) already goes by that Message-ID. Then it is another message: keyed by Message-ID and content, and it
    goes out with a Message-ID of its own (the mentor's mail program would hide one of two sharing an id)."""
    key = envelope.key
    if key.startswith("sha256:"):
        return envelope  # no Message-ID: known by its content already
    known = batch.get(key)
    if known is None:
        row = looked[key] = lookup.get(key)
        if row is None:  # a Message-ID the agent gave out itself (the Sent copy of one it had none, or shared one)
            given = lookup.key_of_given(key)
            if given is not None:
                return replace(envelope, key=given)
        known = row.fingerprint if row is not None else None
    if not known or known == content:  # the same message (or a row from before fingerprints: a copy, as it was)
        return envelope
    log.info("%s: another message with the Message-ID %s: goes as a message of its own", envelope.subject, key)
    return replace(envelope, key=variant_key(key, content), message_id=None)


def _row(
    envelope: Envelope,
    mentor: LoadedPolicy | None,
    arrived: datetime,
    state: str,
    folder: str,
    uid: int,
    world: World,
    content: str = "",
    forced: bool = False,
) -> Row:
    return Row(
        key=envelope.key,
        message_id=envelope.message_id or new_message_id(domain_of(world.settings.student.address)),
        mentor=mentor.id if mentor else None,
        subject=envelope.subject or "(no subject)",
        sender=envelope.sender,
        recipients=envelope.recipients,
        arrived=arrived,
        state=state,
        folder=folder,
        uid=uid,
        due=None,
        digest=None,
        reason="",
        # A reply in a conversation keeps its thread, an invite is one iTIP object per e-mail, the proposal of
        # an agreement (`agree`) goes alone so that her answer threads to it, and a signed or encrypted message
        # is only valid byte for byte, and one naming an address beyond ASCII cannot be named in a digest's
        # headers: never digested (nor one carrying a calendar request or reply: see _take_in).
        standalone=bool(envelope.references)
        or envelope.sealed
        or envelope.wide
        or envelope.agent_kind in ("invite", "agreement"),
        group_key=envelope.group_key,
        forced=forced,
        told="",
        attempts=0,
        item=None,
        sent_at=None,
        detail="",
        fingerprint=content,
        mentor_addresses=tuple(a for a in envelope.recipients if mentor and world.book.for_address(a) is mentor),
    )


def _no_agenda(world: World, mentor: LoadedPolicy, envelope: Envelope) -> str | None:
    """:func:`agenda_desk.no_agenda`, with whom else it is to (her own address in Cc aside): an agenda reaches only
    the mentor."""
    others = [a for a in envelope.recipients if world.book.for_address(a) is not mentor and a != envelope.sender]
    return agenda_desk.no_agenda(mentor, envelope.subject, others)


async def _refuse(world: World, info: HeaderInfo, envelope: Envelope, why: str) -> None:
    folders = world.folders
    subject = envelope.subject or "(no subject)"
    notice = world.owe(  # before the move: a lost answer to it, or a stop right after it, still tells her
        f"Not sent: {subject}",
        [
            f"“{subject}” was not sent: {why}.",
            "It is in the Needs attention folder; fix it and move it back to the Outbox to try again.",
        ],
        envelope.message_id,
        made=aside_id("refused", envelope.key, info.uid),
        # Owed while it is there: moved back (fixed) or deleted, she has acted on it
        while_in=(folders.needs_attention, envelope.key, info.uid),
    )
    placed = await world.move_owed(folders.outbox, info.uid, folders.needs_attention, notice)
    if placed is None:
        return
    world.ledger.log("attention", message=envelope.key, detail=why)
    log.warning("%s: to Needs attention: %s", named(envelope.key, envelope.subject), why)
    await world.tell(placed)


async def _found_again(
    world: World, folder: str, row: Row, held: Collection[int], present: Collection[int] | None = None
) -> int | None:
    """Where ``row``'s message is in ``folder`` when its UID there is gone or unknown: its own copy (its content's
    fingerprint: renumbered, or moved by a try whose answer was lost), else a copy with its Message-ID that no row of
    ours holds (saved again by her mail program after an edit, or re-encoded by a server; ``held``: the folder's UIDs
    our rows have). While another open message of ours shares its Message-ID (issue 20), such a copy is this row's
    only if every one of those is where its row says, in ``folder`` (``present``: the folder's UIDs now): with stale
    UIDs (a kill, a renumbering) a namesake's copy could take its place, go to this row's mentor, and the namesake's
    row be recorded as cancelled by her. Without ``present``, only its own copy. Never a copy another agent on the
    account holds (its mark): two agents that took one message in each held it, and one broke the pace."""
    found = await _copy_of(world, folder, row, held, present)
    if found is None:
        return None
    infos = await world.imap(world.mailbox.headers, folder, [found])
    return None if not infos or strangers.held_by_another(world, infos[0].flags) else found


async def _copy_of(
    world: World, folder: str, row: Row, held: Collection[int], present: Collection[int] | None
) -> int | None:
    """:func:`_found_again`, whoever holds it."""
    own = await world.locate(folder, row.key, None, same=True)
    if own is not None:
        return own
    namesakes = world.ledger.namesakes(row.key)
    if not namesakes:
        other = await world.locate(folder, row.key, None)
        return other if other is not None and other not in held else None
    if present is None:
        return None
    rows = world.ledger.get_many(namesakes).values()
    if len(rows) != len(namesakes) or any(r.folder != folder or r.uid not in present for r in rows):
        return None  # which copy is whose cannot be told: only its own copy is its message
    base, _ = split_key(row.key)
    unheld = [uid for uid in await world.imap(world.mailbox.find_by_message_id, folder, base) if uid not in held]
    return unheld[0] if len(unheld) == 1 else None


EDITED = "edited in Scheduled: taken in again from the Outbox"
# A copy of a message recorded as cancelled that turns up in Scheduled within this is her edit, or her undoing the
# cancel: taken in again. Later it is set aside with a notice (a phone's old draft syncing days later is not sent).
CANCEL_UNDONE = timedelta(minutes=10)


async def _found_as_edited(world: World, folder: str, row: Row, uid: int) -> None:
    """``row``'s message, found again at ``uid`` in ``folder`` (Scheduled): as it was (renumbered), or as she edited
    it (her mail program saves an edit as a new copy with the same Message-ID). An edit goes as edited: to whom the
    edit names, never to the row's old recipients with the new ones in its header. Still to the same mentor (or to no
    mentor, as before), without a mistake and without a tag the intake acts on: it keeps its time, with the edit's
    recipients, subject and form (a reply, a signed message goes alone). Otherwise, and for a message keyed by its
    content (it shares its Message-ID with another, issue 20), it goes back to the Outbox (:mod:`edited`)."""
    raw = await world.imap(world.mailbox.fetch, folder, uid)
    if raw is None:
        return  # gone again meanwhile: the next pass looks once more
    content = fingerprint(raw)
    envelope = parse_envelope(raw)
    policies = {p.id: p for p in (world.book.for_address(a) for a in envelope.recipients) if p is not None}
    mentor = policies.get(row.mentor) if row.mentor else None
    kept = (
        not envelope.problems
        and set(policies) == ({row.mentor} if row.mentor else set())
        and not (mentor is not None and (envelope.meeting_request or _no_agenda(world, mentor, envelope)))
    )
    same = not row.fingerprint or content == row.fingerprint
    if same or (kept and split_key(row.key)[1] is None):
        edited = _row(envelope, mentor, row.arrived, row.state, folder, uid, world, content, row.forced)
        alone = edited.standalone or carries_itip(raw)  # its form as it is now (a reply added, a signature)
        if same:
            world.ledger.update(row.key, uid=uid, standalone=row.standalone or alone)
            return
        world.ledger.update(
            row.key,
            uid=uid,
            subject=edited.subject,
            sender=edited.sender,
            recipients=edited.recipients,
            mentor_addresses=edited.mentor_addresses,
            standalone=alone,
            group_key=edited.group_key,
            fingerprint=content,
        )
        agenda_desk.edited(world, row, raw)  # on an agenda whose invitation waits: rebuilt with its new text
        log.info("%s: edited in %s; goes as edited, at its time", named(row.key, edited.subject), folder)
        return
    await taken_in_again(world, row, folder, uid, content, EDITED)


async def follow_scheduled(world: World) -> None:
    """Deleted from Scheduled: cancelled. Flagged there: to go now. Edited there: goes as edited, or is taken in
    again (:func:`_found_as_edited`), also when the edit came after the old copy's deletion was seen."""
    folder = world.folders.scheduled
    validity, uids = await world.imap(world.mailbox.uids, folder)
    present = set(uids)
    await _renumbered(world, folder, validity)
    known = world.ledger.in_folder(folder)
    adopted: set[int] = set()
    lost = world.ledger.lost_in(folder)  # not found again after a renumbering: each looked for as a gone copy
    for uid, row in [*((u, r) for u, r in known.items() if u), *((0, r) for r in lost)]:
        if uid not in present and row.state == SCHEDULED:
            moved = await _found_again(world, folder, row, known, present)  # renumbered, or saved again by her
            if moved is not None:
                adopted.add(moved)
                await _found_as_edited(world, folder, row, moved)
                continue
            world.ledger.update(row.key, state=CANCELLED, detail="taken out of Scheduled by the student")
            world.ledger.log("cancelled", mentor=row.mentor, message=row.key, detail="taken out of Scheduled")
            log.info(
                "%s: cancelled (taken out of Scheduled: deleted, or `cancel` put it in Drafts)",
                named(row.key, row.subject),
            )
            publish(Cancelled(row.key, "taken out of Scheduled"))
    if not uids:
        return
    await strangers.mark_held(world, folder, (set(known) | adopted) & present)
    unknown = sorted(present - set(known) - adopted)
    if unknown:
        await _unknown_in_scheduled(world, folder, unknown)
    for uid in await world.imap(world.mailbox.flagged, folder):
        flagged = known.get(uid)
        if flagged is None or flagged.forced:
            continue
        world.ledger.update(flagged.key, forced=True)
        world.ledger.log("flagged", mentor=flagged.mentor, message=flagged.key, detail="send now anyway")
        log.info("%s: flagged by the student: goes now, outside the agreement", named(flagged.key, flagged.subject))


async def _renumbered(world: World, folder: str, validity: int) -> None:
    """When the server renumbered ``folder`` (a new UIDVALIDITY: an index rebuilt, a move to another server), every
    UID our rows keep there may now be another message's: each row is found again by its own content, and one not
    found is marked as gone (UID 0, which no message has), for the pass to look for it as for any gone copy (an edit
    of hers, or taken out). Without this, a row whose old UID now held another held message claimed and sent that
    one, and its own was recorded as taken out by her."""
    seen = f"uidvalidity {folder}"
    before = world.ledger.meta_value(seen)
    if before == str(validity):
        return
    rows = world.ledger.in_folder(folder)
    if rows:  # also at the first look (an older version kept no UIDVALIDITY): its rows are checked once
        log.warning(
            "%s: UIDVALIDITY %s → %s (renumbered by the server, or first looked at): finding its %d messages again",
            folder,
            before or "not kept",
            validity,
            len(rows),
        )
        found = {row.key: await world.locate(folder, row.key, None, same=True) for row in rows.values()}
        with world.ledger.transaction():
            for key, uid in found.items():
                world.ledger.update(key, uid=uid or 0)
    world.ledger.set_meta(seen, str(validity))


async def _unknown_in_scheduled(world: World, folder: str, unknown: list[int]) -> None:
    """Copies in Scheduled that no open message of ours is, with the Message-ID of one of ours (not \\Deleted):

    - while an open message has that Message-ID, left alone: her program saves an edit before it removes the old
      copy (the pass after finds it, :func:`_found_as_edited`), or a placing move's answer was lost;
    - that message recorded as cancelled within CANCEL_UNDONE (her program removed the old copy first and a pass saw
      it gone; a copy marked \\Deleted gone at its claim; she dragged it back): taken in again from the Outbox;
    - otherwise (cancelled long ago and a copy turns up, her phone's old draft say; sent, and her edit came too late):
      not sent, put in Needs attention, and she is told. A copy of what was sent, as it was, is left alone.
    Mail the agent holds none of (she put it there herself): :mod:`agent.reconcile.strangers`.
    Nothing of hers is left in Scheduled unsent and untold, and nothing she cancelled long ago is sent."""
    found: list[tuple[HeaderInfo, Envelope]] = []
    others: list[tuple[HeaderInfo, Envelope]] = []
    for info in await world.imap(world.mailbox.headers, folder, unknown):
        envelope = parse_envelope(info.headers)
        if "\\Deleted" in info.flags:
            continue
        row = world.ledger.get(envelope.key)
        namesakes = bool(world.ledger.namesakes(envelope.key))
        if strangers.is_stranger(info, row, namesakes=namesakes):
            found.append((info, envelope))
            continue
        if row is None and not namesakes and strangers.held_by_another(world, info.flags):
            others.append((info, envelope))  # or held by an install whose records are gone: she is told of both
            continue
        if row is None or envelope.message_id is None or namesakes or row.state not in (CANCELLED, DONE):
            continue
        if row.state == CANCELLED and (
            strangers.never_held(world, row) or strangers.held_by_another(world, info.flags)
        ):
            continue  # gone from the Outbox before this agent held it: another agent took it (and her edit of it)
        raw = await world.imap(world.mailbox.fetch, folder, info.uid)
        if raw is None:
            continue
        content = fingerprint(raw)
        if row.state == CANCELLED:
            when = last_logged_at(world.ledger, "cancelled", row.key)
            if when is not None and timedelta(0) <= datetime.now(UTC) - when <= CANCEL_UNDONE:  # the log's clock
                await taken_in_again(world, row, folder, info.uid, content, EDITED)
                continue
        elif content == row.fingerprint:
            continue
        await _set_aside_late(world, folder, info.uid, envelope.message_id, envelope.subject or row.subject, row)
    await strangers.tell_strangers(world, folder, found)
    await strangers.tell_strangers(world, folder, others, another=True)


async def _set_aside_late(world: World, folder: str, uid: int, message_id: str, subject: str, row: Row) -> None:
    """A copy of a message the agent is done with, turned up in ``folder``: to Needs attention, and she is told."""
    done = "had already gone" if row.state == DONE else "was cancelled"
    notice = world.owe(  # before the move: a lost answer to it, or a stop right after it, still tells her
        f"Not sent: a copy of {subject}",
        [
            f"A copy of “{subject}” turned up in {folder} after the message {done} (your edit of it, or a copy "
            "another mail program kept); it was not sent.",
            "It is in the Needs attention folder: to send it, move it to the Mentor Outbox.",
        ],
        message_id,
        made=aside_id("late-copy", row.key, uid),
        while_in=(world.folders.needs_attention, message_id or row.key, uid),
    )
    placed = await world.move_owed(folder, uid, world.folders.needs_attention, notice)
    if placed is None:
        return
    log.warning("%s: a copy turned up in %s after it %s: not sent, put in Needs attention", subject, folder, done)
    await world.tell(placed)


async def carry_out(world: World) -> datetime | None:
    """Decide every waiting message, send what is due, schedule the rest. Returns when to look again.

    What is due goes out together (one claim, one SMTP connection): every message to no mentor, whatever
    a restart left claimed, and for each mentor the first item the policy allows now. The pass then
    returns "now", because each send changes what the policies allow next.
    """
    now = world.now()
    know_mentors(world)
    tidy = await follow_filing(world)  # Sent copies awaited from the provider, without holding up this pass
    open_rows = world.ledger.in_states(NEW, SCHEDULED)
    items: list[Item] = []
    waiting: dict[str, list[Row]] = defaultdict(list)
    orphans: list[Row] = []
    told_orphans = world.ledger.metas(ORPHAN_TOLD)  # told of when her policy file went (daemon.service)
    for row in open_rows:
        loaded = policy_of(world, row)
        if loaded is None:
            if row.mentor is None:
                if world.settings.pass_through:
                    items.append(Item([row]))  # to no mentor
            elif row.forced:
                items.append(Item([row]))  # its mentor's policy is gone, and the student flagged it: it goes
            else:
                orphans.append(row)  # its mentor's policy is gone: it stays where it is
            continue
        if ORPHAN_TOLD + row.key in told_orphans and loaded.id not in world.book.held:
            world.ledger.drop_meta(ORPHAN_TOLD + row.key)  # her policy is back: a later loss of it is told again
        if loaded.id != row.mentor:
            # A mentor is her addresses: a renamed policy file (or a new one for her) takes her messages over.
            log.info("%s: now paced by %s (%s)", row.key, loaded.path.name, loaded.name)
            world.ledger.update(row.key, mentor=loaded.id)
            row = replace(row, mentor=loaded.id)
        if agenda_desk.kept(row):
            continue  # on a meeting agenda: agenda_desk files it once the invitation left, or gives it back
        waiting[loaded.id].append(row)
    # Claimed before a restart or a stop, never sent: first, if its mentor's policy allows it now (else back to
    # Scheduled, planned with her others). A mentor with one going first gets no other this pass: it is not in her
    # history yet, so the plan would let her next one go at once too. The next pass plans her with it counted.
    left_claimed, busy = await _left_claimed(world, waiting, now, orphans)
    if orphans:
        await _tell_orphans(world, orphans)
    heads: list[Item] = []
    wake: datetime | None = None
    placing: list[_Placing] = []  # what waits behind what goes now: placed in Scheduled once that went

    async def place(sent: Callable[[str], Awaitable[bool]]) -> None:
        for loaded, holds, going in placing:
            if all([await sent(key) for key in going]):  # her first went: the plan they were placed by stands
                await _schedule(world, loaded, holds, tell=False)

    for mentor_id, rows in waiting.items():
        if world.stopping.is_set():
            return now
        if mentor_id in busy:
            continue
        loaded = world.book.by_id[mentor_id]
        due, moment = await _carry_out_for(world, loaded, rows, now, placing)
        if due is not None:
            heads.append(due)
        elif moment is not None and (wake is None or moment < wake):
            wake = moment
    # What was left claimed goes first, then each mentor's first (what waits behind it is placed once it went),
    # then the mail to no mentor.
    items = [Item([row]) for row in left_claimed] + heads + items
    if items and world.held_until is not None and world.held_until > now:
        return world.held_until  # the provider's daily sending limit: nothing goes before then
    if items and not world.stopping.is_set():
        # The last look before SMTP: an invitation never leaves late, nor for an offer already withdrawn.
        stopped = await invite_deadline.gate(world, [row for item in items for row in item.rows], now)
        items = [
            kept for item in items if (kept := replace(item, rows=[r for r in item.rows if r.key not in stopped])).rows
        ]
        if items:
            await deliver_all(world, items, invite_deadline.last_look(world), place)  # and again before each one
        return now  # the plan assumed these sends: plan again from the new state
    return min((t for t in (wake, tidy) if t is not None), default=None)


async def _left_claimed(
    world: World, waiting: dict[str, list[Row]], now: datetime, orphans: list[Row]
) -> tuple[list[Row], set[str]]:
    """What a stop or a crash left claimed (in Sending, never handed to SMTP) that goes first in this pass, and the
    mentors it goes to. By carry_out's rules: to no mentor, it goes while ``pass_through`` is on (else back to the
    Outbox, left there as intake leaves such mail); to a mentor whose policy is gone, only if flagged (else back to
    Scheduled, joining ``orphans``: held, told by their notice). To a mentor: only if her policy allows it now,
    planned as the head of her queue with her history; otherwise it goes back to Scheduled and joins ``waiting``,
    paced and told like any other (never sent at a restart outside her window)."""
    first: list[Row] = []
    hers: dict[str, list[Row]] = defaultdict(list)
    held: list[Row] = []
    kept: list[Row] = []
    for row in world.ledger.in_states(CLAIMED):
        loaded = policy_of(world, row)
        if loaded is not None:
            hers[loaded.id].append(row)
        elif row.mentor is None:
            (first if world.settings.pass_through else kept).append(row)
        else:
            (first if row.forced else held).append(row)
    if held:
        await back_to_scheduled(world, held, "not sent yet: mentor-agent stopped before it went; its policy is gone")
        orphans.extend(back for r in held if (back := world.ledger.get(r.key)) is not None and back.state == SCHEDULED)
    if kept:
        await _back_to_outbox(world, kept)
    busy: set[str] = set()
    for mentor_id, claimed in hers.items():
        loaded = world.book.by_id[mentor_id]
        if len(claimed) == 1:
            history = world.ledger.history(
                loaded.id, now - timedelta(days=HISTORY_DAYS), loaded.policy.mentor.addresses
            )
            rest = sorted(waiting.get(mentor_id, []), key=lambda r: r.arrived)
            queue = [
                Queued(r.key, r.arrived, r.subject, r.standalone, r.group_key, r.forced, is_split_rest(r))
                for r in [*claimed, *rest]
            ]
            head = Engine(loaded.policy, history).next_group(queue, now)
            if [d.id for d in head] == [claimed[0].key] and head[0].due(now):
                first.append(claimed[0])
                busy.add(mentor_id)
                continue
        log.info("%d message(s) to %s left claimed: not allowed now, back to Scheduled", len(claimed), loaded.name)
        await back_to_scheduled(world, claimed, "not sent yet: mentor-agent stopped before it went; it goes again")
        keys = {r.key for r in [*claimed, *waiting.get(mentor_id, [])]}  # in the ledger's order, as the next pass
        waiting[mentor_id] = [r for r in world.ledger.in_states(SCHEDULED, NEW) if r.key in keys]
    return first, busy


async def _back_to_outbox(world: World, rows: list[Row]) -> None:
    """Mail to no mentor left claimed while ``pass_through`` is now off: back to the Outbox, held there as intake
    holds such mail (``pass_through is off``: it goes once pass_through is on again, or she takes it out)."""
    folders = world.folders
    why = "pass_through is off"
    for row in rows:
        new_uid = await out_of_sending(world, row, folders.outbox)
        world.ledger.update(row.key, state=ATTENTION, folder=folders.outbox, uid=new_uid, item=None, detail=why)
        world.ledger.log("held", message=row.key, detail=why)
        log.info("%s: to no mentor, and pass_through is off: back in the Outbox", named(row.key, row.subject))


def know_mentors(world: World) -> None:
    """Tell the ledger each policy's addresses: what a mentor received is recorded, and counted, by them."""
    world.ledger.bind(
        {loaded.id: loaded.policy.mentor.addresses for loaded in world.book},
        {loaded.id: loaded.policy.mentor.name for loaded in world.book},
    )


def policy_of(world: World, row: Row) -> LoadedPolicy | None:
    """The policy that paces ``row`` (:meth:`PolicyBook.pacing`, by the addresses that made it her mail); None: what
    waits is held as for a removed file (:func:`_tell_orphans`)."""
    return world.book.pacing(row.mentor, row.mentor_addresses or row.recipients)


ORPHANED = "orphaned"  # Row.told of a message whose mentor's policy is gone: the student was told once
ORPHAN_TOLD = "held told "  # + key: a meta kept while a message told of when her policy file went waits unpaced


async def _tell_orphans(world: World, rows: list[Row]) -> None:
    """Messages bound to a policy that no longer exists (removed while the agent was stopped) are never
    released by that: they stay held, and the student is told once what to do."""
    told = world.ledger.metas(ORPHAN_TOLD)
    untold = [row for row in rows if row.told != ORPHANED and ORPHAN_TOLD + row.key not in told]
    if not untold:
        return
    with world.ledger.transaction():
        for row in untold:
            world.ledger.update(
                row.key, told=ORPHANED, detail=f"no policy names its mentor ({file_name(row.mentor or '')}); held"
            )
            world.ledger.log("held", mentor=row.mentor, message=row.key, detail="no policy names its mentor")
    files = ", ".join(sorted({file_name(row.mentor or "") for row in untold}))
    listed = "\n".join(f"  • {row.subject} (to {', '.join(row.recipients)})" for row in untold)
    log.warning("%d message(s) wait for a mentor no policy file names any more (%s): held", len(untold), files)
    await world.notify(
        f"Held: {len(untold)} message(s) whose mentor's policy file is gone or no longer names her ({files})",
        [
            f"These messages were held for a mentor whose policy ({files}) is no longer in "
            f"{world.settings.policies_dir}, or no longer names the address they are to. They stay where they "
            f"are; nothing is sent because a file went missing or changed:\n{listed}",
            "Put her policy back (under any name, with the addresses these messages are to) to pace them again, "
            "or flag them in Scheduled to send them now (they still count).",
        ],
        about=untold[0].message_id,
    )


@dataclass(frozen=True)
class _Hold:
    """A message the policy holds back, with what the plan says about it."""

    row: Row
    decision: Decision
    others: list[str]  # the other members of its digest, if any

    @property
    def kind(self) -> Kind:
        return "hold" if self.decision.at is None else "digest" if self.decision.digest else "delay"

    @property
    def told(self) -> str:
        # Tell the student again only when the time or the digest changes, not each time another joins it.
        at = self.decision.at.astimezone(UTC).isoformat() if self.decision.at else "held"
        return f"{at}|{self.decision.digest or ''}"

    @property
    def changed(self) -> bool:
        row, decision = self.row, self.decision
        return (row.state, row.due, row.digest, row.reason) != (
            SCHEDULED,
            decision.at,
            decision.digest,
            decision.reason,
        )


# A mentor's messages to put in Scheduled, untold, once the ones going now (their keys) went: see _waiting_behind
_Placing = tuple[LoadedPolicy, list[_Hold], list[str]]


async def _carry_out_for(
    world: World, loaded: LoadedPolicy, rows: list[Row], now: datetime, placing: list[_Placing]
) -> tuple[Item | None, datetime | None]:
    """The mentor's first item if it may go now; otherwise schedule everything and say when to look again.
    With the first item, the plain messages waiting behind it are added to ``placing`` (:func:`_waiting_behind`)."""
    history = world.ledger.history(loaded.id, now - timedelta(days=HISTORY_DAYS), loaded.policy.mentor.addresses)
    engine = Engine(loaded.policy, history)
    queue = sorted(
        (Queued(r.key, r.arrived, r.subject, r.standalone, r.group_key, r.forced, is_split_rest(r)) for r in rows),
        key=lambda q: q.arrived,
    )
    by_key = {r.key: r for r in rows}
    await cancel_pace.adopt_old(world, rows)  # one a version before appended: known by its calendar part
    starts = cancel_pace.cancels(world, rows)  # a CANCEL: at once, on its own, never paced as one more e-mail
    if starts:
        return await _cancels_first(world, loaded, rows, starts, now, placing)
    tagged = agenda_desk.tagged(loaded, rows)  # "[agenda]" in the subject: the student's own choice
    if tagged:
        back = await agenda_desk.hold(world, loaded, tagged)  # those only valid as written come back: e-mail
        rest = [r for r in rows if r not in tagged] + back
        return await _carry_out_for(world, loaded, rest, now, placing) if rest else (None, now)
    # Groups come out in time order, so only the first can be due now: that costs one step, not a full plan.
    head = engine.next_group(queue, now)
    if head and head[0].due(now):
        late = await invite_deadline.withdraw_late(world, head, by_key, now)  # never an invitation sent late
        if late:
            rest = [r for r in rows if r not in late]
            return await _carry_out_for(world, loaded, rest, now, placing) if rest else (None, now)
        for decision in head:
            row = by_key[decision.id]
            log_decision(log, row.key, loaded.id, "send", decision.reason, subject=row.subject, level=logging.DEBUG)
            log.info("%s → %s: %s", named(row.key, row.subject), loaded.name, decision.reason)
            publish(Decided(row.key, loaded.id, loaded.name, row.subject, "send", decision.reason))
        waiting = _waiting_behind(loaded, engine, queue, head, by_key, now)
        if waiting:
            placing.append((loaded, waiting, [d.id for d in head]))
        return Item([by_key[d.id] for d in head], head[0].follow_up), now
    groups: dict[str, list[Decision]] = defaultdict(list)
    decisions = engine.plan(queue, now)
    held = agenda_desk.over_limit(loaded, decisions, by_key, now)  # over_limit = "agenda": not e-mailed
    if held:
        back = await agenda_desk.hold(world, loaded, held)
        rest = [r for r in rows if r not in held] + back
        return await _carry_out_for(world, loaded, rest, now, placing) if rest else (None, now)
    late = await invite_deadline.withdraw_late(world, decisions, by_key, now)  # the pace holds it past the notice
    if late:
        rest = [r for r in rows if r not in late]
        return await _carry_out_for(world, loaded, rest, now, placing) if rest else (None, now)
    for decision in decisions:
        groups[decision.digest or decision.id].append(decision)
    holds: list[_Hold] = []
    wake: datetime | None = None
    for group in groups.values():
        members = [by_key[d.id] for d in group]
        for decision, row in zip(group, members, strict=True):
            kind = "hold" if decision.at is None else "digest" if decision.digest else "delay"
            log_decision(log, row.key, loaded.id, kind, decision.reason, subject=row.subject, level=logging.DEBUG)
            holds.append(_Hold(row, decision, [m.subject for m in members if m.key != row.key]))
        at = group[0].at
        if at is not None and (wake is None or at < wake):
            wake = at
    await _schedule(world, loaded, holds)
    return None, wake


def _waiting_behind(
    loaded: LoadedPolicy,
    engine: Engine,
    queue: list[Queued],
    head: list[Decision],
    by_key: dict[str, Row],
    now: datetime,
) -> list[_Hold]:
    """The plain messages to her that wait behind the ones going now, planned as if those went now: they leave the
    Outbox for Scheduled in this pass, not only in the next one (a backlog of a thousand messages to her would
    otherwise sit in the Outbox until every message due now was sent).

    The student is told in the next pass, from the plan made with the real send times (:func:`_schedule` tells
    only when the time or the digest changed from what she was told, and she was told nothing yet). Every pass
    plans every waiting message again, so a send that fails only makes the next pass plan them earlier. Left to
    the next pass, as before: anything about a meeting (an iTIP part: its deadline is checked against the plan),
    a flagged message, a digest's split rest, and every message of a policy whose over-limit messages go on a
    meeting agenda."""
    if loaded.policy.email.over_limit == "agenda":
        return []
    going = [d.id for d in head]
    plain = {
        q.id
        for q in queue
        if q.id not in going
        and not q.standalone
        and not q.forced
        and not q.split
        and by_key[q.id].state == NEW
        and by_key[q.id].folder is not None
        and by_key[q.id].uid is not None
    }
    if not plain:
        return []
    decisions = engine.plan(queue, now)
    if [d.id for d in decisions[: len(going)]] != going or not all(d.due(now) for d in decisions[: len(going)]):
        return []  # the full plan does not start with what goes now: leave it all to the next pass
    groups: dict[str, list[Decision]] = defaultdict(list)
    for decision in decisions[len(going) :]:
        groups[decision.digest or decision.id].append(decision)
    holds: list[_Hold] = []
    for group in groups.values():
        if any(d.id not in plain for d in group):
            continue  # a digest with a message this pass leaves alone: all of it waits for the next pass
        members = [by_key[d.id] for d in group]
        for decision, row in zip(group, members, strict=True):
            holds.append(_Hold(row, decision, [m.subject for m in members if m.key != row.key]))
    return holds


async def _cancels_first(
    world: World,
    loaded: LoadedPolicy,
    rows: list[Row],
    starts: dict[str, datetime],
    now: datetime,
    placing: list[_Placing],
) -> tuple[Item | None, datetime | None]:
    """A CANCEL due now goes alone; those waiting for her sending hours are scheduled; the rest as usual."""
    cancelling = [r for r in rows if r.key in starts]
    decisions = cancel_pace.plan(loaded, cancelling, starts, now)
    due = next((d for d in decisions if d.due(now)), None)
    if due is not None:
        row = next(r for r in cancelling if r.key == due.id)
        log.info("%s → %s: %s", named(row.key, row.subject), loaded.name, due.reason)
        publish(Decided(row.key, loaded.id, loaded.name, row.subject, "send", due.reason))
        return Item([row]), now
    await _schedule(world, loaded, [_Hold(r, d, []) for d in decisions for r in cancelling if r.key == d.id])
    soonest = min((d.at for d in decisions if d.at is not None), default=None)
    rest = [r for r in rows if r.key not in starts]
    item, wake = await _carry_out_for(world, loaded, rest, now, placing) if rest else (None, None)
    return item, min((t for t in (wake, soonest) if t is not None), default=None)


async def _schedule(world: World, loaded: LoadedPolicy, holds: list[_Hold], *, tell: bool = True) -> None:
    """Make sure held messages sit in Scheduled and that the student knows when and why (one notice per burst).
    ``tell=False``: placed only; the next pass tells her (see :func:`_waiting_behind`)."""
    folders = world.folders
    ledger = world.ledger
    # The decisions are recorded before the move: a crash in between leaves scheduled rows still marked as in
    # the Outbox, and the next pass moves them.
    with ledger.transaction():
        for hold in holds:
            if hold.changed:
                decision = hold.decision
                ledger.update(
                    hold.row.key, state=SCHEDULED, due=decision.at, digest=decision.digest, reason=decision.reason
                )
    in_outbox = [hold for hold in holds if hold.row.folder == folders.outbox and hold.row.uid is not None]
    if in_outbox:
        moved = await world.imap(
            world.mailbox.move_many, folders.outbox, [h.row.uid for h in in_outbox], folders.scheduled
        )
        placed: dict[str, int | None] = {}
        for hold in in_outbox:
            if hold.row.uid in moved:
                new_uid = moved[hold.row.uid]
                placed[hold.row.key] = (
                    new_uid if new_uid is not None else await world.locate(folders.scheduled, hold.row.key, None)
                )
        held_there = set(world.ledger.in_folder(folders.scheduled)) | {uid for uid in placed.values() if uid}
        for hold in in_outbox:  # moved by an earlier try whose answer was lost (a crash, a dropped connection)
            if hold.row.key not in placed:
                found = await _found_again(world, folders.scheduled, hold.row, held_there)
                if found is not None:
                    placed[hold.row.key] = found
        gone = {hold.row.key for hold in in_outbox if hold.row.key not in placed}
        with ledger.transaction():
            for key, new_uid in placed.items():
                ledger.update(key, folder=folders.scheduled, uid=new_uid)
            for key in gone:
                ledger.update(key, state=CANCELLED, detail="removed from the Outbox before it was scheduled")
        for key in gone:
            publish(Cancelled(key, "removed from the Outbox before it was scheduled"))
        holds = [hold for hold in holds if hold.row.key not in gone]
    to_tell = [hold for hold in holds if hold.told != hold.row.told] if tell else []
    if not to_tell:
        return
    for hold in to_tell:
        log.info("%s → %s: %s", named(hold.row.key, hold.row.subject), loaded.name, hold.decision.reason)
        publish(
            Decided(
                hold.row.key,
                loaded.id,
                loaded.name,
                hold.row.subject,
                hold.kind,
                hold.decision.reason,
                hold.decision.at,
                hold.decision.digest,
            )
        )
    zone, student_zone = loaded.policy.zone, world.settings.student.zone
    if len(to_tell) == 1:
        hold = to_tell[0]
        title, lines = scheduled_lines(
            hold.row.subject, loaded.name, hold.decision.at, hold.decision.reason, zone, student_zone, hold.others
        )
    else:
        held = [Held(h.row.subject, h.decision.at, h.decision.reason, h.decision.digest) for h in to_tell]
        title, lines = held_lines(loaded.name, held, zone, student_zone)
    # Under an id of what it tells (these messages, from the time she was last told to this one): a try after an
    # APPEND whose answer never came (a drop, a cut for a trickle, a kill right here) finds it there rather than tell
    # it again; a time that comes back after another one is told again
    told = "\n".join(f"{h.row.key}|{h.row.told}|{h.told}" for h in to_tell)
    made = "held-" + hashlib.sha256(told.encode()).hexdigest()[:24]
    if not await world.notify_once(title, lines, made, about=to_tell[0].row.message_id):
        return  # not told: the next pass tells her
    with ledger.transaction():
        for hold in to_tell:
            ledger.update(hold.row.key, told=hold.told)
            ledger.log("scheduled", mentor=loaded.id, message=hold.row.key, detail=hold.decision.reason)
