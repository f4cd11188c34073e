"""Another mentor-agent on the same account (agent/reconcile/other_agents.py): each keeps its own record, so the
pace between the two may slip; she is told once per other agent. Pass by pass, in memory."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent.reconcile.other_agents import tell_other_agents
from tests.agent_process import OUTBOX
from tests.servers.smtp import SmtpServer
from tests.test_passes_on_fake import mail
from tests.test_strangers_on_fake import _two_agents


def test_an_agent_that_sees_another_ones_held_mark_tells_her_once(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """Third hostile round: two agents on one account let a mentor get two messages a second apart under a 20 s gap
    (each knows the other's sends only from Sent), and she was never told two were running."""
    with _two_agents(tmp_path, smtp_server) as (server, laptop, other):
        server.put(OUTBOX, mail("first"))
        laptop.run()
        server.put(OUTBOX, mail("held by the laptop"))
        laptop.run()
        asyncio.run(tell_other_agents(laptop.world))
        other.run()
        assert other.box.other_agents == {"laptop"} and laptop.box.other_agents == set()
        for _ in range(2):
            asyncio.run(tell_other_agents(other.world))
        told = [s for s in other.subjects("INBOX") if "Another mentor-agent" in s]
        assert told == ["[mentor-agent] Another mentor-agent works on this account"]
