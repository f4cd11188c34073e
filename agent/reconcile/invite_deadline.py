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
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime

from agent.reconcile.context import World
from agent.reconcile.meeting_desk import retract, withdraw_unsent
from agent.rules.meetings import send_by
from agent.rules.pacing import UNANSWERED, Decision
from agent.store.ledger import Row
from agent.store.rounds import MeetingStore

log = logging.getLogger("mentor_agent.meetings")


async def withdraw_late(
    world: World, decisions: Sequence[Decision], by_key: Mapping[str, Row], now: datetime
) -> list[Row]:
    """Withdraw the offers whose REQUEST among ``decisions`` would leave after its deadline; their rows."""
    store = MeetingStore(world.ledger)
    planned = store.planned_requests()
    if not planned:
        return []
    late: list[Row] = []
    for decision in decisions:
        row = by_key.get(decision.id)
        found = planned.get(row.message_id) if row is not None else None
        if row is None or found is None:
            continue
        stored = store.load(found[0])
        offer = stored.state.offer(found[1]) if stored is not None and stored.state is not None else None
        if stored is None or stored.state is None or offer is None or offer.status != "planned":
            continue
        deadline = send_by(stored.state, offer)
        # Held for a reply (or planned as the follow-up): a reply can release it earlier, so it is judged by now.
        waits_reply = decision.at is None or decision.rule == UNANSWERED
        leaves = now if waits_reply or decision.at is None else max(now, decision.at)
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


async def gate(world: World, rows: Sequence[Row], now: datetime) -> set[str]:
    """The keys among ``rows`` (about to be handed to SMTP) of REQUESTs that must not go: their offer is no longer
    ``planned`` (withdrawn, called off), or ``now`` is past its start less ``min_notice``. Each is taken back from
    its folder; an offer still planned is withdrawn (the student told, a next time offered if the round does that)."""
    store = MeetingStore(world.ledger)
    stopped: set[str] = set()
    for row in rows:
        found = store.offer_of_request(row.message_id)
        if found is None:
            continue  # not an invitation of an offer
        stored = store.load(found[0])
        offer = stored.state.offer(found[1]) if stored is not None and stored.state is not None else None
        if stored is not None and offer is not None and offer.status == "planned":
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
