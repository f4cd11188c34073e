"""An invitation never reaches the mentor after its meeting's start less ``min_notice``.

A REQUEST waits in the Outbox or Scheduled like any e-mail to her, paced by her e-mail rules; the pace can hold it
past the notice agreed for meetings (``[meetings] min_notice``), even past the meeting itself. Whenever the pacing
engine decides when a REQUEST goes (at each pass of :func:`agent.reconcile.intake.carry_out`), a REQUEST that would
leave after that deadline — due now but too late, or planned for later than it by the day, week, gap or window
rules — is not sent: its offer is withdrawn
(:func:`agent.reconcile.meeting_desk.withdraw_unsent`: the student told, a next time offered when the round does
that, the REQUEST taken out of its folder). One held until a reply (a reply can release it any time) is withdrawn
only once the deadline has passed, here or by the meeting desk's timer
(:func:`agent.rules.meetings.expire`); the agenda questions of a round that ends so go back to e-mail
(:mod:`agent.reconcile.agenda_desk`).

The same check stands right before anything is handed to SMTP (:func:`gate`), whatever led a REQUEST there: one
left claimed in Sending by a crash or a stop, or one whose offer was withdrawn meanwhile. A REQUEST whose offer is
no longer ``planned``, or whose deadline has passed, is taken back and never sent.

Nothing else about a meeting leaves late either (:mod:`agent.rules.meeting_deadlines`): an agenda *update* of an
agreed meeting that the pace would send after its deadline, or that is about to be handed to SMTP after it (or for a
meeting no longer agreed), is taken back; its questions go back to e-mail, still in Scheduled, and the student is
told (:func:`agent.reconcile.agenda_ahead.follow`). A CANCEL is never handed to SMTP after its meeting began: taken
back, and the student told (:mod:`agent.reconcile.cancel_pace` lets it go at once).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime

from agent.reconcile import cancel_pace
from agent.reconcile.context import World
from agent.reconcile.delivery import LastLook
from agent.rules.localtime import describe
from agent.rules.meeting_deadlines import LATE_CANCEL, LATE_UPDATE, OFF_UPDATE, cancel_send_by, update_send_by
from agent.rules.pacing import UNANSWERED, Decision
from agent.store.ledger import Row
from agent.store.rounds import MeetingStore, Stored

log = logging.getLogger("mentor_agent.meetings")
About = tuple[str, Stored, str]  # MeetingStore.about_meeting: ("update" or "cancel", its round, the offer's uid)


# The meeting desk loads with the first invitation taken back, not with every daemon (issue 21: start-up).


async def retract(world: World, message_id: str, why: str | None = None) -> None:
    """:func:`agent.reconcile.meeting_desk.retract`: a REQUEST, update or CANCEL taken back from its folder."""
    from agent.reconcile import meeting_desk

    await (meeting_desk.retract(world, message_id) if why is None else meeting_desk.retract(world, message_id, why))


async def withdraw_unsent(world: World, store: MeetingStore, stored: Stored, uid: str) -> None:
    """:func:`agent.reconcile.meeting_desk.withdraw_unsent`: the offer withdrawn, its REQUEST taken back."""
    from agent.reconcile import meeting_desk

    await meeting_desk.withdraw_unsent(world, store, stored, uid)


async def withdraw_late(
    world: World, decisions: Sequence[Decision], by_key: Mapping[str, Row], now: datetime
) -> list[Row]:
    """Withdraw the offers whose REQUEST among ``decisions`` would leave after its deadline; their rows."""
    store = MeetingStore(world.ledger)
    planned = store.planned_requests()
    ours = store.invite_ids()  # every REQUEST, update and CANCEL the desk appended
    late: list[Row] = []
    for decision in decisions:
        row = by_key.get(decision.id)
        found = planned.get(row.message_id) if row is not None else None
        if row is None:
            continue
        if found is None:  # not a planned offer's REQUEST: perhaps an agenda update
            about = store.about_meeting(row.message_id) if row.message_id in ours else None
            if await _update_late(world, about, row, _leaves(decision, now)):
                late.append(row)
            continue
        stored = store.load(found[0])
        offer = stored.state.offer(found[1]) if stored is not None and stored.state is not None else None
        if stored is None or stored.state is None or offer is None or offer.status != "planned":
            continue
        from agent.rules.meetings import send_by  # loaded with the round read above

        deadline = send_by(stored.state, offer)
        leaves = _leaves(decision, now)
        if leaves <= deadline:
            continue
        log.info(
            "%s: the invitation would leave at %s, after %s (its start less min_notice): withdrawn, not sent",
            row.key,
            leaves.isoformat(timespec="minutes"),
            deadline.isoformat(timespec="minutes"),
        )
        await withdraw_unsent(world, store, stored, offer.uid)
        late.append(row)
    return late


def _leaves(decision: Decision, now: datetime) -> datetime:
    """When the plan sends it. Held for a reply (or planned as the follow-up): a reply can release it earlier, so
    it is judged by now."""
    waits_reply = decision.at is None or decision.rule == UNANSWERED
    return now if waits_reply or decision.at is None else max(now, decision.at)


def _update_deadline(world: World, stored: Stored, uid: str) -> datetime | None:
    """The last instant an update of ``stored``'s agreed meeting ``uid`` may leave; None: the meeting is off."""
    offer = stored.state.offer(uid) if stored.state is not None else None
    if stored.state is None or offer is None or offer.status != "accepted":
        return None
    loaded = world.book.by_id.get(stored.mentor)
    ahead = loaded.policy.agreement.agenda_ahead if loaded is not None else stored.state.rules.min_notice
    return update_send_by(offer.slot.utc_start, stored.state.rules.min_notice, ahead)


async def _update_late(world: World, about: About | None, row: Row, leaves: datetime) -> bool:
    """An agenda update that would leave at ``leaves``, after its deadline (or for a meeting no longer agreed):
    taken back, True. Its questions go back to e-mail at the next agenda pass, and the student is told."""
    if about is None or about[0] != "update":
        return False
    _, stored, uid = about
    deadline = _update_deadline(world, stored, uid)
    if deadline is not None and leaves <= deadline:
        return False
    log.info(
        "%s: the agenda update would leave at %s, %s: taken back, not sent",
        row.key,
        leaves.isoformat(timespec="minutes"),
        "for a meeting no longer agreed" if deadline is None else f"after {deadline.isoformat(timespec='minutes')}",
    )
    await retract(world, row.message_id, LATE_UPDATE if deadline is not None else OFF_UPDATE)
    return True


async def _cancel_late(world: World, about: About | None, row: Row, now: datetime) -> bool:
    """A CANCEL about to leave after its meeting began: taken back, the student told, True."""
    if about is None or about[0] != "cancel":
        return False
    _, stored, uid = about
    offer = stored.state.offer(uid) if stored.state is not None else None
    if stored.state is None or offer is None or now <= cancel_send_by(offer.slot.utc_start):
        return False
    log.info("%s: the cancellation would leave after its meeting began: taken back, not sent", row.key)
    await retract(world, row.message_id, LATE_CANCEL)
    when = describe(offer.slot.utc_start, world.settings.student.zone)
    name = stored.state.mentor.name
    await world.notify(
        f"Cancellation not sent: the meeting with {name} on {when} has begun",
        [
            f"The cancellation of the meeting time offered to {name} for {when} could not leave before that time "
            "(the agent was stopped, or the mail server held it). It was not sent: a cancellation after the start "
            "only confuses.",
            f"The offer may still show in {name}'s calendar: if {name} might come, write yourself.",
        ],
        about=row.message_id,
    )
    return True


def last_look(world: World) -> LastLook:
    """:func:`gate` again for each message about a meeting right before its own SMTP transaction, at that moment:
    a slow transaction before it in the same pass cannot make it leave late."""

    async def stop(rows: list[Row]) -> set[str]:
        return await gate(world, rows, world.now())

    return LastLook(frozenset(MeetingStore(world.ledger).invite_ids()), stop)


async def gate(world: World, rows: Sequence[Row], now: datetime) -> set[str]:
    """The keys among ``rows`` (about to be handed to SMTP) of REQUESTs that must not go: their offer is no longer
    ``planned`` (withdrawn, called off), or ``now`` is past its start less ``min_notice``. Each is taken back from
    its folder; an offer still planned is withdrawn (the student told, a next time offered if the round does that).
    So are agenda updates past their deadline (or of a meeting no longer agreed) and CANCELs after the start."""
    store = MeetingStore(world.ledger)
    stopped: set[str] = set()
    if rows:
        await cancel_pace.adopt_old(world, rows)  # a CANCEL a version before appended: known by its calendar part
    ours = store.invite_ids() if rows else set()  # every REQUEST, update and CANCEL the desk appended
    for row in rows:
        found = store.offer_of_request(row.message_id)
        if found is None:  # not an offer's first invitation: an agenda update, a CANCEL, or none of these
            about = store.about_meeting(row.message_id) if row.message_id in ours else None
            if await _update_late(world, about, row, now) or await _cancel_late(world, about, row, now):
                stopped.add(row.key)
            continue
        stored = store.load(found[0])
        offer = stored.state.offer(found[1]) if stored is not None and stored.state is not None else None
        if stored is not None and offer is not None and offer.status == "planned":
            from agent.rules.meetings import send_by  # loaded with the round read above

            assert stored.state is not None
            if now <= send_by(stored.state, offer):
                continue
            log.info(
                "%s: the invitation would leave now, after %s (its start less min_notice): withdrawn, not sent",
                row.key,
                send_by(stored.state, offer).isoformat(timespec="minutes"),
            )
            await withdraw_unsent(world, store, stored, offer.uid)
        else:
            log.info("%s: its meeting offer is no longer open: the invitation is taken back, not sent", row.key)
            await retract(world, row.message_id)
        stopped.add(row.key)
    return stopped
