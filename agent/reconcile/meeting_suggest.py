"""Suggesting a meeting to the student when too many e-mails wait for one mentor.

When a policy sets ``email.suggest_meeting_after`` and that many of the student's messages to the mentor
wait (``new`` or ``scheduled``), one invitation is appended to the student's notices folder, organized by
the agent's sub-address of the student (see :func:`agent.rules.invites.build_suggestion`). It is made once per
waiting streak: the suggestion stays "live" in the ledger until the queue falls below the threshold.

The student answers in their own calendar; their client mails a REPLY to ``name+mentor-agent@domain``,
which lands in their INBOX. An ACCEPTED reply from the student's own address starts a real round for the
suggested time (if it is still free; else the next free times); a decline leaves the queue as it is.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from agent.reconcile.context import World
from agent.reconcile.keep_clear import invite_start, keep_clear
from agent.rules.addresses import normal_address
from agent.rules.authenticity import auth_problem
from agent.rules.durations import format_duration
from agent.rules.envelope import Envelope, domain_of, new_message_id
from agent.rules.invites import (
    ItipObject,
    Meeting,
    Party,
    agent_address,
    build_cancel,
    build_suggestion,
    describe_slot,
    make_uid,
    wire_bytes,
)
from agent.rules.meetings import send_by
from agent.rules.policy import LoadedPolicy
from agent.rules.slots import Slot, find_slots
from agent.store.ledger import NEW, SCHEDULED
from agent.store.rounds import STALE, MeetingStore, Stored

log = logging.getLogger("mentor_agent.meetings")


def _slot(data: list[str], zone: Any) -> Slot:
    return Slot(datetime.fromisoformat(data[0]).astimezone(zone), datetime.fromisoformat(data[1]).astimezone(zone))


async def append_suggestion(world: World, stored: Stored, item: dict[str, Any]) -> None:
    loaded = world.book.by_id.get(stored.mentor)
    if loaded is None:
        return
    student = world.settings.student
    zone = loaded.policy.zone
    meeting = Meeting(
        stored.extra["uid"], 0, _slot(stored.extra["slot"], zone), stored.topic, loaded.policy.meetings.location
    )
    message = build_suggestion(
        meeting,
        student=Party(student.name, student.address),
        mentor=Party(loaded.name, loaded.policy.mentor.addresses[0]),
        waiting=int(stored.extra.get("waiting", 0)),
        student_zone=student.zone,
        mentor_zone=zone,
        now=world.now(),
        message_id=item["message_id"],
    )
    message["X-Mentor-Agent"] = "suggestion"
    if await _to_her(world, message, item["message_id"]):
        log.info("meeting with %s suggested to the student", loaded.name)


async def _to_her(world: World, message: EmailMessage, message_id: str) -> bool:
    """Put ``message`` in her notices folder unless it is there (a todo carried out again after a crash)."""
    folder = world.folders.notices
    if await world.imap(world.mailbox.find_by_message_id, folder, message_id):
        return False
    await world.imap(world.mailbox.append, folder, wire_bytes(message))
    return True


async def append_withdrawal(world: World, stored: Stored, item: dict[str, Any]) -> None:
    """The CANCEL of an accepted suggestion whose time is not invited after all: her calendar drops the event."""
    loaded = world.book.by_id.get(stored.mentor)
    student = world.settings.student
    zone = loaded.policy.zone if loaded is not None else student.zone
    meeting = Meeting(stored.extra["uid"], 1, _slot(stored.extra["slot"], zone), stored.topic)
    message = build_cancel(
        meeting,
        organizer=Party(f"mentor-agent for {student.name}", agent_address(student.address)),
        attendee=Party(student.name, student.address),
        mentor_zone=student.zone,
        student_zone=student.zone,
        now=world.now(),
        message_id=item["message_id"],
    )
    message["X-Mentor-Agent"] = "suggestion-withdrawn"
    if await _to_her(world, message, item["message_id"]):
        log.info("suggested meeting with %s withdrawn from the student's calendar", stored.mentor)


async def _carry_out(world: World, store: MeetingStore, stored: Stored, ids: list[str]) -> None:
    """Carry out the todo items ``ids`` of a suggestion; each is removed from the ledger once done."""
    for item in [i for i in stored.todo if i["id"] in ids]:
        notice = None
        if item["kind"] == "suggestion":
            await append_suggestion(world, stored, item)
        elif item["kind"] == "withdrawal":
            await append_withdrawal(world, stored, item)
        elif item["kind"] == "notice":
            # Owed (under an id of this item) before the item is done: a stop in between writes it again, looked for
            notice = world.owe(item["title"], item["lines"], item.get("about"), made=f"{stored.round_id}-{item['id']}")
        store.remove_todo(stored.round_id, item["id"])
        stored.todo = [i for i in stored.todo if i["id"] != item["id"]]
        if notice is not None:
            await world.tell(notice)
    if stored.extra.get("settled") and not stored.todo and stored.open:
        stored.open = False  # an accepted suggestion set right: nothing left to do
        store.save(stored)


def _fate(store: MeetingStore, stored: Stored, now: datetime) -> str:
    """What became of an accepted suggestion's time: "invited" (its invitation left), "waiting" (it may still),
    or why it was not invited — "late" (the pace held the invitation past the start less ``min_notice``), "busy"
    (no longer free when accepted), "none" (no time could be offered at all), "off" (the offer ended unsent)."""
    round_ = store.by_source(stored.extra["uid"])
    if round_ is None:
        return "none"
    if round_.state is None:
        return "waiting"
    start = datetime.fromisoformat(stored.extra["slot"][0])
    offer = next((o for o in round_.state.offers if o.slot.utc_start == start), None)
    if offer is None:
        return str(round_.extra.get("preferred") or "off")
    if offer.ever_sent or offer.status not in ("planned", "cancelled"):
        return "invited"
    if offer.status == "planned":
        return "waiting"
    late = offer.uid in round_.extra.get("late", []) or send_by(round_.state, offer) < now
    return "late" if late else "off"


def _told(loaded: LoadedPolicy, when: str, fate: str) -> list[str]:
    name, notice = loaded.name, format_duration(loaded.policy.meetings.min_notice)
    why = {
        "late": f"its invitation could not reach {name} {notice} or more before it (the notice agreed for meetings): "
        f"the e-mail pace agreed with {name} holds it until later, behind the messages that wait for {name}. "
        "Rather than arrive late, it was not sent",
        "busy": "that time is no longer free (your calendar, your own hours or another meeting), so it was not offered",
        "none": "no meeting time could be offered at all (see the notice about it)",
        "off": f"its invitation to {name} did not go out (see the notice about the meeting offer)",
    }[fate]
    return [
        f"You accepted the suggested meeting with {name} on {when}, but {name} was not invited for it: {why}.",
        "The suggestion is cancelled in your calendar. Any other time offered to "
        f"{name} instead is in the notice about the meeting offer; it reaches your calendar once {name} accepts.",
    ]


async def _set_right(world: World, store: MeetingStore, loaded: LoadedPolicy, now: datetime) -> None:
    """Accepted suggestions whose time was not invited after all: the student told, her calendar copy cancelled."""
    for stored in store.suggestions(loaded.id):
        if stored.extra.get("answer") != "accepted" or stored.extra.get("settled"):
            continue
        past = datetime.fromisoformat(stored.extra["slot"][0]) <= now  # her calendar keeps it as history
        fate = "past" if past else _fate(store, stored, now)
        if fate == "waiting":
            continue
        stored.extra["settled"] = fate
        if fate not in ("invited", "past"):
            domain = domain_of(world.settings.student.address)
            when = describe_slot(_slot(stored.extra["slot"], world.settings.student.zone), world.settings.student.zone)
            stored.todo += [
                {
                    "id": uuid.uuid4().hex,
                    "kind": "withdrawal",
                    "created": now.isoformat(),
                    "message_id": new_message_id(domain),
                },
                {
                    "id": uuid.uuid4().hex,
                    "kind": "notice",
                    "created": now.isoformat(),
                    "title": f"Suggested meeting with {loaded.name} not invited: {when}",
                    "lines": _told(loaded, when, fate),
                    "about": None,
                },
            ]
            stored.open = True  # until its todo is carried out (a crash in between: carried out later)
            log.info("the suggested meeting with %s (%s) accepted, but not invited: %s", loaded.name, when, fate)
            world.ledger.log("meeting suggestion withdrawn", mentor=loaded.id, detail=f"not invited: {fate}")
        store.save(stored)
        await _carry_out(world, store, stored, [item["id"] for item in stored.todo])


async def suggest(world: World, store: MeetingStore) -> datetime | None:
    """Make or retire suggestions for every mentor; returns when left-over work should be retried."""
    now = world.now()
    invites = store.invite_ids()
    wake: datetime | None = None
    for loaded in world.book:
        await _set_right(world, store, loaded, now)
        threshold = loaded.policy.email.suggest_meeting_after
        live = [s for s in store.suggestions(loaded.id) if s.open]
        for stored in live:
            stale = [i["id"] for i in stored.todo if datetime.fromisoformat(i["created"]) + STALE <= now]
            if stale:
                await _carry_out(world, store, stored, stale)
            for item in stored.todo:
                due = datetime.fromisoformat(item["created"]) + STALE
                wake = due if wake is None or due < wake else wake
        if threshold <= 0 or not loaded.policy.meetings.windows:
            continue
        waiting = [r for r in world.ledger.in_states(NEW, SCHEDULED, mentor=loaded.id) if r.message_id not in invites]
        if len(waiting) < threshold:
            for stored in live:
                if not stored.todo:
                    stored.open = False  # the streak is over; a new one may bring a new suggestion
                    store.save(stored)
            continue
        if live or any(
            s.mentor == loaded.id and s.state is not None and s.state.outcome == "open" for s in store.open_rounds()
        ):
            continue
        rules = loaded.policy.meetings
        try:
            busy, agreed = await keep_clear(world, store, loaded.id, rules.horizon)
        except Exception as error:
            log.warning("no meeting suggestion for %s: %s", loaded.name, error)
            continue
        # Only a time its invitation can still reach the mentor for, behind what waits for her (the pace).
        start = invite_start(world.ledger, loaded, now)
        slots = find_slots(rules, loaded.policy.zone, now, busy, agreed, count=1, not_before=start)
        if not slots:
            log.info("%d messages wait for %s, but no meeting time is free to suggest", len(waiting), loaded.name)
            continue
        token = uuid.uuid4().hex[:16]
        domain = domain_of(world.settings.student.address)
        item = {
            "id": uuid.uuid4().hex,
            "kind": "suggestion",
            "created": now.isoformat(),
            "message_id": new_message_id(domain),
        }
        stored = Stored(
            f"suggest-{token}",
            loaded.id,
            kind="suggestion",
            topic=f"Meeting with {loaded.name}",
            todo=[item],
            extra={
                "uid": make_uid(f"suggest-{token}", domain),
                "waiting": len(waiting),
                "slot": [slots[0].utc_start.isoformat(), slots[0].utc_end.isoformat()],
            },
        )
        store.save(stored)
        world.ledger.log("meeting suggested", mentor=loaded.id, detail=f"{len(waiting)} messages waiting")
        await _carry_out(world, store, stored, [item["id"]])
    return wake


def _problem(world: World, item: ItipObject, envelope: Envelope, auth: str | None, stored: Stored) -> str | None:
    student = normal_address(world.settings.student.address)
    if envelope.sender != student:
        return f"sent from {envelope.sender or 'no address'}, not from the student"
    if item.attendee != student:
        return "the replying attendee is not the student"
    if (problem := auth_problem(auth, student)) is not None:
        return problem
    if item.organizer is not None and item.organizer != agent_address(student):
        return f"organizer {item.organizer} is not mentor-agent"
    if stored.extra.get("answer"):
        return f"already answered ({stored.extra['answer']})"
    return None


async def _changed_her_mind(world: World, stored: Stored, now: str, envelope: Envelope) -> None:
    """She answers the suggestion again, the other way, in her calendar: nothing follows of it on its own (the
    invitation may be out already); she is told, once, what to do."""
    loaded = world.book.by_id.get(stored.mentor)
    name = loaded.name if loaded else stored.mentor
    if now == "accepted":
        line = f"no invitation was made; to propose a meeting now: mentor-agent propose {stored.mentor}"
    else:
        line = f"its invitation to {name} was made already; to call it off: mentor-agent withdraw {stored.mentor}"
    await world.notify_once(
        f"The suggested meeting with {name}: you {now} it after you had {stored.extra['answer']} it",
        [
            f"Your calendar now says you {now} the suggested meeting with {name}, after you had "
            f"{stored.extra['answer']} it: {line}."
        ],
        f"suggestion-{now}-{hashlib.sha256(envelope.key.encode()).hexdigest()[:20]}",
    )


StartRound = Callable[[LoadedPolicy, str, Slot], Awaitable[None]]  # mentor, source uid, preferred time


async def suggestion_answered(
    world: World,
    store: MeetingStore,
    item: ItipObject,
    envelope: Envelope,
    auth: str | None,
    *,
    start_round: StartRound,
) -> bool:
    """True when ``item`` is an answer to one of our suggestions (applied, or ignored with a log line).

    An acceptance starts a real round through ``start_round`` (the meeting desk's ``propose``), before the
    answer is recorded: a crash in between proposes again only if no round came of it (``by_source``)."""
    if item.method != "REPLY":
        return False
    stored = next((s for s in store.suggestions() if s.extra.get("uid") == item.uid), None)
    if stored is None:
        return False
    problem = _problem(world, item, envelope, auth, stored)
    if problem is not None:
        log.warning("answer to the meeting suggestion ignored: %s", problem)
        world.ledger.log("meeting reply ignored", mentor=stored.mentor, detail=problem)
        earlier = stored.extra.get("answer")
        now = {"ACCEPTED": "accepted", "DECLINED": "declined"}.get(item.partstat or "")
        if earlier and now and now != earlier and problem.startswith("already answered"):
            await _changed_her_mind(world, stored, now, envelope)
        return True
    loaded = world.book.by_id.get(stored.mentor)
    if item.partstat == "ACCEPTED" and loaded is not None:
        if store.by_source(item.uid) is None:
            await start_round(loaded, item.uid, _slot(stored.extra["slot"], loaded.policy.zone))
        answer = "accepted"
    elif item.partstat == "DECLINED":
        await world.notify(
            f"No meeting with {loaded.name if loaded else stored.mentor}",
            ["You declined the suggested meeting; the waiting messages stay queued as they are."],
        )
        answer = "declined"
    else:
        return True  # tentative or unknown: wait for a final answer
    stored.extra["answer"] = answer
    # A decline keeps the suggestion live until the queue falls below the threshold (suggest() then ends it):
    # not suggested again in the same waiting streak.
    stored.open = answer == "declined"
    store.save(stored)
    return True
