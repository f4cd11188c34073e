"""A meeting time offered now is one its invitation can still reach the mentor for (agent/rules/invite_lead.py).

The invitation is one more e-mail to her, queued behind what already waits and paced like it; the deadline gate
(agent/reconcile/invite_deadline.py) withdraws it unsent when it would leave after the start less ``min_notice``.
The property: the slot the suggestion (and the desk's first proposal) takes passes that gate, judged here as the
gate judges it, and no earlier time in the meeting windows would have.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from agent.rules.invite_lead import earliest_start, invitation_leaves
from agent.rules.localtime import after, instant
from agent.rules.pacing import UNANSWERED, Engine, History, Queued, Reply, SentItem
from agent.rules.policy import MeetingRules, Policy
from agent.rules.slots import find_slots
from agent.rules.windows import WeeklySchedule
from tests.test_pacing_properties import ANCHORS, QUARTER, _apart, scenarios, windows

State = tuple[Policy, History, list[Queued], datetime]


@st.composite
def states(draw: st.DrawFn) -> State:
    """A policy with meeting rules, what the mentor received (and answered), what waits for her, and now."""
    policy, _ = draw(scenarios())
    notice = draw(st.integers(0, 3 * 24 * 4)) * QUARTER
    meetings = MeetingRules.model_validate(
        {
            "windows": [w.spec for w in _apart(draw(st.lists(windows(), min_size=1, max_size=3)))],
            "duration": "15m",  # every drawn window is at least a quarter long
            "buffer": "0",
            "min_notice": notice,
            "horizon": notice + draw(st.integers(1, 14)) * timedelta(days=1),
        }
    )
    policy = policy.model_copy(update={"meetings": meetings})
    now = draw(st.sampled_from(ANCHORS)) + draw(st.integers(0, 7 * 24 * 60)) * timedelta(minutes=1)
    back = sorted(draw(st.lists(st.integers(0, 10 * 24 * 4), max_size=6)), reverse=True)
    sent = tuple(SentItem(now - k * QUARTER, (f"s{index}",)) for index, k in enumerate(back))
    answered = sorted(draw(st.sets(st.integers(0, len(sent) - 1), max_size=2))) if sent else []
    replies = tuple(Reply(sent[i].at + draw(st.integers(0, 4)) * QUARTER, f"s{i}") for i in answered)
    arrivals = sorted(draw(st.lists(st.integers(0, 2 * 24 * 4), max_size=5)), reverse=True)
    queue = [Queued(f"q{index}", now - k * QUARTER, f"q{index}") for index, k in enumerate(arrivals)]
    return policy, History(sent, tuple(r for r in replies if r.at <= now)), queue, now


def gate_leaves(policy: Policy, history: History, queue: list[Queued], now: datetime) -> datetime:
    """When the deadline gate judges a REQUEST appended now to leave: its planned time; now when only a reply (or
    the follow-up allowance) releases it."""
    request = Queued("request", now, "Invitation", standalone=True)
    decision = next(d for d in Engine(policy, history).plan([*queue, request], now) if d.id == "request")
    if decision.at is None or decision.rule == UNANSWERED:
        return instant(now)
    return max(instant(now), decision.at)


@given(states())
def test_a_suggested_time_is_one_its_invitation_can_leave_in_time_for(state: State) -> None:
    policy, history, queue, now = state
    rules = policy.meetings
    start = earliest_start(policy, history, queue, now)
    slots = find_slots(rules, policy.zone, now, [], count=1, not_before=start)
    leaves = gate_leaves(policy, history, queue, now)
    assert invitation_leaves(policy, history, queue, now) == leaves
    if slots:
        assert after(slots[0].utc_start, -rules.min_notice) >= leaves, "the gate would withdraw its invitation"
    # The earliest such time: every earlier start in the meeting windows would leave its invitation late.
    until = slots[0].utc_start if slots else after(now, rules.horizon)
    first = after(now, rules.min_notice)
    for opens, closes in WeeklySchedule.of(rules.windows, policy.zone).intervals(first, until):
        candidate = instant(opens)
        while after(candidate, rules.duration) <= min(instant(closes), after(now, rules.horizon)):
            if first <= candidate < until:
                assert after(candidate, -rules.min_notice) < leaves, f"{candidate} was free and early enough"
            candidate = after(candidate, QUARTER)


def test_the_invitation_waits_behind_the_queue_and_each_of_several_behind_the_one_before() -> None:
    policy = Policy.model_validate(
        {
            "mentor": {"name": "Dr. Test", "addresses": ["t@example.org"], "timezone": "America/Chicago"},
            "email": {
                "max_per_day": 10,
                "max_per_week": 50,
                "min_gap": "1h",
                "max_unanswered": 10,
                "send_windows": ["Mon-Sun 00:00-24:00"],
            },
            "meetings": {"windows": ["Mon-Sun 00:00-24:00"], "min_notice": "1h", "horizon": "7d"},
        }
    )
    now = datetime(2026, 12, 6, 8, 14, tzinfo=UTC)
    history = History((SentItem(now, ("one",)),))
    queue = [Queued("two", now, "two"), Queued("three", now, "three")]
    # "two" at 09:14, "three" at 10:14: the invitation at 11:14, so no meeting before 12:14.
    assert invitation_leaves(policy, history, queue, now) == datetime(2026, 12, 6, 11, 14, tzinfo=UTC)
    assert earliest_start(policy, history, queue, now) == datetime(2026, 12, 6, 12, 14, tzinfo=UTC)
    assert earliest_start(policy, history, queue, now, count=3) == datetime(2026, 12, 6, 14, 14, tzinfo=UTC)
    slot = find_slots(
        policy.meetings, policy.zone, now, [], count=1, not_before=earliest_start(policy, history, queue, now)
    )
    assert slot[0].utc_start == datetime(2026, 12, 6, 12, 15, tzinfo=UTC)
    assert earliest_start(policy, History(), [], now) == after(now, timedelta(hours=1))  # nothing waits: min_notice
