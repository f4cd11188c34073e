"""Folders the daemon cannot watch because the mail server takes no more connections for her account.

The daemon holds one connection to work and one IDLE connection per folder it watches (the Outbox, Scheduled,
INBOX, and Drafts for the star door). Servers limit how many connections an account may hold at once — Dovecot
10 per account and address by default, Gmail 15 — and her other mail programs hold some: a phone, a desktop
program with several. A watcher the server refuses for that reason (RFC 5530 ``[LIMIT]``) does not end the session:
the daemon goes on without it, looks at that folder on every pass instead (at least once a minute), tries to
watch it again every :data:`LIMIT_RETRY`, and tells her — in the journal each time, in ``status``, and by a notice
at most once every :data:`TELL_AGAIN`, since nothing is wrong with her mail, only slower to be seen.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from agent.reconcile.context import World

log = logging.getLogger("mentor_agent")

LIMIT_RETRY = 600.0  # seconds: how long a folder stays unwatched before the daemon tries to watch it again
TELL_AGAIN = timedelta(days=7)
TOLD = "connection limit told"  # the ledger's meta: when she was last told (ISO time)


async def tell(world: World, dropped: Sequence[str], unwatched: Sequence[str], heartbeat: float) -> None:
    """``dropped``: the folders whose watching the server just refused; ``unwatched``: all that are now."""
    log.warning(
        "the mail server takes no more connections for this account (its limit; other mail programs hold the "
        "rest): not watching %s; looked at on every pass instead (at least every %.0f s), and watched again "
        "when a connection is free",
        ", ".join(dropped),
        heartbeat,
    )
    now = world.now()
    told = world.ledger.meta_value(TOLD)
    if told and now - datetime.fromisoformat(told) < TELL_AGAIN:
        return
    names = ", ".join(unwatched)
    # This week's notice has its own Message-ID, looked for first: an APPEND the server stored but whose answer
    # was lost is not told twice.
    year, week, _ = now.isocalendar()
    appended = await world.notify_once(
        "Your mail server limits connections: some folders are looked at every minute",
        [
            "Your mail server lets an account hold only so many connections at once, and your other mail programs "
            f"(a phone, a desktop program) hold some of them. So mentor-agent could not keep watching {names}.",
            f"Nothing is lost: it looks at {names} at least once a minute instead of at once, and tries to watch "
            f"again every {LIMIT_RETRY / 60:.0f} minutes. Mail you drop in the Outbox may take up to a minute to go.",
            "To have it react at once again, close a mail program you do not use on this account, or ask your mail "
            "provider about its limit on connections.",
        ],
        f"limit-{year}-{week:02d}",
    )
    if appended:  # not appended (the server refused it): told at the next refusal
        world.ledger.set_meta(TOLD, now.isoformat())
