"""Questions for a meeting already agreed: they go as its updated invitation, ``agenda_ahead`` before it.

When a meeting with the mentor is agreed and still ahead, new agenda questions do not start another round:
they are marked ``agenda:next-<round id>`` (that round's accepted meeting) and wait. From ``[agreement]
agenda_ahead`` before the meeting (24 hours by default; at once when it is sooner), one updated invitation goes
(a REQUEST with the same UID and SEQUENCE: the same meeting, its description now listing them as well), paced
like any e-mail. Once SMTP accepted it, they are filed as delivered with it (:mod:`agent.reconcile.agenda_filing`).

Crash safety: the update is first recorded in the round (its Message-ID with the questions it lists, and a
todo that the meeting desk appends if this pass does not), in one transaction; a question in a recorded
update is never listed again. If the meeting is declined or called off before the update left, the questions
wait for the next round again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from agent.reconcile.agenda_changes import questions_of
from agent.reconcile.agenda_filing import file_questions, in_doubt, release
from agent.reconcile.attention import attention
from agent.reconcile.context import World
from agent.reconcile.meeting_desk import flush
from agent.rules import agenda
from agent.rules.envelope import domain_of, new_message_id
from agent.rules.localtime import after, describe
from agent.rules.meeting_deadlines import LATE_UPDATE, OFF_UPDATE
from agent.rules.meetings import Offer
from agent.rules.policy import LoadedPolicy
from agent.store.ledger import ACCEPTED, ATTENTION, CANCELLED, DONE, Row
from agent.store.rounds import MeetingStore, Stored

log = logging.getLogger("mentor_agent.agenda")
NEXT = "next-"  # token prefix: the agreed meeting of round <id>


def agreed_ahead(store: MeetingStore, mentor: str, now: datetime) -> tuple[Stored, Offer] | None:
    """The next agreed meeting with ``mentor`` that has not begun, with its round."""
    found: list[tuple[Stored, Offer]] = []
    for stored in store.open_rounds():
        if stored.mentor != mentor or stored.state is None:
            continue
        found += [(stored, o) for o in stored.state.offers if o.status == "accepted" and o.slot.utc_start > now]
    return min(found, key=lambda pair: pair[1].slot.utc_start, default=None)


def token_for(stored: Stored) -> str:
    return NEXT + stored.round_id


def reason(loaded: LoadedPolicy, offer: Offer) -> str:
    when = describe(offer.slot.utc_start, loaded.policy.zone)
    ahead = loaded.policy.agreement.agenda_ahead
    return (
        f"over the agreed limit with {loaded.name}: goes with the invitation of your meeting on {when}, "
        f"updated to list it ({int(ahead.total_seconds() // 3600)} hours ahead), not as an e-mail"
    )


async def follow(
    world: World, store: MeetingStore, loaded: LoadedPolicy, round_id: str, members: Sequence[Row]
) -> tuple[bool, datetime | None]:
    """Send, follow and file the agenda update of round ``round_id``'s meeting. Returns (changed, wake)."""
    stored = store.load(round_id)
    offer = next((o for o in stored.state.offers if o.status == "accepted"), None) if stored and stored.state else None
    updates: list[dict[str, Any]] = stored.extra.get("agenda_updates", []) if stored else []
    listed = {key: update for update in updates for key in update["keys"]}
    now = world.now()
    changed = False
    for update in updates:  # updates already recorded: filed once SMTP took them
        rows = [r for r in members if r.key in update["keys"]]
        if not rows:
            continue
        known = store.message_state(update["message_id"])
        if known is not None and known[0] in (ACCEPTED, DONE):
            await file_questions(world, loaded, rows, update["message_id"])
            changed = True
        elif known is not None and known[0] == ATTENTION and in_doubt(world, update["message_id"]):
            # It may have reached her, the questions with it: in doubt as it is, never e-mailed on a guess
            why = "it went as the agenda of the meeting's updated invitation, whose sending is in doubt"
            await attention(world, rows, why, doubt=True)
            changed = True
        elif known is not None and known[0] in (CANCELLED, ATTENTION):
            why = _why_not_gone(world, update["message_id"])
            release(world, rows, why)
            if stored is not None and _taken_off(stored, update):  # a later invitation (a counter) lists them not
                store.save(stored)
            title, lines = agenda.released_lines(loaded.name, [r.subject for r in rows], why)
            await world.notify(title, lines, about=rows[0].message_id)
            changed = True
    fresh = [r for r in members if r.key not in listed]
    if not fresh:
        return changed, None
    if stored is None or stored.state is None or offer is None or offer.slot.utc_start <= now:
        _requeue(world, fresh)  # the meeting is off (or over): they wait for the next round
        return True, None
    due = after(offer.slot.utc_start, -loaded.policy.agreement.agenda_ahead)
    if due > now:
        return changed, due
    await _send_update(world, store, loaded, stored, offer, fresh)
    return True, None


def _taken_off(stored: Stored, update: dict[str, Any]) -> bool:
    """The round's description without what ``update`` added to it (its questions go by e-mail now: a later
    invitation of the meeting, after a counter-proposal, listed them still). Whether it changed."""
    added = update.get("added")
    if not added or added not in (stored.description or ""):
        return False
    description = str(stored.description)
    stored.description = (
        description.replace(f"\n\n{added}", "", 1)
        if f"\n\n{added}" in description
        else (description.replace(added, "", 1))
    )
    return True


def _why_not_gone(world: World, message_id: str) -> str:
    key = world.ledger.key_of(message_id, CANCELLED)
    row = world.ledger.get(key) if key else None
    if row is not None and row.detail == LATE_UPDATE:  # agent.reconcile.invite_deadline took it back
        return "the updated meeting invitation could not leave in time before the meeting (the e-mail pace held it)"
    if row is not None and row.detail == OFF_UPDATE:
        return "the meeting is no longer agreed, so its updated invitation was not sent"
    return "the updated meeting invitation did not go out"


def _requeue(world: World, rows: Sequence[Row]) -> None:
    with world.ledger.transaction():
        for row in rows:
            world.ledger.update(row.key, digest=agenda.PENDING)


async def _send_update(
    world: World, store: MeetingStore, loaded: LoadedPolicy, stored: Stored, offer: Offer, fresh: Sequence[Row]
) -> None:
    questions = await questions_of(world, sorted(fresh, key=lambda r: (r.arrived, r.key)))
    student = world.settings.student.name or "the student"
    added = agenda.describe(questions, student)
    stored.description = f"{stored.description}\n\n{added}" if stored.description else added
    message_id = new_message_id(domain_of(world.settings.student.address))
    now = world.now()
    item = {
        "id": uuid.uuid4().hex,
        "kind": "request",
        "created": now.isoformat(),
        "uid": offer.uid,
        "sequence": offer.sequence,
        "slot": [offer.slot.utc_start.isoformat(), offer.slot.utc_end.isoformat()],
        "alternatives": [],
        "message_id": message_id,
    }
    stored.todo = [*stored.todo, item]
    stored.extra["ids"] = [*stored.extra.get("ids", []), message_id]
    stored.extra["agenda_updates"] = [
        *stored.extra.get("agenda_updates", []),
        {"message_id": message_id, "keys": [r.key for r in fresh], "uid": offer.uid, "added": added},
    ]
    store.save(stored)  # one transaction: the update, what it lists and the todo that appends it
    await flush(world, store, stored, [str(item["id"])])
    log.info("agenda of the meeting with %s updated: %d question(s)", loaded.name, len(fresh))
    world.ledger.log("agenda update", mentor=loaded.id, message=message_id, detail=f"{len(fresh)} question(s)")
    title, lines = agenda.update_lines(
        loaded.name, describe(offer.slot.utc_start, world.settings.student.zone), [q.subject for q in questions]
    )
    await world.notify(title, lines, about=fresh[0].message_id)
