"""Another mentor-agent on the same account (a second computer, a copy left running): each keeps its own record of
what the mentors received, so at the moments both act a mentor may get more than agreed (two messages seconds apart
where a gap was agreed). Nothing lost or sent twice (the claim protocol), but the pace can slip: she is told once per
other agent, by the id its claims and held marks carry (``MailboxPort.other_agents``), to run one."""

from __future__ import annotations

import logging

from agent.reconcile.context import World

log = logging.getLogger("mentor_agent")

TOLD = "another agent told"  # logged with the other agent's id once she is told of it


async def tell_other_agents(world: World) -> None:
    """She is told of each other agent seen on the account, once."""
    for other in sorted(world.mailbox.other_agents):
        if world.ledger.logged(TOLD, other):
            continue
        log.warning("another mentor-agent (id %s) works on this account: the pace between the two may slip", other)
        told = await world.notify_once(
            "Another mentor-agent works on this account",
            [
                f"Another mentor-agent (id {other}) moves messages in your folders beside this one (id "
                f"{world.ledger.agent_id()}): on a second computer, say, or a copy left running.",
                "Each keeps its own record of what your mentors received, so at the moments both act a mentor may get "
                "more than you agreed (two messages seconds apart where you agreed on a gap). Nothing is lost or sent "
                "twice, but stop one of them: `systemctl --user stop mentor-agent` where you do not want it.",
            ],
            f"another-agent-{other}",  # found again after an APPEND whose answer never came: told once
        )
        if told:
            world.ledger.log(TOLD, message=other)
