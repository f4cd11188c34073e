"""A CANCEL of a meeting offer is paced as a cancellation, not as one more e-mail.

A cancellation frees the mentor's time: it is most useful early, and useless once the meeting began. So a CANCEL
the desk appended (:mod:`agent.reconcile.meeting_desk`) is not held by the day, week, gap or reply rules, nor folded
into a digest: it goes on its own at once inside her sending windows, else when the next one opens — unless that is
after the meeting's start, then at once (:func:`agent.rules.meeting_deadlines.cancel_plan`). It still counts as an
e-mail she received. One that could not leave before the meeting began (the agent stopped, the provider's daily
limit) is taken back at the last look before SMTP, and the student told (:mod:`agent.reconcile.invite_deadline`).
A CANCEL appended by a version that did not record it as one is known by its calendar part (:func:`adopt_old`).
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

_LOOKED: set[str] = set()  # Message-IDs read by adopt_old and found no CANCEL: not read again


async def adopt_old(world: World, rows: Sequence[Row]) -> None:
    """The CANCELs among ``rows`` appended by a version that did not record them as CANCELs: known by their
    calendar part (METHOD:CANCEL, the UID of an offer of the round that appended them) and recorded, so they are
    paced and gated as cancellations — never sent after their meeting began."""
    store = MeetingStore(world.ledger)
    unaccounted = store.unaccounted_ids()
    for row in rows:
        round_id = unaccounted.get(row.message_id)
        if round_id is None or row.folder is None or row.message_id in _LOOKED:
            continue
        uid = await world.locate(row.folder, row.key, row.uid)
        raw = await world.imap(world.mailbox.fetch, row.folder, uid) if uid is not None else None
        if raw is None:
            continue  # not there now (claimed, moved): looked at again where it is
        _LOOKED.add(row.message_id)
        from agent.rules.invites import InviteError, parse_itip  # loaded with the first such CANCEL, not at start

        try:
            objects = parse_itip(raw)
        except InviteError:
            continue
        stored = store.load(round_id)
        for item in objects:
            if item.method == "CANCEL" and stored is not None and stored.state and stored.state.offer(item.uid):
                store.record_cancel(round_id, row.message_id, item.uid)
                _LOOKED.discard(row.message_id)
                break


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
