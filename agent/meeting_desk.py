"""Meetings in the daemon: proposals out through the Outbox, replies in from INBOX.

(Being written; these hooks are what the daemon calls.)
"""

from __future__ import annotations

from datetime import datetime

from agent.envelope import Envelope
from agent.mailbox import HeaderInfo
from agent.policy import LoadedPolicy
from agent.world import World


async def meeting_requested(world: World, mentor: LoadedPolicy, envelope: Envelope, info: HeaderInfo) -> bool:
    """A message in the Outbox marked as a meeting request. True when it was handled here."""
    return False


async def pass_once(world: World) -> datetime | None:
    """Follow invites and replies; returns when to look again (None: no timer needed)."""
    return None
