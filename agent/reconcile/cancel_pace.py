"""A CANCEL of a meeting offer is paced as a cancellation, not as one more e-mail.

A cancellation frees the mentor's time: it is most useful early, and useless once the meeting began. So a CANCEL
the desk appended (:mod:`agent.reconcile.meeting_desk`) is not held by the day, week, gap or reply rules, nor folded
into a digest: it goes on its own at once inside her sending windows, else when the next one opens — unless that is
after the meeting's start, then at once (:func:`agent.rules.meeting_deadlines.cancel_plan`). It still counts as an
e-mail she received. One that could not leave before the meeting began (the agent stopped, the provider's daily
limit) is taken back at the last look before SMTP, and the student told (:mod:`agent.reconcile.invite_deadline`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from agent.reconcile.context import World
from agent.rules.meeting_deadlines import cancel_plan
from agent.rules.pacing import Decision
from agent.rules.policy import LoadedPolicy
from agent.store.ledger import Row
from agent.store.rounds import MeetingStore


def cancels(world: World, rows: Sequence[Row]) -> dict[str, datetime]:
    """The CANCELs among ``rows``: their key -> the start of the meeting each calls off."""
    store = MeetingStore(world.ledger)
    ours = store.invite_ids()
    found: dict[str, datetime] = {}
    for row in rows:
        about = store.about_meeting(row.message_id) if row.message_id in ours else None
        if about is None or about[0] != "cancel" or about[1].state is None:
            continue
        offer = about[1].state.offer(about[2])
        if offer is not None:
            found[row.key] = offer.slot.utc_start
    return found


def plan(loaded: LoadedPolicy, rows: Sequence[Row], starts: dict[str, datetime], now: datetime) -> list[Decision]:
    """When each CANCEL in ``rows`` goes (``starts``: :func:`cancels`), the soonest meeting first."""
    policy = loaded.policy
    decisions = []
    for row in sorted(rows, key=lambda r: (starts[r.key], r.arrived)):
        at, why = cancel_plan(policy.send_schedule, starts[row.key], now, policy.zone)
        decisions.append(Decision(row.key, at, why))
    return decisions
