"""How soon an invitation made now could leave, and so the earliest meeting time it can still offer.

An invitation (a REQUEST to the mentor) is one more e-mail: appended to the Outbox, it waits behind every message
already queued for her and is paced like them (:mod:`agent.rules.pacing`). It must leave no later than its
meeting's start less ``min_notice`` (:func:`agent.rules.meetings.send_by`), or it is withdrawn unsent
(:mod:`agent.reconcile.invite_deadline`). So a time worth offering — to the mentor, or to the student as a
suggestion — starts no earlier than :func:`earliest_start`: the moment the invitation would leave under the pace,
plus ``min_notice``.

When the invitation leaves is judged as the deadline gate judges it (:func:`leaves`): one that only a reply can
release (or that goes as the follow-up) could leave at any moment a reply comes, so it counts as leaving now.

Pure: values in, values out, ``now`` passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from agent.rules.localtime import after, instant, require_aware
from agent.rules.pacing import UNANSWERED, Decision, Engine, History, Queued
from agent.rules.policy import Policy

_PROBE = "\x00invitation-"  # the id of an invitation not made yet (no ledger key starts so)


def leaves(decision: Decision, now: datetime) -> datetime:
    """When the plan sends it. Held for a reply (or planned as the follow-up): a reply can release it earlier, so it
    is judged by ``now``."""
    waits_reply = decision.at is None or decision.rule == UNANSWERED
    return instant(now) if waits_reply or decision.at is None else max(instant(now), decision.at)


def invitation_leaves(
    policy: Policy, history: History, queue: Sequence[Queued], now: datetime, *, count: int = 1
) -> datetime:
    """When the last of ``count`` invitations appended now, one after another, would leave: behind every message
    in ``queue`` (first in, first out), each on its own (an invitation is never folded into a digest)."""
    now = instant(require_aware(now, "now"))
    probes = [Queued(f"{_PROBE}{index}", now, "invitation", standalone=True) for index in range(max(1, count))]
    ordered = sorted(queue, key=lambda q: instant(q.arrived))  # those of the same instant before the probes
    decisions = Engine(policy, history).plan([*ordered, *probes], now)
    last = next(d for d in decisions if d.id == probes[-1].id)
    return leaves(last, now)


def earliest_start(
    policy: Policy, history: History, queue: Sequence[Queued], now: datetime, *, count: int = 1
) -> datetime:
    """The earliest start a meeting offered now may have so that its invitation (the ``count``-th of those made now)
    can leave by the start less ``min_notice``: never earlier than ``now`` plus ``min_notice``."""
    return after(invitation_leaves(policy, history, queue, now, count=count), policy.meetings.min_notice)
