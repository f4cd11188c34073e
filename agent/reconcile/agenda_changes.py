"""Changing the agenda of an invitation that has not left yet (see :mod:`agent.reconcile.agenda_desk`).

While every invitation of an agenda round still waits in Scheduled, questions that come **join** it and
questions the student takes out of Scheduled are **taken off**: one transaction
(:func:`agent.store.agenda.join_invitation`) gives the round its new description and the REQUESTs to append
(as its todo), points its offers at them and cancels the old ones; then the old ones leave Scheduled and the
new ones are appended to the Outbox. A crash after the transaction leaves the old ones cancelled (never sent)
and the new ones in the round's todo, which the meeting desk appends.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from agent.crashpoints import crash_point
from agent.reconcile.context import World
from agent.reconcile.meeting_desk import flush
from agent.rules import agenda
from agent.rules.envelope import domain_of, new_message_id
from agent.rules.meetings import send_by
from agent.rules.policy import LoadedPolicy
from agent.store.agenda import REPLACED, by_message_id, join_invitation
from agent.store.ledger import CANCELLED, SCHEDULED, Row
from agent.store.rounds import MeetingStore, Stored

log = logging.getLogger("mentor_agent.agenda")


def joinable(world: World, store: MeetingStore, mentor: str) -> tuple[Stored, dict[str, Row]] | None:
    """An open agenda round with ``mentor`` none of whose invitations has left yet, each still waiting in
    Scheduled: its agenda can still change (its invitations are rebuilt). With the REQUEST rows, by offer uid."""
    for stored in store.open_rounds():
        if stored.mentor == mentor and stored.source.startswith("agenda:"):
            requests = waiting_requests(world, store, stored)
            if requests is not None and in_time(stored, requests, world.now()):
                return stored, requests
    return None


def in_time(stored: Stored, requests: dict[str, Row], now: datetime) -> bool:
    """Whether every invitation of the round may still leave by its start less ``min_notice``: a question never
    joins one that would reach the mentor late. One the pace plans past that deadline is withdrawn in the same
    pass that plans it (:mod:`agent.reconcile.invite_deadline`); one held for a reply may still go in time."""
    state = stored.state
    assert state is not None
    for uid in requests:
        offer = state.offer(uid)
        if offer is None or now > send_by(state, offer):
            return False
    return True


def waiting_requests(world: World, store: MeetingStore, stored: Stored) -> dict[str, Row] | None:
    state = stored.state
    if state is None or stored.todo or not stored.open or state.outcome != "open":
        return None
    if any(o.ever_sent for o in state.offers):
        return None
    requests: dict[str, Row] = {}
    for offer in state.offers:
        if offer.status != "planned":
            continue
        message_id = store.request_id(offer.uid)
        row = by_message_id(world.ledger, message_id) if message_id else None
        if row is None or row.state != SCHEDULED or row.folder != world.folders.scheduled or row.uid is None:
            return None  # being taken in, claimed or sent: too late to change
        requests[offer.uid] = row
    return requests or None


async def drop(world: World, store: MeetingStore, loaded: LoadedPolicy, dropped: list[Row]) -> bool:
    """Questions taken out of Scheduled (deleted, or `cancel`) after they were put on an agenda: while its
    invitation still waits, it is rebuilt without them; once it has left (or the round is over) nothing changes."""
    by_token: dict[str, list[Row]] = defaultdict(list)
    for row in dropped:
        token = agenda.token_of(row.digest)
        if token is not None:
            by_token[token].append(row)
    changed = False
    for token, rows in by_token.items():
        stored = store.by_source(agenda.source(token))
        requests = waiting_requests(world, store, stored) if stored is not None else None
        if stored is not None and requests is not None:
            await rebuild(world, store, loaded, (stored, requests), [], rows)
            changed = True
        elif stored is None or not stored.open or sent_invitation(store, stored) is not None:
            with world.ledger.transaction():  # nothing to change any more: forget them
                for row in rows:
                    world.ledger.update(row.key, digest=None)
    return changed


async def rebuild(
    world: World,
    store: MeetingStore,
    loaded: LoadedPolicy,
    joinable: tuple[Stored, dict[str, Row]],
    fresh: list[Row],
    dropped: Sequence[Row] = (),
) -> None:
    """Rebuild the waiting invitation(s) of ``stored`` with ``fresh`` questions added to its agenda and
    ``dropped`` ones taken off: one transaction (store.agenda), then the old REQUESTs leave Scheduled and the new
    ones are appended."""
    stored, requests = joinable
    token = stored.source.removeprefix("agenda:")
    gone = {row.key for row in dropped}
    members = [
        r
        for r in world.ledger.in_states(SCHEDULED, mentor=loaded.id)
        if agenda.token_of(r.digest) == token and r not in fresh and r.key not in gone
    ]
    everything = sorted([*members, *fresh], key=lambda r: (r.arrived, r.key))
    questions = await questions_of(world, everything)
    rules = loaded.policy.meetings
    if questions:
        stored.description = agenda.describe(questions, world.settings.student.name or "the student")
        stored.topic = f"Mentoring: {agenda.topic(questions)}"
    else:  # every question was taken off: the meeting itself is still offered, as `propose` would
        stored.description, stored.topic = rules.description, rules.description or "Mentoring meeting"
    domain = domain_of(world.settings.student.address)
    now = world.now()
    assert stored.state is not None
    new_ids: dict[str, str] = {}
    items: list[dict[str, Any]] = []
    for offer in stored.state.offers:
        if offer.uid not in requests:
            continue
        new_ids[offer.uid] = new_message_id(domain)
        items.append(
            {
                "id": uuid.uuid4().hex,
                "kind": "request",
                "created": now.isoformat(),
                "uid": offer.uid,
                "sequence": offer.sequence,
                "slot": [offer.slot.utc_start.isoformat(), offer.slot.utc_end.isoformat()],
                "alternatives": [[p.utc_start.isoformat(), p.utc_end.isoformat()] for p in stored.state.pending],
                "message_id": new_ids[offer.uid],
            }
        )
    stored.todo = [*stored.todo, *items]
    stored.extra["ids"] = [*stored.extra.get("ids", []), *new_ids.values()]
    join_invitation(
        world.ledger,
        stored,
        new_ids,
        [row.key for row in requests.values()],
        [row.key for row in fresh],
        agenda.attached(token),
        dropped=[row.key for row in dropped],
    )
    crash_point("agenda-joined")
    await tidy_replaced(world, loaded.id)
    await flush(world, store, stored, [str(item["id"]) for item in items])
    log.info(
        "agenda of the invitation to %s: %d question(s) added, %d taken off", loaded.name, len(fresh), len(dropped)
    )
    world.ledger.log(
        "agenda changed", mentor=loaded.id, detail=f"round {stored.round_id}, +{len(fresh)} -{len(dropped)}"
    )
    title, lines = agenda.changed_lines(
        loaded.name,
        [q.subject for q in questions],
        [agenda.clean_subject(r.subject) for r in fresh],
        [agenda.clean_subject(r.subject) for r in dropped],
    )
    await world.notify(title, lines, about=(fresh or dropped)[0].message_id if (fresh or dropped) else None)


async def tidy_replaced(world: World, mentor: str) -> None:
    """Old invitations replaced by a longer agenda leave Scheduled (their rows are cancelled already, so they
    can never go; this only takes them out of sight)."""
    for row in world.ledger.in_states(CANCELLED, mentor=mentor):
        if row.detail != REPLACED or row.folder is None:
            continue
        uid = await world.locate(row.folder, row.key, row.uid)
        if uid is not None:
            await world.imap(world.mailbox.delete, row.folder, uid)
        world.ledger.update(row.key, folder=None, uid=None)


async def questions_of(world: World, rows: Sequence[Row]) -> list[agenda.Question]:
    questions = []
    for row in rows:
        raw = None
        uid = await world.locate(row.folder, row.key, row.uid) if row.folder else None
        if uid is not None and row.folder is not None:
            raw = await world.imap(world.mailbox.fetch, row.folder, uid)
        questions.append(
            agenda.question_of(raw, row.subject) if raw else agenda.Question(agenda.clean_subject(row.subject), "")
        )
    return questions


def sent_invitation(store: MeetingStore, stored: Stored) -> str | None:
    """The Message-ID of an invitation of this round that SMTP accepted (it carried the agenda), if any."""
    if stored.state is None:
        return None
    for offer in stored.state.offers:
        if offer.ever_sent:
            request = store.request_id(offer.uid)
            if request is not None:
                return request
    return None
