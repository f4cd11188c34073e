"""kill -9 of the daemon at random moments while mail flows: each message reaches the server exactly once,
or sits in Needs attention with a notice that says it is IN DOUBT. Never lost, never twice."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable

import pytest

from agent.crashpoints import VARIABLE
from tests.agent_process import MENTOR, Agent, mail
from tests.faults.accounting import UNLIMITED_POLICY, account, settle

pytestmark = pytest.mark.servers

CRASH_POINTS = ("claimed", "queued", "sending", "accepted")


def test_kill_9_at_random_moments_loses_nothing_and_sends_nothing_twice(
    agent: Agent, soak: bool, figures: Callable[..., None]
) -> None:
    messages, kills = (300, 50) if soak else (40, 8)
    rng = random.Random(20260907 + (1 if soak else 0))
    subjects = [f"kill-{n:03d}" for n in range(messages)]
    per_round = -(-messages // kills)
    crashes = {"random": 0, **dict.fromkeys(CRASH_POINTS, 0), "point not reached": 0}
    agent.policy(UNLIMITED_POLICY)
    for round_ in range(kills):
        # Every other life ends at a named crash point, in turn (the in-doubt path is then certain to be
        # exercised); the others at a random moment: during start-up, intake, a send, filing, or idling.
        point = CRASH_POINTS[(round_ // 2) % len(CRASH_POINTS)] if round_ % 2 == 1 else None
        agent.start(**({VARIABLE: point} if point else {}))
        batch = subjects[round_ * per_round : (round_ + 1) * per_round]
        for subject in batch:
            agent.drop(mail(subject, to=MENTOR if rng.random() < 0.5 else "friend@example.org"))
        assert agent.process is not None
        kind = point or "random"
        if point is not None:
            try:
                agent.process.wait(15)
            except Exception:  # nothing reached the point (e.g. all sent already): kill it ourselves
                agent.process.send_signal(signal.SIGKILL)
                kind = "point not reached"
        else:
            time.sleep(rng.uniform(0.05, 2.5))
            agent.process.send_signal(signal.SIGKILL)
        agent.process.wait(15)
        crashes[kind] += 1
    agent.start()
    waited = settle(agent, subjects, timeout=60 + messages * 0.3)
    tally = account(agent, subjects, notice_must_say="IN DOUBT")
    survived = messages - len(tally.lost) - len(tally.duplicated)
    figures(
        tries=kills,
        kill_kinds=crashes,
        messages=messages,
        survived=survived,
        **tally.figures(),
        settle_seconds=round(waited, 1),
    )
    assert agent.process_ended() is False, agent.log()[-3000:]
    assert tally.lost == [], f"lost: {tally.lost}"
    assert tally.duplicated == [], f"sent twice: {tally.duplicated}"
    assert tally.unreported_attention == [], (
        f"in Needs attention without an in-doubt notice: {tally.unreported_attention}"
    )
    assert tally.sent_twice_in_sent == [], f"filed twice in Sent: {tally.sent_twice_in_sent}"
    assert agent.folder_raw("Outbox") == {} and agent.folder_raw("Sending") == {}
