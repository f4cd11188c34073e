"""The end of the wait for a first policy (a fresh install without a mentor: the daemon reads no Outbox).

What reached the Outbox during the wait and is to no mentor once the first policy came may be to a mentor whose
policy is still to come: it is held there, never sent unpaced, and the student is told once what lets it go (a
policy with its recipient's address, or her flag to send it as ordinary mail). The wait is marked in the
ledger's meta (``FIRST_WAIT``) so that a stop in between does not lose it.
"""

from __future__ import annotations

import logging

from agent.reconcile.context import World
from agent.reconcile.intake import early_held, take_in_outbox

log = logging.getLogger("mentor_agent.daemon")
FIRST_WAIT = "first_policy_wait"


async def end_the_wait(world: World) -> None:
    """Take in the Outbox with what waited to no mentor held; the one notice; the wait's marks cleared."""
    await take_in_outbox(world, early=True)
    held = early_held(world)
    notice = None
    with world.ledger.transaction():  # owed and the wait's marks cleared at once: told once, whatever stops us
        if held:
            paced = ", ".join(sorted(p.name for p in world.book)) or "none"
            listed = "\n".join(f"  • {row.subject} (to {', '.join(row.recipients)})" for row in held)
            log.warning("%d message(s) in the Outbox arrived before any policy, to no mentor: held", len(held))
            notice = world.owe(
                f"{len(held)} message(s) in the Outbox arrived before any policy: they wait",
                [
                    f"These messages reached {world.folders.outbox} while mentor-agent waited for a first policy, "
                    f"and none is to a mentor it paces now ({paced}). One may be to a mentor whose policy is still to "
                    f"come, so none goes out unpaced:\n{listed}",
                    "To pace one, save a policy with its recipient's address (`mentor-agent setup --mentor-name "
                    "NAME`): it then goes by that policy. To send one as ordinary mail, flag it in the Outbox. To "
                    "drop one, delete it.",
                ],
                about=held[0].message_id,
            )
        world.ledger.set_meta(FIRST_WAIT, "")
        world.ledger.set_status(waiting="")
    if notice is not None:
        await world.tell(notice)
