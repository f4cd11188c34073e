"""Meetings in the daemon: proposals out through the Outbox, replies in from INBOX.

The desk never speaks SMTP. An invitation or a CANCEL to a mentor is built with :mod:`agent.rules.invites`,
marked ``X-Mentor-Agent: invite`` and APPENDed into the Outbox: the normal path paces it (it counts against
the mentor's e-mail budget), sends it exactly once and files it in Sent. The desk follows each REQUEST's
Message-ID in the ledger and calls ``mark_sent`` once SMTP accepted it; a CANCEL is only decided by the pure
round (:mod:`agent.rules.meetings`) for an offer whose REQUEST SMTP accepted, so it is never appended earlier. An
offer withdrawn while its REQUEST still waits in the Outbox, Scheduled or Sending (claimed, never handed to SMTP)
is removed from there instead.
What is only for the student — their own copy of an agreed meeting, a meeting *suggestion*, notices — is
APPENDed into the notices folder and never goes through SMTP.

A "[meeting]" message in the Outbox: its text becomes the invitation's description, the round starts at
once, and the original is moved to Sent (\\Seen) with a notice that it became an invitation which goes when
the agreement allows. It is filed once the invitation is written (in the Outbox), before it has left — the
simplest honest choice: the message itself is never sent, the invitation that carries its words is. When no
time is free, or the invitation cannot be written (its offers are then withdrawn: nothing of it goes later), the
original goes to Needs attention instead, with the reason.

A REQUEST that ends in Needs attention or is deleted by the student (from Scheduled) withdraws its offer;
an offer whose send is *in doubt* is treated as not sent, so a later reply to it is ignored (logged).

Why one module of ~750 lines: it is one concept, the desk between a meeting round (pure, in
:mod:`agent.rules.meetings`) and the folders. Proposing, carrying out a round's actions, following the REQUESTs
through the ledger and reading the replies share one invariant — every action of a round is done exactly once,
in order, across crashes (the round's to-do list in :mod:`agent.store.rounds`) — and one set of helpers; split,
each part would need the others' private steps. (A natural seam later: the INBOX replies, ``_read_inbox``.)
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import logging
import uuid
import weakref
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage, Message
from email.utils import getaddresses
from typing import Any, cast

from agent.logs import named
from agent.mail.port import HeaderInfo
from agent.mail.session import MailboxError, MessageGone
from agent.reconcile.attention import attention
from agent.reconcile.context import World
from agent.reconcile.events import MeetingAgreed, MeetingOffered, publish
from agent.reconcile.history import MEETING_REQUEST, Seen, new_headers
from agent.reconcile.keep_clear import invite_start, is_free_for, keep_clear, why_none
from agent.reconcile.meeting_suggest import append_suggestion, suggest, suggestion_answered
from agent.rules.addresses import normal_address
from agent.rules.answer_kind import classify
from agent.rules.envelope import (
    MEETING_TAG,
    Envelope,
    domain_of,
    fingerprint,
    new_message_id,
    parse_envelope,
    split_key,
    variant_key,
)
from agent.rules.invites import (
    CALENDAR_TYPES,
    InviteError,
    ItipObject,
    Meeting,
    Party,
    build_cancel,
    build_request,
    build_student_copy,
    describe_slot,
    parse_itip,
    wire_bytes,
)
from agent.rules.localtime import after
from agent.rules.meetings import (
    Action,
    Belated,
    Ignored,
    NotifyStudent,
    RecordMeeting,
    Round,
    SendCancel,
    SendInvite,
    SendStudentCopy,
    apply_reply,
    cancel_round,
    expire,
    mark_sent,
    send_by,
    start_round,
    usable_stamp,
    withdraw_late,
)
from agent.rules.policy import LoadedPolicy
from agent.rules.slots import Slot, find_slots
from agent.store.answers import logged
from agent.store.ledger import ACCEPTED, ATTENTION, CANCELLED, CLAIMED, DONE, NEW, SCHEDULED
from agent.store.rounds import ANSWER_READ, BELATED_TOLD, STALE, MeetingStore, Stored

log = logging.getLogger("mentor_agent.meetings")
LATE_STEP = timedelta(seconds=1)  # an invitation may leave at its deadline itself: it is withdrawn just after

ANSWER_FAILED = "calendar answer failed"  # logged about a message whose answer the agent failed on: told once
_SEEN: weakref.WeakKeyDictionary[Any, Seen] = weakref.WeakKeyDictionary()  # per IMAP session


@dataclass(frozen=True)
class Proposal:
    offered: tuple[Slot, ...]
    problem: str = ""
    round_id: str = ""
    zone: Any = UTC


# -- proposing -------------------------------------------------------------------------------------------


def _party(world: World) -> Party:
    student = world.settings.student
    return Party(student.name, normal_address(student.address))


def _both(slot: Slot, loaded: LoadedPolicy | Round, student_zone: Any) -> str:
    zone = loaded.zone if isinstance(loaded, Round) else loaded.policy.zone
    mine, theirs = describe_slot(slot, student_zone), describe_slot(slot, zone)
    return mine if mine == theirs else f"{mine} (for them: {theirs})"


async def propose(
    world: World,
    loaded: LoadedPolicy,
    *,
    topic: str = "",
    description: str = "",
    source: str = "",
    preferred: Slot | None = None,
    about: str | None = None,
) -> Proposal:
    """Start a round with ``loaded``'s mentor: find free times, append the REQUEST(s), tell the student."""
    store = MeetingStore(world.ledger)
    rules, zone = loaded.policy.meetings, loaded.policy.zone
    now = world.now()
    refused = ""
    if not rules.windows:
        problem = f"{loaded.path} has no [meetings] windows, so no time can be offered"
    else:
        try:
            busy, agreed = await keep_clear(world, store, loaded.id, rules.horizon)
        except Exception as error:
            busy, agreed, problem = [], [], f"your busy calendar cannot be read: {error}"
        else:
            # The first time no earlier than its invitation can leave under the pace (holds: the last of them).
            start = invite_start(world.ledger, loaded, now, count=rules.proposals if rules.strategy == "holds" else 1)
            slots = find_slots(rules, zone, now, busy, agreed, not_before=start)
            log.debug(
                "meeting times for %s: %s (kept clear: %d busy block(s) — your calendars, your hours, "
                "offers and meetings)",
                loaded.name,
                ", ".join(describe_slot(s, world.settings.student.zone) for s in slots) or "none",
                len(busy),
            )
            if preferred is not None:
                refused = _refused(world, loaded, preferred, busy, now)
                if not refused:
                    slots = [preferred, *[s for s in slots if not s.overlaps(preferred.start, preferred.end)]]
                    slots = slots[: rules.proposals]
            problem = "" if slots else why_none(loaded, now, busy, agreed, start)
    if problem:
        log.info("no meeting proposed to %s: %s", loaded.name, problem)
        await world.notify(f"No meeting time with {loaded.name}", [f"No meeting was proposed: {problem}."], about=about)
        return Proposal((), problem, zone=zone)
    student = _party(world)
    round_id = uuid.uuid4().hex[:16]
    mentor = Party(loaded.name, loaded.policy.mentor.addresses[0])
    state, actions = start_round(
        rules,
        zone,
        mentor=mentor,
        student=student,
        student_zone=world.settings.student.zone,
        slots=slots,
        round_id=round_id,
        domain=domain_of(student.address),
    )
    summary = f"Mentoring: {topic}" if topic else (rules.description or "Mentoring meeting")
    stored = Stored(
        round_id, loaded.id, state=None, topic=summary, description=description or rules.description, source=source
    )
    if refused:
        stored.extra["preferred"] = refused  # why the time asked for is not among those offered
    offered = tuple(a.slot for a in actions if isinstance(a, SendInvite))
    listed = "\n".join(f"  • {_both(s, loaded, world.settings.student.zone)}" for s in offered)
    later = tuple(state.pending)
    lines = [
        f"Offered {loaded.name} "
        + ("these times, one invitation each:" if rules.strategy == "holds" else "this time:"),
        listed,
    ]
    if later:
        lines.append(
            "If it does not suit, these follow one by one:\n"
            + "\n".join(f"  • {_both(s, loaded, world.settings.student.zone)}" for s in later)
        )
    lines.append(
        "The invitation goes to them when the agreement allows (it counts as an e-mail); their answer arrives here."
    )
    await _carry(
        world,
        store,
        stored,
        state,
        actions,
        title=f"Meeting offered to {loaded.name}: {summary}",
        lines=lines,
        about=about,
    )
    log.info("meeting round %s with %s: %d time(s) offered", round_id, loaded.name, len(offered))
    publish(MeetingOffered(round_id, loaded.id, loaded.name, len(offered)))
    world.ledger.log("meeting proposed", mentor=loaded.id, detail=f"round {round_id}, {len(offered)} time(s)")
    return Proposal(offered + later, "", round_id, zone)


def _refused(world: World, loaded: LoadedPolicy, preferred: Slot, busy: list[Any], now: datetime) -> str:
    """Why the time asked for (an accepted suggestion's) cannot be offered: "late" (its invitation could not leave
    ``min_notice`` before it under the pace), "busy" (no longer free), or "" when it can."""
    rules = loaded.policy.meetings
    if preferred.utc_start < max(after(now, rules.min_notice), invite_start(world.ledger, loaded, now)):
        return "late"
    if any(preferred.overlaps(after(s, -rules.buffer), after(e, rules.buffer)) for s, e in busy):
        return "busy"
    return ""


# -- carrying out what a round decided ---------------------------------------------------------------------


async def call_off(world: World, loaded: LoadedPolicy) -> list[str]:
    """The student calls off every open round with ``loaded``'s mentor (``mentor-agent withdraw``): offers
    already sent get a CANCEL, those whose REQUEST has not left are taken back by the daemon before they go
    (:func:`_follow`), and times not offered yet are dropped. An agreed meeting is not touched. Returns the
    round ids called off."""
    store = MeetingStore(world.ledger)
    called: list[str] = []
    for stored in store.open_rounds():
        if stored.mentor != loaded.id or stored.state is None or stored.state.outcome != "open":
            continue
        state, actions = cancel_round(stored.state)
        title = f"Meeting with {loaded.name} called off"
        lines = [
            f"You called off the meeting offer to {loaded.name}" + (f" ({stored.topic})" if stored.topic else "") + ".",
            "Invitations already sent are cancelled; any still waiting to go are taken back.",
        ]
        await _carry(world, store, stored, state, actions, title=title, lines=lines)
        log.info("meeting round %s with %s: called off by the student", stored.round_id, loaded.name)
        world.ledger.log("meeting called off", mentor=loaded.id, detail=f"round {stored.round_id}")
        called.append(stored.round_id)
    return called


def _item(kind: str, now: datetime, **values: Any) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "kind": kind, "created": now.isoformat(), **values}


def _slot_of(item: dict[str, Any], zone: Any) -> Slot:
    return Slot(
        datetime.fromisoformat(item["slot"][0]).astimezone(zone),
        datetime.fromisoformat(item["slot"][1]).astimezone(zone),
    )


def _slot_json(slot: Slot) -> list[str]:
    return [slot.utc_start.isoformat(), slot.utc_end.isoformat()]


def _still_open(store: MeetingStore, stored: Stored, now: datetime) -> bool:
    state = stored.state
    if state is None or stored.todo or state.outcome == "open":
        return True
    for offer in state.offers:
        if offer.status == "accepted" and offer.slot.utc_end > now:
            return True  # the mentor may still decline the agreed meeting
        if offer.status == "cancelled" and not offer.ever_sent:
            request = store.request_id(offer.uid)
            known = store.message_state(request) if request else None
            if known is None or known[0] not in (DONE, CANCELLED, ATTENTION):
                return True  # its REQUEST may still leave: then its CANCEL must follow
    return False


async def _carry(
    world: World,
    store: MeetingStore,
    stored: Stored,
    state: Round,
    actions: tuple[Action, ...],
    *,
    title: str = "",
    lines: list[str] | None = None,
    about: str | None = None,
    read: str = "",
    belated: str = "",
) -> None:
    """Record the new state with what it asks for (as todo), in one transaction (with ``read``, the mark of the
    answer it applies: a drop while its notice goes does not apply it again; ``belated``, the mark of one told as
    come too late); then carry the todo out."""
    now = world.now()
    fresh: list[dict[str, Any]] = []
    message_ids: dict[str, str] = {}
    domain = domain_of(world.settings.student.address)
    notes: list[str] = []
    for action in actions:
        if isinstance(action, SendInvite):
            message_ids[action.uid] = new_message_id(domain)
            fresh.append(
                _item(
                    "request",
                    now,
                    uid=action.uid,
                    sequence=action.sequence,
                    slot=_slot_json(action.slot),
                    alternatives=[_slot_json(s) for s in action.alternatives],
                    message_id=message_ids[action.uid],
                )
            )
        elif isinstance(action, SendCancel):
            fresh.append(
                _item(
                    "cancel",
                    now,
                    uid=action.uid,
                    sequence=action.sequence,
                    slot=_slot_json(action.slot),
                    message_id=new_message_id(domain),
                )
            )
        elif isinstance(action, SendStudentCopy):
            fresh.append(
                _item(
                    "copy",
                    now,
                    uid=action.uid,
                    sequence=action.sequence,
                    slot=_slot_json(action.slot),
                    message_id=new_message_id(domain),
                )
            )
        elif isinstance(action, NotifyStudent):
            notes.append(action.text)
        elif isinstance(action, RecordMeeting):
            log.info("meeting agreed with %s: %s", state.mentor.name, describe_slot(action.slot, UTC))
            publish(MeetingAgreed(stored.mentor, state.mentor.name, action.slot.utc_start))
            world.ledger.log(
                "meeting agreed", mentor=stored.mentor, message=action.uid, detail=action.slot.utc_start.isoformat()
            )
        elif isinstance(action, Ignored):
            log.warning("meeting reply ignored (round %s): %s", stored.round_id, action.reason)
            world.ledger.log("meeting reply ignored", mentor=stored.mentor, detail=action.reason)
    if title:
        fresh.append(_item("notice", now, title=title, lines=lines or [], about=about))
    if notes:
        fresh.append(
            _item("notice", now, title=f"Meeting with {state.mentor.name}: {notes[0][:60]}", lines=notes, about=None)
        )
    stored.state = state
    stored.extra["ids"] = [
        *stored.extra.get("ids", []),
        *(i["message_id"] for i in fresh if i["kind"] in ("request", "cancel")),
    ]
    cancels = {i["message_id"]: i["uid"] for i in fresh if i["kind"] == "cancel"}
    if cancels:  # paced as cancellations: at once, never after the meeting (agent.reconcile.cancel_pace)
        stored.extra["cancels"] = {**stored.extra.get("cancels", {}), **cancels}
    stored.todo = [*stored.todo, *fresh]
    stored.open = _still_open(store, stored, now)
    store.save(stored, message_ids, read=read, belated=belated)
    await _flush(world, store, stored, [item["id"] for item in fresh])


async def _present(world: World, folder: str, message_id: str) -> bool:
    return bool(await world.imap(world.mailbox.find_by_message_id, folder, message_id))


async def _flush(world: World, store: MeetingStore, stored: Stored, ids: list[str]) -> None:
    """Carry out the todo items ``ids`` of ``stored``; each is removed from the ledger once done."""
    state = stored.state
    for item in [i for i in stored.todo if i["id"] in ids]:
        kind = item["kind"]
        if kind == "notice":
            made = f"meeting-{item['id']}"  # its own id: a try after an APPEND whose answer never came finds it
            if not await world.notify_once(item["title"], item["lines"], made, about=item.get("about")):
                continue  # not appended: kept in the todo, appended again on a later pass (see STALE)
        elif kind == "suggestion":
            await append_suggestion(world, stored, item)
        elif state is not None:
            slot = _slot_of(item, state.zone)
            described = _described(store, stored, item) if kind == "request" else stored.description
            meeting = Meeting(item["uid"], int(item["sequence"]), slot, stored.topic, state.rules.location, described)
            zones: dict[str, Any] = {"mentor_zone": state.zone, "student_zone": state.student_zone}
            folder = world.folders.notices if kind == "copy" else world.folders.outbox
            if kind == "request":
                alternatives = [_slot_of({"slot": a}, state.zone) for a in item["alternatives"]]
                message = build_request(
                    meeting,
                    organizer=state.student,
                    attendee=state.mentor,
                    now=world.now(),
                    alternatives=alternatives,
                    message_id=item["message_id"],
                    **zones,
                )
            elif kind == "cancel":
                message = build_cancel(
                    meeting,
                    organizer=state.student,
                    attendee=state.mentor,
                    now=world.now(),
                    message_id=item["message_id"],
                    **zones,
                )
            else:
                message = build_student_copy(
                    meeting,
                    student=state.student,
                    mentor=state.mentor,
                    now=world.now(),
                    message_id=item["message_id"],
                    **zones,
                )
            message["X-Mentor-Agent"] = "invite" if kind != "copy" else "meeting-copy"
            already = store.message_state(item["message_id"]) is not None
            if not already and not await _present(world, folder, item["message_id"]):
                await world.imap(world.mailbox.append, folder, wire_bytes(message))
                log.info("%s for %s (%s) appended to %s", kind, state.mentor.name, item["uid"], folder)
        store.remove_todo(stored.round_id, item["id"])
        stored.todo = [i for i in stored.todo if i["id"] != item["id"]]


flush = _flush  # for agenda_desk: append a REQUEST rebuilt with a longer agenda


# -- following the REQUESTs --------------------------------------------------------------------------------


LATE = "withdrawn: it could not leave by its start less min_notice"  # the detail of a REQUEST taken back late


async def _retract(world: World, message_id: str, why: str = "meeting offer withdrawn before it was sent") -> None:
    """A withdrawn offer whose REQUEST has not left yet: take it out of Outbox/Scheduled (or Sending, where a
    crash or a stop left it claimed, never handed to SMTP) before it goes."""
    key = world.ledger.key_of(message_id, NEW, SCHEDULED, CLAIMED)
    found = world.ledger.get(key) if key else None
    if found is None or found.folder is None:
        return
    uid = await world.locate(found.folder, found.key, found.uid)
    if uid is not None and any(logged(world.ledger, event, found.key) for event in ("attention", "in doubt")):
        # Moved back by the student from Needs attention: hers to see, never deleted; filed there again, told why.
        why = "its meeting offer was withdrawn when it could not go, so it does not go now"
        await attention(world, [replace(found, uid=uid)], why, doubt=False)
        return
    world.ledger.update(found.key, state=CANCELLED, detail=why)
    world.ledger.log("cancelled", mentor=found.mentor, message=found.key, detail="meeting offer withdrawn")
    if uid is not None:
        await world.imap(world.mailbox.delete, found.folder, uid)
    log.info("%s: invitation withdrawn before it was sent", found.key)


retract = _retract  # for invite_deadline: a REQUEST about to be sent for an offer no longer open


async def withdraw_unsent(world: World, store: MeetingStore, stored: Stored, uid: str) -> None:
    """The REQUEST for ``uid`` would leave after its start less ``min_notice`` (the pace holds it later): the offer
    is withdrawn (the student told, a next time offered if the round does that) and the REQUEST taken back.

    The REQUEST is taken back first: a failure in between leaves an offer still ``planned`` whose REQUEST is
    cancelled, which :func:`_follow` withdraws on the next pass — never a withdrawn offer whose REQUEST still goes.
    """
    assert stored.state is not None
    request = store.request_id(uid)
    if request is not None:
        await _retract(world, request, LATE)
    stored.extra["late"] = [*stored.extra.get("late", []), uid]  # saved with the withdrawal (an accepted suggestion)
    is_free = await is_free_for(world, store, stored)
    state, actions = withdraw_late(stored.state, uid, world.now(), is_free=is_free)
    if actions:
        await _carry(world, store, stored, state, actions)


async def _follow(world: World, store: MeetingStore, stored: Stored) -> None:
    state = stored.state
    assert state is not None
    for offer in state.offers:
        request = store.request_id(offer.uid)
        known = store.message_state(request) if request else None
        if request is None or known is None:
            continue
        where, sent_at = known
        if where in (ACCEPTED, DONE) and (
            offer.status == "planned" or (offer.status == "cancelled" and not offer.ever_sent)
        ):
            state, actions = mark_sent(state, offer.uid, sent_at or world.now())
            await _carry(world, store, stored, state, actions)
        elif offer.status == "cancelled" and not offer.ever_sent and where in (NEW, SCHEDULED, CLAIMED):
            await _retract(world, request)
        elif offer.status == "planned" and where == CANCELLED and _taken_back_late(world, request):
            # Taken back because it would have left late (withdraw_unsent cut short): withdrawn as late.
            stored.extra["late"] = [*stored.extra.get("late", []), offer.uid]
            is_free = await is_free_for(world, store, stored)
            state, actions = withdraw_late(state, offer.uid, world.now(), is_free=is_free)
            await _carry(world, store, stored, state, actions)
        elif offer.status == "planned" and where in (CANCELLED, ATTENTION):
            withdrawn = replace(offer, status="cancelled")
            state = replace(state, offers=tuple(withdrawn if o.uid == offer.uid else o for o in state.offers))
            when = _both(offer.slot, state, state.student_zone)
            text = (
                f"The invitation to {state.mentor.name} for {when} did not go out ({where}); that offer is withdrawn."
                if where == CANCELLED
                # In Needs attention: refused, or in doubt (it may have reached them): never said not to have gone.
                else f"The invitation to {state.mentor.name} for {when} is in Needs attention (see the notice "
                "about it); that offer is withdrawn: an answer to it changes nothing."
            )
            await _carry(world, store, stored, state, (NotifyStudent(text),))


def _taken_back_late(world: World, request: str) -> bool:
    """Whether the REQUEST ``request`` was taken back because it would have left late (:func:`withdraw_unsent`)."""
    key = world.ledger.key_of(request, CANCELLED)
    row = world.ledger.get(key) if key else None
    return row is not None and row.detail == LATE


# -- replies in INBOX --------------------------------------------------------------------------------------


def _maybe_calendar(world: World, info: HeaderInfo, envelope: Envelope) -> bool:
    """From the headers alone: could this be a calendar answer we care about? (Only those are fetched.)"""
    if envelope.agent_kind:
        return False  # our own notices, copies and suggestions
    head = email.message_from_bytes(info.headers, policy=email.policy.compat32)
    content_type = head.get_content_type()
    if content_type in CALENDAR_TYPES:
        return True
    known = world.book.for_address(envelope.sender) is not None or envelope.sender == _party(world).address
    return content_type.startswith("multipart/") and known


async def _read_inbox(world: World, store: MeetingStore) -> None:
    seen = _SEEN.setdefault(world.mailbox, Seen())
    infos = await new_headers(world, seen, world.folders.inbox)
    for info in infos:
        envelope = parse_envelope(info.headers)
        if not _maybe_calendar(world, info, envelope):
            continue
        raw = await world.imap(world.mailbox.fetch, world.folders.inbox, info.uid)
        if raw is None:
            continue
        try:
            objects = parse_itip(raw)
        except InviteError as error:
            log.warning("unreadable calendar reply from %s: %s", envelope.sender, error)
            mentor = world.book.for_address(envelope.sender)
            if mentor is not None:
                await world.notify(
                    f"Unreadable calendar answer from {mentor.name}",
                    [
                        f"“{envelope.subject}” from {mentor.name} holds a calendar answer that cannot be "
                        f"read ({error}), so nothing was changed. Please read it yourself."
                    ],
                    about=envelope.message_id,
                )
            continue
        # A calendar answer her calendar sent on its own (Auto-Submitted, X-Autoreply) is still her calendar's
        # answer: Google Calendar marks every RSVP it sends for her click so, and a decline while she is away is the
        # rule she set. It is applied, and the student is told that no one typed it (answers.md).
        verdict = classify(raw)
        machine = "" if verdict.answer or _google_relay(raw) else verdict.sign
        objects = _newest_each(objects, world.now())
        try:
            for item in objects:  # whom it is from: the envelope's one clean From address (addresses.author)
                await _answer(world, store, item, envelope.sender, envelope, envelope.authentication or None, machine)
        except MailboxError:
            raise
        except Exception:  # a bug in one answer must not keep the answers behind it from being read
            log.exception("meetings: the calendar answer %s failed", named(envelope.key, envelope.subject))
            await _failed_answer(world, envelope)


def _newest_each(objects: list[ItipObject], now: datetime) -> list[ItipObject]:
    """Of several answers to one invitation in one message, the one she wrote last (by DTSTAMP): the others were
    overtaken before they could be read. Without a DTSTAMP that counts on each, all of them, in their order."""
    stamps = [usable_stamp(item.stamp, now) for item in objects]
    if any(stamp is None for stamp in stamps):
        return objects
    newest: dict[tuple[str, datetime | None], int] = {}
    for index, item in enumerate(objects):
        key = (item.uid, item.recurrence_id)
        if key not in newest or cast(datetime, stamps[newest[key]]) <= cast(datetime, stamps[index]):
            newest[key] = index
    return [objects[index] for index in sorted(newest.values())]


async def _failed_answer(world: World, envelope: Envelope) -> None:
    """Told once: a calendar answer the agent failed on changed nothing (it is tried again at the next start)."""
    if logged(world.ledger, ANSWER_FAILED, envelope.key):
        return
    mentor = world.book.for_address(envelope.sender)
    who = mentor.name if mentor is not None else envelope.sender
    await world.notify(
        f"Calendar answer not applied: {envelope.subject}",
        [
            f"“{envelope.subject}” from {who} holds a calendar answer that mentor-agent failed to apply (its log says "
            "why), so nothing was changed for it. Please read it yourself, and answer or `propose` as needed."
        ],
        about=envelope.message_id,
    )
    world.ledger.log(ANSWER_FAILED, message=envelope.key)


def _google_relay(raw: bytes) -> bool:
    """Google Calendar's RSVP for her click (its ``Sender`` address): marked auto-generated, yet her answer."""
    head = email.message_from_bytes(raw.split(b"\r\n\r\n", 1)[0], policy=email.policy.compat32)
    senders = [address.lower() for _, address in getaddresses([str(value) for value in head.get_all("Sender", [])])]
    return senders == ["calendar-notification@google.com"]


async def _answer(
    world: World,
    store: MeetingStore,
    item: ItipObject,
    sender: str,
    envelope: Envelope,
    auth: str | None,
    machine: str = "",
) -> None:
    """Apply one calendar object of a message in INBOX; ``machine``: the sign it was sent by a program on its own."""

    async def start_round(loaded: LoadedPolicy, source: str, preferred: Slot) -> None:
        await propose(world, loaded, source=source, preferred=preferred)

    if await suggestion_answered(world, store, item, envelope, auth, start_round=start_round):
        return
    if item.method not in ("REPLY", "COUNTER"):
        return
    stored = store.round_of_uid(item.uid)
    if stored is None or stored.state is None:
        log.info("calendar %s from %s for %s: not one of our invitations", item.method, envelope.sender, item.uid)
        return
    # This very answer (another in the same message, or a later one reusing its Message-ID, is another)
    said = repr((item.method, item.uid, item.sequence, item.attendees, item.start, item.end, item.recurrence_id))
    before = f"{envelope.key} {hashlib.sha256(said.encode()).hexdigest()[:24]}"  # the mark before DTSTAMPs counted
    # With when she wrote it: her program may give a later answer the Message-ID of an earlier one
    read = f"{before} {item.stamp.isoformat() if item.stamp else '-'}"
    if logged(world.ledger, ANSWER_READ, read) or logged(world.ledger, ANSWER_READ, before):
        return  # applied before (INBOX is read again after a reconnect): told once
    is_free = await is_free_for(world, store, stored)
    loaded = world.book.by_id.get(stored.mentor)
    addresses = loaded.policy.mentor.addresses if loaded is not None else ()
    state, actions = apply_reply(stored.state, item, sender, auth, world.now(), is_free=is_free, addresses=addresses)
    log.info("calendar %s from %s for %s%s", item.method, envelope.sender, item.uid, f" ({machine})" if machine else "")
    # What an answer told as come too late said, told once however many copies of it come (each its own message)
    words = repr((item.method, item.uid, item.sequence, item.attendees, item.start, item.end, item.stamp))
    belated = f"{stored.mentor} {hashlib.sha256(words.encode()).hexdigest()[:24]}"
    if not any(isinstance(action, Belated) for action in actions):
        belated = ""
    elif logged(world.ledger, BELATED_TOLD, belated):
        actions, belated = (Ignored("told before: another copy of an answer come too late"),), ""
    actions = _with_comment(actions, item, state.mentor.name)
    if machine:
        actions = _noted(
            actions,
            f"{state.mentor.name}'s mail system sent this answer on its own ({machine}), not "
            "typed by her: an automatic answer, such as a decline while she is away. Confirm with her "
            "if you are unsure.",
        )
    # Marked, ignored or not (a copy ignored now is not told later, when her answers have moved on), unless it was not
    # judged as an answer at all: from whom, or for an invitation not yet known to have left (it may count later)
    early = any(isinstance(action, Ignored) and action.unjudged for action in actions)
    await _carry(world, store, stored, state, actions, read="" if early else read, belated=belated)


def _described(store: MeetingStore, stored: Stored, item: dict[str, Any]) -> str:
    """The round's description as the invitation ``item`` carries it: without the questions of an agenda update of its
    agreed meeting that has not left (they go with it, or by e-mail if it never does: an invitation moved by her
    counter-proposal listed them, and they went by e-mail too), unless ``item`` is that update."""
    description = stored.description
    for update in stored.extra.get("agenda_updates", []):
        added = update.get("added")
        if not added or update["message_id"] == item.get("message_id") or added not in description:
            continue
        known = store.message_state(update["message_id"])
        if known is None or known[0] not in (ACCEPTED, DONE):
            joined = f"\n\n{added}"
            description = description.replace(joined if joined in description else added, "", 1)
    return description


def _noted(actions: tuple[Action, ...], note: str) -> tuple[Action, ...]:
    """``note`` told right after what the answer did (nothing when it changed nothing)."""
    told = [index for index, action in enumerate(actions) if isinstance(action, NotifyStudent)]
    if not told:
        return actions
    return (*actions[: told[0] + 1], NotifyStudent(note), *actions[told[0] + 1 :])


def _with_comment(actions: tuple[Action, ...], item: ItipObject, name: str) -> tuple[Action, ...]:
    """The mentor's own words with the answer (COMMENT, X-RESPONSE-COMMENT, Outlook's text), quoted in the
    notice right after what the answer did. An answer that was ignored tells the student nothing."""
    if not item.comment:
        return actions
    quoted = "\n".join(f"  > {line}" if line else "  >" for line in item.comment.split("\n"))
    return _noted(actions, f"{name} wrote with the answer:\n{quoted}")


# -- the hooks the daemon calls ----------------------------------------------------------------------------


def _text_of(raw: bytes) -> str:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    part: Message | None = message.get_body(preferencelist=("plain",))
    if not isinstance(part, EmailMessage):
        return ""
    try:
        return str(part.get_content()).strip()
    except (LookupError, ValueError):
        return ""


async def meeting_requested(world: World, mentor: LoadedPolicy, envelope: Envelope, info: HeaderInfo) -> bool:
    """A message in the Outbox marked as a meeting request. True when it was handled here."""
    folders = world.folders
    raw = await world.imap(world.mailbox.fetch, folders.outbox, info.uid)
    if raw is None:
        return True  # gone meanwhile
    store = MeetingStore(world.ledger)
    topic = MEETING_TAG.sub("", envelope.subject).strip(" -:–") or ""
    # Known by its Message-ID *and* content: another request that reuses a Message-ID is another request.
    own = split_key(envelope.key)[1] is not None or not envelope.message_id  # already known by its content
    source = envelope.key if own else variant_key(envelope.key, fingerprint(raw))
    existing = store.by_source(source)  # a crash after proposing, before the move: do not propose twice
    if existing is None:  # proposed by a version that knew a request by its Message-ID alone: the same topic
        earlier = store.by_source(envelope.key)
        existing = earlier if earlier is not None and earlier.topic in (topic, f"Mentoring: {topic}") else None
    offered = bool(existing and existing.state and existing.state.offers)
    round_id = existing.round_id if existing is not None else ""
    unwritten = ""  # why the invitation could not be written: the request is then no invitation
    try:
        if existing is None:
            proposal = await propose(
                world, mentor, topic=topic, description=_text_of(raw), source=source, about=envelope.message_id
            )
            offered, round_id = bool(proposal.offered), proposal.round_id
        elif offered:  # a crash (or a failure) left its invitation unwritten: written now, or never
            await _flush(world, store, existing, _unwritten(existing))
    except MailboxError:
        raise
    except Exception as error:  # never "it became an invitation" without one, and never a crash
        log.exception("%s: the meeting invitation could not be written", envelope.key)
        unwritten = f"{type(error).__name__}: {error}"
    stored = store.load(round_id) if round_id else store.by_source(source)  # propose raised: found by its source
    if stored is not None and _unwritten(stored):
        await _give_up(world, store, stored)
        offered, unwritten = False, unwritten or "the invitation could not be written"
    target = folders.sent if offered else folders.needs_attention
    # Logged before it is filed: scan_sent must never count the request in Sent as mail she received.
    world.ledger.log(
        MEETING_REQUEST, mentor=mentor.id, message=envelope.key, detail="invitation" if offered else "no time"
    )
    try:
        new_uid = await world.imap(world.mailbox.move, folders.outbox, info.uid, target)
    except MessageGone:
        return True
    if new_uid is not None and offered:
        await world.imap(world.mailbox.set_flags, target, new_uid, ["\\Seen"])
    subject = envelope.subject or "(no subject)"
    if offered:
        lines = [
            f"“{subject}” became a meeting invitation to {mentor.name}, with your text as its description.",
            "The invitation goes when the agreement allows; the request itself is filed in Sent and is not "
            "sent as an e-mail.",
        ]
        await world.notify(f"Your meeting request became an invitation: {subject}", lines, about=envelope.message_id)
    else:
        why = f"the invitation could not be written ({unwritten})" if unwritten else "see the notice before this one"
        await world.notify(
            f"Meeting request not sent: {subject}",
            [
                f"“{subject}” could not become an invitation ({why}). It is "
                "in Needs attention; move it back to the Outbox to try again."
            ],
            about=envelope.message_id,
        )
    return True


def _unwritten(stored: Stored) -> list[str]:
    """The todo items of ``stored``'s invitations not appended yet."""
    return [item["id"] for item in stored.todo if item["kind"] == "request"]


async def _give_up(world: World, store: MeetingStore, stored: Stored) -> None:
    """The invitations of a meeting request could not be written: its offers withdrawn, nothing of it left to go
    (nor the notice that it was offered)."""
    for item in stored.todo:
        store.remove_todo(stored.round_id, item["id"])
    stored.todo = []
    if stored.state is not None:
        state, actions = cancel_round(stored.state)
        await _carry(world, store, stored, state, actions)
    world.ledger.log("meeting called off", mentor=stored.mentor, detail=f"round {stored.round_id}: not written")


async def _guarded(what: str, step: Any) -> None:
    """A bug in one step must not stop the mail path; a lost connection still ends the session."""
    try:
        await step
    except MailboxError:
        raise
    except Exception:
        log.exception("meetings: %s failed; trying again on the next pass", what)


async def pass_once(world: World) -> datetime | None:
    """Follow invites and replies; returns when to look again (None: no timer needed)."""
    store = MeetingStore(world.ledger)
    # SMTP acceptance first: a reply that came in the same moment must find its offer already "sent".
    for stored in store.open_rounds():
        if stored.state is not None:
            await _guarded("following invitations", _follow(world, store, stored))
    await _guarded("reading replies", _read_inbox(world, store))
    now = world.now()
    wake: list[datetime] = []
    for stored in store.open_rounds():
        if stored.state is None:
            continue
        if stored.state.outcome == "open":
            is_free = await is_free_for(world, store, stored)
            state, actions = expire(stored.state, now, is_free=is_free)
            if actions:
                await _guarded("expiring offers", _carry(world, store, stored, state, actions))
                await _guarded("taking back late invitations", _follow(world, store, stored))
        stale = [i["id"] for i in stored.todo if after(datetime.fromisoformat(i["created"]), STALE) <= now]
        if stale:
            await _guarded("carrying out left-over work", _flush(world, store, stored, stale))
        wake += [after(datetime.fromisoformat(i["created"]), STALE) for i in stored.todo]
        timeout = stored.state.rules.reply_timeout
        wake += [after(o.sent_at, timeout) for o in stored.state.offers if o.status == "sent" and o.sent_at]
        # A REQUEST still waiting is withdrawn once its start less min_notice has passed (never sent late).
        wake += [after(send_by(stored.state, o), LATE_STEP) for o in stored.state.offers if o.status == "planned"]
        still = _still_open(store, stored, now)
        if still != stored.open:
            stored.open = still
            store.save(stored)
    suggested = await suggest(world, store)
    if suggested is not None:
        wake.append(suggested)
    return min(wake, default=None)
