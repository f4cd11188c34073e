"""Her notices of a spell in which the server refused the start's folder check for now
(:mod:`agent.rules.server_trouble`): one once it has lasted, over the refused session itself (its login worked),
and one when it works again."""

from __future__ import annotations

import logging
from datetime import datetime

from agent.config.settings import Settings
from agent.daemon.session import tell_in_inbox
from agent.mail.claim import Mailbox
from agent.reconcile.context import World
from agent.rules.server_trouble import Spell

log = logging.getLogger("mentor_agent")


def _local(settings: Settings, moment: datetime) -> str:
    return moment.astimezone(settings.student.zone).strftime("%a %d %b %H:%M")


def tell_refused(mailbox: Mailbox, settings: Settings, spell: Spell) -> bool:
    """(Blocking.) The notice that the server has refused for a while; whether it is in INBOX now."""
    log.warning(
        "the mail server has refused the folder check for now since %s (%d tries): telling the student",
        spell.since.isoformat(timespec="seconds"),
        spell.tries,
    )
    lines = [
        f"Since {_local(settings, spell.since)} your mail server has refused {spell.tries} times to show "
        f"mentor-agent your folders: “{spell.words}”. The server says this is its own trouble, not your settings.",
        "Until it works again mentor-agent reads and sends nothing: what you put in the Outbox waits there, and "
        "what falls due meanwhile goes once it works, within the agreements. It keeps trying, waiting longer "
        "each time; `mentor-agent status` shows the last error.",
        "Mail that cannot wait: send it from your mail program (it counts in the agreement when it is in Sent).",
    ]
    made = f"trouble-{int(spell.since.timestamp())}"
    return tell_in_inbox(mailbox, settings, "mentor-agent is waiting for your mail server", lines, made)


async def tell_works_again(world: World, spell: Spell) -> bool:
    """The notice that it works again, after a spell she was told of, or one that lasted untold (the notice of it
    could not be appended); whether it is in her mailbox. Under a Message-ID made from the spell, looked for
    first: an APPEND whose answer was lost is not told twice."""
    settings = world.settings
    log.info("the mail server works again (refused for now since %s)", spell.since.isoformat(timespec="seconds"))
    return await world.notify_once(
        "Back in your mailbox: your mail server works again",
        [
            f"From {_local(settings, spell.since)} your mail server refused mentor-agent's look at your folders for "
            f"now (“{spell.words}”).",
            "Until now nothing was read or sent; what became due meanwhile goes now, within the agreements.",
        ],
        f"works-{int(spell.since.timestamp())}",
    )
