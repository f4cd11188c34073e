"""``setup``'s door question: which mail program the student writes in, and that program's steps.

For a program whose door is its own Send, the config gets a ``[submission]`` section (the daemon then listens on
127.0.0.1) and the steps show the host, port, user and the generated password to enter as its outgoing server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.cli.doors import BY_KEY, CLIENTS, Client, steps_for
from agent.cli.prompts import Asker
from agent.config.settings import Settings
from agent.errors import UserError
from agent.mail.submission import local_secret

NONE = "none"
CHOICES = [NONE, *(client.key for client in CLIENTS)]


def choose_client(ask: Asker, o: dict[str, Any], existing: dict[str, Any]) -> tuple[Client | None, dict[str, Any]]:
    """The program (None: not asked, or "none") and the config changes its door needs."""
    if ask.interactive and o.get("client") is None:
        ask.say("Which mail program do you write in? " + "; ".join(f"{c.key}: {c.name}" for c in CLIENTS))
    key = ask.choice("--client", o.get("client"), "Your mail program", CHOICES, NONE)
    client = BY_KEY.get(key)
    if client is None:
        return client, {}
    changes: dict[str, Any] = {}
    if client.door == "star" or "star" in client.also or "flag" in client.also:
        changes["drafts"] = {"take_flagged": True}  # the star door is opt-in: a flag alone never sends
    if client.door == "send":
        port = o.get("submission_port") or (existing.get("submission") or {}).get("port") or 1587
        changes["submission"] = {"port": int(port)}
    return client, changes


def opens_star_door(changes: dict[str, Any], existing: dict[str, Any]) -> bool | None:
    """Whether setup opens the star door now (True: it was shut; False: it stays open; None: not a star door)."""
    if not (changes.get("drafts") or {}).get("take_flagged"):
        return None
    return not (existing.get("drafts") or {}).get("take_flagged")


def open_star_door(ask: Asker, settings: Settings, config: Path, *, again: bool) -> None:
    """Keep the door's baseline (the drafts flagged now), so that a star set after setup and before the daemon's
    first pass is taken, and one set before setup is not (a reminder, until she flags it again)."""
    import asyncio

    from agent.daemon.session import run_step
    from agent.reconcile.doors.star_opening import open_star_door as record

    try:
        opened = asyncio.run(run_step(settings, str(config), lambda world: record(world, again=again)))
    except UserError as error:  # the account worked a moment ago: the daemon's first pass keeps the baseline then
        ask.say(f"Could not look at your drafts now ({error}); mentor-agent does when it first runs.")
        return
    if opened is None or not opened.flagged:
        return
    drafts = "draft to a mentor is" if opened.flagged == 1 else "drafts to a mentor are"
    ask.say(
        f"{opened.flagged} {drafts} flagged in {opened.folder} now: left alone (a flag set before the door opened "
        "may be a reminder). To hand one over, take its flag off and set it again:"
    )
    for subject in opened.subjects:
        ask.say(f"  - {subject}")


def show_steps(ask: Asker, client: Client, settings: Settings) -> None:
    folders = settings.imap.folders
    values: dict[str, Any] = {"outbox": folders.outbox, "drafts": folders.drafts or "Drafts"}
    door = settings.submission
    if door is not None:
        values |= {"host": door.listen, "port": door.port, "user": door.username}
        values["password"] = local_secret(settings.state_dir)
    ask.say("")
    for line in steps_for(client, **values):
        ask.say(line)
    if door is not None and client.door == "send":
        ask.say(f"  (The password is kept in {settings.state_dir / 'submission-password'}; mentor-agent must run.)")
