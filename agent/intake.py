"""One pass over the student's folders: take in the Outbox, follow Scheduled, and carry out the plan.

This is "reconcile, don't react": whatever woke the daemon, the pass looks at the folders, the ledger and
the clock and brings them to what the policies ask for. Running it twice changes nothing the second time.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from agent.delivery import deliver
from agent.envelope import Envelope, domain_of, new_message_id, parse_envelope
from agent.ledger import ATTENTION, CANCELLED, CLAIMED, DONE, NEW, OPEN_STATES, SCHEDULED, Row
from agent.mailbox import HeaderInfo, MessageGone
from agent.notices import scheduled_lines
from agent.pacing import Decision, Engine, Queued
from agent.policy import LoadedPolicy
from agent.world import World

log = logging.getLogger("mentor_agent.intake")
HISTORY_DAYS = 60


async def take_in_outbox(world: World) -> None:
    """Every message in the Outbox gets a ledger row (or goes to Needs attention with a notice)."""
    folder = world.folders.outbox
    _, uids = await world.imap(world.mailbox.uids, folder)
    known = world.ledger.in_folder(folder)
    fresh = [uid for uid in uids if uid not in known]
    if not fresh:
        return
    for info in await world.imap(world.mailbox.headers, folder, fresh):
        await _take_in(world, info)


async def _take_in(world: World, info: HeaderInfo) -> None:
    ledger = world.ledger
    folders = world.folders
    envelope = parse_envelope(info.headers)
    existing = ledger.get(envelope.key)
    arrived = world.now()  # when the agent first saw it: the same clock every rule is read with
    if existing is not None and existing.state in OPEN_STATES and existing.folder != folders.outbox:
        # A copy of a message that is already on its way: sending it would send it twice.
        await _refuse(world, info, envelope, f"a copy of it is already {existing.state} ({existing.folder})")
        return
    if existing is not None and existing.state == DONE:
        when = existing.sent_at.isoformat(timespec="minutes") if existing.sent_at else "earlier"
        await _refuse(world, info, envelope, f"it was already sent ({when}); write it as a new message to send again")
        return
    if envelope.problems:
        await _refuse(world, info, envelope, "; ".join(envelope.problems))
        return
    mentors = {p.id: p for p in (world.book.for_address(a) for a in envelope.recipients) if p is not None}
    if len(mentors) > 1:
        names = " and ".join(p.name for p in mentors.values())
        why = f"it is addressed to more than one mentor ({names}); write to each on their own"
        await _refuse(world, info, envelope, why)
        return
    if not mentors and not world.settings.pass_through:
        if existing is None:
            log.info("%s: to no mentor, and pass_through is off: left in the Outbox", envelope.key)
            ledger.add(_row(envelope, None, arrived, NEW, folders.outbox, info.uid, world))
            ledger.update(envelope.key, state=ATTENTION, detail="pass_through is off")
        return
    mentor = next(iter(mentors.values()), None)
    if mentor is not None and envelope.meeting_request and envelope.agent_kind != "invite":
        from agent import meeting_desk

        if await meeting_desk.meeting_requested(world, mentor, envelope, info):
            return
    row = _row(envelope, mentor, arrived, NEW, folders.outbox, info.uid, world)
    row = replace(row, forced="\\Flagged" in info.flags)
    with ledger.transaction():
        if existing is not None:  # moved back to the Outbox by the student: start afresh
            ledger.db.execute("DELETE FROM messages WHERE key = ?", (envelope.key,))
        ledger.add(row)
        ledger.log("seen", mentor=mentor.id if mentor else None, message=row.key, detail=row.subject)


def _row(envelope: Envelope, mentor: LoadedPolicy | None, arrived: datetime, state: str, folder: str, uid: int,
         world: World) -> Row:
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
        # A reply in a conversation keeps its thread, and an invite is one iTIP object per e-mail: never digested.
        standalone=bool(envelope.references) or envelope.agent_kind == "invite",
        group_key=envelope.group_key,
        forced=False,
        told="",
        attempts=0,
        item=None,
        sent_at=None,
        detail="",
    )


async def _refuse(world: World, info: HeaderInfo, envelope: Envelope, why: str) -> None:
    folders = world.folders
    try:
        await world.imap(world.mailbox.move, folders.outbox, info.uid, folders.needs_attention)
    except MessageGone:
        return
    world.ledger.log("attention", message=envelope.key, detail=why)
    log.warning("%s: to Needs attention: %s", envelope.key, why)
    subject = envelope.subject or "(no subject)"
    await world.notify(
        f"Not sent: {subject}",
        [f"“{subject}” was not sent: {why}.",
         "It is in the Needs attention folder; fix it and move it back to the Outbox to try again."],
        about=envelope.message_id,
    )


async def follow_scheduled(world: World) -> None:
    """Deleted from Scheduled: cancelled. Flagged there: to go now. Found there but unknown: taken in."""
    folder = world.folders.scheduled
    _, uids = await world.imap(world.mailbox.uids, folder)
    present = set(uids)
    known = world.ledger.in_folder(folder)
    for uid, row in known.items():
        if uid not in present and row.state == SCHEDULED:
            moved = await world.locate(folder, row.key, None)  # renumbered (UIDVALIDITY changed), not deleted
            if moved is not None:
                world.ledger.update(row.key, uid=moved)
                continue
            world.ledger.update(row.key, state=CANCELLED, detail="deleted from Scheduled by the student")
            world.ledger.log("cancelled", mentor=row.mentor, message=row.key, detail="deleted from Scheduled")
            log.info("%s: cancelled (deleted from Scheduled)", row.key)
    infos = await world.imap(world.mailbox.headers, folder, uids) if uids else []
    for info in infos:
        flagged = known.get(info.uid)
        if flagged is None or "\\Flagged" not in info.flags or flagged.forced:
            continue
        world.ledger.update(flagged.key, forced=True)
        world.ledger.log("flagged", mentor=flagged.mentor, message=flagged.key, detail="send now anyway")
        log.info("%s: flagged by the student: goes now, outside the agreement", flagged.key)


async def carry_out(world: World) -> datetime | None:
    """Decide every waiting message, send what is due, schedule the rest. Returns when to look again."""
    now = world.now()
    if world.settings.pass_through:
        for row in world.ledger.in_states(NEW, SCHEDULED):
            if row.mentor is None:  # to no mentor, or to one whose policy was removed (after a notice)
                await deliver(world, [row])
    for row in world.ledger.in_states(CLAIMED):
        await deliver(world, [row])  # claimed before a restart, never handed to SMTP
    waiting: dict[str, list[Row]] = defaultdict(list)
    for row in world.ledger.in_states(NEW, SCHEDULED):
        if row.mentor is not None:
            waiting[row.mentor].append(row)
    wake: datetime | None = None
    for mentor_id, rows in waiting.items():
        if world.stopping.is_set():
            return now
        loaded = world.book.by_id.get(mentor_id)
        if loaded is None:
            continue  # policy removed: the messages stay where they are (see the live-reload rules)
        moment = await _carry_out_for(world, loaded, rows, now)
        if moment is not None and (wake is None or moment < wake):
            wake = moment
    return wake


async def _carry_out_for(world: World, loaded: LoadedPolicy, rows: list[Row], now: datetime) -> datetime | None:
    history = world.ledger.history(loaded.id, now - timedelta(days=HISTORY_DAYS))
    engine = Engine(loaded.policy, history)
    queue = [Queued(r.key, r.arrived, r.subject, r.standalone, r.group_key, r.forced) for r in rows]
    decisions = engine.plan(sorted(queue, key=lambda q: q.arrived), now)
    by_key = {r.key: r for r in rows}
    groups: dict[str, list[Decision]] = defaultdict(list)
    for decision in decisions:
        groups[decision.digest or decision.id].append(decision)
    wake: datetime | None = None
    for group in groups.values():
        first = group[0]
        members = [by_key[d.id] for d in group]
        if first.due(now):
            if world.stopping.is_set():
                return now
            for decision in group:
                log.info("%s → %s: %s", decision.id, loaded.name, decision.reason)
            await deliver(world, members, follow_up=first.follow_up)
            return now  # the plan assumed this send: plan again from the new state
        for decision, row in zip(group, members, strict=True):
            await _schedule(world, loaded, row, decision, [m.subject for m in members if m.key != row.key])
        if first.at is not None and (wake is None or first.at < wake):
            wake = first.at
    return wake


async def _schedule(world: World, loaded: LoadedPolicy, row: Row, decision: Decision, others: list[str]) -> None:
    """Make sure a held message sits in Scheduled and that the student knows when and why."""
    folders = world.folders
    ledger = world.ledger
    # Tell the student again only when the time or the digest changes, not each time another message joins it.
    told = f"{decision.at.astimezone(UTC).isoformat() if decision.at else 'held'}|{decision.digest or ''}"
    # The decision is recorded before the move: a crash in between leaves a scheduled row still marked as in
    # the Outbox, and the next pass moves it.
    ledger.update(row.key, state=SCHEDULED, due=decision.at, digest=decision.digest, reason=decision.reason)
    if row.folder == folders.outbox:
        try:
            new_uid = await world.imap(world.mailbox.move, folders.outbox, row.uid, folders.scheduled)
        except MessageGone:
            ledger.update(row.key, state=CANCELLED, detail="removed from the Outbox before it was scheduled")
            return
        if new_uid is None:
            new_uid = await world.locate(folders.scheduled, row.key, None)
        ledger.update(row.key, folder=folders.scheduled, uid=new_uid)
    if told == row.told:
        return
    ledger.update(row.key, told=told)
    ledger.log("scheduled", mentor=loaded.id, message=row.key, detail=decision.reason)
    log.info("%s → %s: %s", row.key, loaded.name, decision.reason)
    title, lines = scheduled_lines(
        row.subject, loaded.name, decision.at, decision.reason, loaded.policy.zone, world.settings.student.zone,
        others,
    )
    await world.notify(title, lines, about=row.message_id)
