"""The incremental engine (``Planner``, used by ``simulate``) against the from-scratch engine.

``Engine.next_group`` and ``Engine.plan`` decide from the whole state (history and queue) at every call; the
planner keeps its state between events and decides the first group in constant time. Both must give the same
decisions, and ``simulate`` must give what the from-scratch loop it replaced gave (kept below as the reference),
on random event sequences with many messages waiting: thread answers, digest groups, flagged messages,
replies to random earlier messages (and to messages not sent yet).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.rules.localtime import after, instant, wall
from agent.rules.pacing import Engine, History, Planner, Queued, Reply, SentItem
from agent.rules.policy import Policy
from agent.rules.simulate import RUN_ON, Event, Outcome, simulate

QUARTER = timedelta(minutes=15)
START = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)  # the week of a DST change in America/Chicago
ZONES = ["America/Chicago", "Europe/London", "Australia/Lord_Howe", "Asia/Kathmandu", "UTC"]


def reference_simulate(policy: Policy, events: Sequence[Event], *, run_on: timedelta = RUN_ON) -> list[Outcome]:
    """``simulate`` as it was before the planner: ``Engine.next_group`` over the whole queue after each event."""
    ordered = sorted(enumerate(events), key=lambda pair: (instant(pair[1].at), pair[0]))
    stream = deque(event for _, event in ordered)
    sends = [event for event in events if event.type == "send"]
    if not sends:
        return []
    end = after(ordered[-1][1].at, run_on)
    engine = Engine(policy, History())
    queue: list[Queued] = []
    results: dict[str, tuple[datetime, str | None, str]] = {}
    told: dict[str, tuple[datetime | None, str, str | None]] = {}
    now = instant(ordered[0][1].at)
    while True:
        group = engine.next_group(queue, now) if queue else []
        release = group[0].at if group else None
        for decision in group:
            before = told.get(decision.id)
            if before is None or before[0] != decision.at or before[2] != decision.digest:
                reason = decision.reason
                if (
                    before is not None
                    and decision.rule is None
                    and decision.at is not None
                    and (before[0] is None or decision.at < before[0])
                ):
                    reason = before[1].split("; goes ")[0] + "; a reply released it early"
                told[decision.id] = (decision.at, reason, decision.digest)
        if stream and (release is None or instant(stream[0].at) <= release):
            event = stream.popleft()
            now = max(now, instant(event.at))
            if event.type == "send":
                queue.append(Queued(event.id, event.at, event.subject, event.thread, event.group, event.flagged))
            else:
                engine.answer(Reply(event.at, event.to))
            continue
        if release is None or release > end:
            break
        now = max(now, release)
        engine.commit(group)
        members = {decision.id for decision in group}
        queue = [q for q in queue if q.id not in members]
        for decision in group:
            results[decision.id] = (wall(release, policy.zone), decision.digest, told[decision.id][1])
    outcomes = []
    for event in sends:
        sent_at, digest, reason = results.get(event.id, (None, None, told.get(event.id, (None, "", None))[1]))
        if sent_at is None:
            reason = f"still held at the end of the simulation: {reason}" if reason else "still held"
        outcomes.append(Outcome(event.id, event.subject, event.at, sent_at, digest, reason))
    return outcomes


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    per_day = draw(st.integers(1, 3))
    start = draw(st.integers(6, 14))
    return Policy.model_validate(
        {
            "mentor": {"name": "Dr. Test", "addresses": ["t@example.org"], "timezone": draw(st.sampled_from(ZONES))},
            "email": {
                "max_per_day": per_day,
                "max_per_week": draw(st.integers(per_day, 8)),
                "min_gap": f"{draw(st.integers(0, 32)) * 15}m",
                "send_windows": [
                    f"{draw(st.sampled_from(['Mon-Fri', 'Mon-Sun', 'Tue,Thu']))} "
                    f"{start:02d}:00-{start + draw(st.integers(1, 8)):02d}:00"
                ],
                "max_unanswered": draw(st.integers(1, 3)),
                "follow_up_after": f"{draw(st.integers(1, 4 * 24 * 4)) * 15}m",
                "over_limit": draw(st.sampled_from(["delay", "batch", "batch"])),
            },
        }
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Policy, list[Event]]:
    policy = draw(policies())
    count = draw(st.integers(1, 60))
    replies = draw(st.sampled_from([0.0, 0.05, 0.3]))  # from "never answers" to "answers often"
    at = START
    events: list[Event] = []
    sent = 0
    for _ in range(count):
        at = at + draw(st.integers(0, 24 * 4)) * QUARTER
        if sent and draw(st.floats(0, 1)) < replies:
            to = draw(st.integers(0, sent + 2))  # sometimes a message not sent yet: the reply is ignored
            events.append(Event(at=at, type="reply", to=f"m{min(to, sent - 1)}"))
            continue
        events.append(
            Event(
                at=at,
                type="send",
                id=f"m{sent}",
                subject=f"s{sent}",
                thread=draw(st.integers(0, 9)) == 0,
                group=draw(st.sampled_from(["", "", "other"])),
                flagged=draw(st.integers(0, 19)) == 0,
            )
        )
        sent += 1
    return policy, events


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_simulate_gives_what_the_from_scratch_loop_gives(scenario: tuple[Policy, list[Event]]) -> None:
    policy, events = scenario
    assert simulate(policy, events) == reference_simulate(policy, events)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_planner_decides_the_head_as_the_engine_does_from_the_whole_state(scenario: tuple[Policy, list[Event]]) -> None:
    """After every event, and after every send, the planner's head is ``next_group`` (and the start of
    ``plan``) computed from scratch on the history and the queue, whether or not the head is due."""
    policy, events = scenario
    planner = Planner(policy)
    sent: list[SentItem] = []
    replies: list[Reply] = []
    queue: list[Queued] = []
    now = instant(events[0].at)

    def check() -> None:
        head = planner.head(now)
        fresh = Engine(policy, History(tuple(sent), tuple(replies)))
        expected = fresh.next_group(queue, now)
        assert planner.waiting() == queue
        if head is None:
            assert expected == []
            return
        assert head.decisions() == expected
        if not head.forced:
            assert Engine(policy, History(tuple(sent), tuple(replies))).plan(queue, now)[: head.size] == expected

    for event in events:
        now = max(now, instant(event.at))
        if event.type == "send":
            message = Queued(event.id, event.at, event.subject, event.thread, event.group, event.flagged)
            planner.add(message)
            queue.append(message)
        elif planner.answer(Reply(event.at, event.to)):
            replies.append(Reply(event.at, event.to))
        check()
        head = planner.head(now)
        # Send the head now and then (also before it is due: the state is what matters here).
        if head is not None and head.decision.at is not None and len(queue) % 3 == 0:
            ids = head.ids()
            sent.append(SentItem(head.decision.at, tuple(ids), head.decision.follow_up))
            planner.send(head)
            queue = [q for q in queue if q.id not in ids]
            now = max(now, instant(head.decision.at))
            check()


def test_messages_must_be_added_in_arrival_order() -> None:
    planner = Planner(
        Policy.model_validate({"mentor": {"name": "Dr. Test", "addresses": ["t@example.org"], "timezone": "UTC"}})
    )
    planner.add(Queued("m1", START))
    with pytest.raises(ValueError, match="m2 arrived before"):
        planner.add(Queued("m2", START - QUARTER))


def test_a_reply_that_releases_a_held_digest_early_is_told_to_every_message_in_it() -> None:
    policy = Policy.model_validate(
        {
            "mentor": {"name": "Dr. Test", "addresses": ["t@example.org"], "timezone": "UTC"},
            "email": {
                "max_per_day": 5,
                "max_per_week": 20,
                "min_gap": "0m",
                "send_windows": ["Mon-Sun 00:00-23:59"],
                "max_unanswered": 1,
                "follow_up_after": "3d",
                "over_limit": "batch",
            },
        }
    )
    events = [Event(at=START, type="send", id="m0")]
    events += [Event(at=START + n * QUARTER, type="send", id=f"m{n}") for n in range(1, 6)]
    events.append(Event(at=START + 8 * QUARTER, type="reply", to="m0"))
    outcomes = simulate(policy, events)
    assert outcomes == reference_simulate(policy, events)
    held = outcomes[1:]
    assert {o.sent_at for o in held} == {START + 8 * QUARTER} and {o.digest for o in held} == {"digest-m1"}
    assert all(o.reason.endswith("; a reply released it early") for o in held), [o.reason for o in held]
    assert all(o.reason.startswith("1 message to Dr. Test awaits a reply") for o in held)
