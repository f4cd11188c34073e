"""The provider's late Sent copy (``file_in_sent = "auto"``): the agent's own copy goes when it comes, even when the
agent was restarted in between (issue 20: the watch lived in memory, and a restart left both copies for good)."""

from __future__ import annotations

import pytest

from agent.store import sent_watch
from tests.agent_process import Agent, agent, eventually, mail
from tests.servers.dovecot import SENT

__all__ = ["agent"]  # the fixture
pytestmark = pytest.mark.servers


def test_a_restart_before_the_providers_late_copy_still_leaves_one_copy_in_sent(agent: Agent) -> None:
    """Measured before the fix: after the restart both copies stayed in Sent."""
    agent.config.write_text(agent.config.read_text().replace('file_in_sent = "always"', 'file_in_sent = "auto"'))
    agent.start()
    agent.drop(mail("filed late"))
    (received,) = agent.smtp.wait_for(1)
    (ours,) = eventually(lambda: list(agent.folder_raw("Sent")), timeout=15)  # the provider's did not come in time
    agent.stop()
    theirs = agent.dovecot.append(agent.user, SENT, received.content, ("\\Seen",))  # the provider's, late
    agent.start()
    eventually(lambda: list(agent.folder_raw("Sent")) == [theirs], timeout=8)
    assert ours != theirs and agent.folder_raw("Sending") == {}
    ledger = agent.ledger()
    try:
        assert sent_watch.watched(ledger) == {}, "nothing left to watch"
    finally:
        ledger.close()
