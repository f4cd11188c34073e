"""The real daemon on Dovecot and aiosmtpd, killed (``kill -9``) in the middle of a send and restarted: what it
finds is paced by her policy, as any other message (the hostile round's findings A and B, end to end; the passes
themselves are in tests/test_left_claimed_on_fake.py and tests/test_in_doubt_counts_on_fake.py).

A message left claimed right after its claim is not sent at the restart when her policy no longer allows it then
(here: her sending hours, edited while it was stopped, no longer include the moment of the restart, as after a
claim at 17:59:30 and a restart at 21:00): it goes back to Scheduled and she is told. A message in doubt (killed
between ``sending`` and ``accepted``) counts as sent to her: her next waits her ``min_gap``."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from agent.crashpoints import VARIABLE
from tests.agent_process import Agent, agent, eventually, mail, policy_text

__all__ = ["agent"]  # the fixture

pytestmark = pytest.mark.servers


def closed_now() -> str:
    """Sending hours in Chicago that exclude the present moment (and the next hour)."""
    hour = datetime.now(ZoneInfo("America/Chicago")).hour
    return '"Mon-Sun 14:00-23:00"' if hour < 12 else '"Mon-Sun 01:00-11:00"'


def test_left_claimed_by_a_kill_waits_for_her_hours_after_the_restart(agent: Agent) -> None:
    agent.policy(policy_text(min_gap="1h"))
    agent.drop(mail("claimed then killed"))
    agent.start(**{VARIABLE: "claimed"})
    assert agent.wait_exit() != 0
    assert agent.subjects("Sending") == ["claimed then killed"] and agent.smtp.messages == []
    agent.policy(policy_text(min_gap="1h", windows=closed_now()))
    agent.start()
    eventually(lambda: agent.subjects("Scheduled") == ["claimed then killed"], timeout=15)
    eventually(lambda: any("Scheduled" in str(n["Subject"]) for n in agent.notices()), timeout=15)
    assert agent.smtp.messages == [], "sent at the restart, outside her sending hours"
    assert agent.subjects("Sending") == []


def test_a_message_in_doubt_after_a_kill_holds_her_next_by_the_gap(agent: Agent) -> None:
    agent.policy(policy_text(min_gap="1h"))
    agent.drop(mail("in doubt"))
    agent.drop(mail("next"))
    agent.start(**{VARIABLE: "sending"})
    assert agent.wait_exit() != 0
    agent.start()
    eventually(lambda: agent.subjects("Needs attention") == ["in doubt"], timeout=15)
    eventually(lambda: agent.subjects("Scheduled") == ["next"], timeout=15)
    eventually(lambda: any("Scheduled" in str(n["Subject"]) for n in agent.notices()), timeout=15)
    assert agent.smtp.messages == [], "her next went at once after one that may have reached her"
