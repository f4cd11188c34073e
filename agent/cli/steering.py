"""``mentor-agent release ID`` / ``cancel ID``: the same controls as the mail client, from a terminal.

They act on the mailbox exactly as the student would — flag the held message (send now anyway) or take it out
of Scheduled (cancel: it goes to Drafts, never destroyed) — so the running daemon sees the change through IDLE
and applies its usual rules. They log in as the daemon does (:func:`agent.daemon.session.connect`: the same
login, SPECIAL-USE check and folders).
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.config.settings import Settings
from agent.errors import UserError
from agent.mail.claim import Mailbox
from agent.mail.session import MessageGone
from agent.store.ledger import SCHEDULED, Ledger, Row
from agent.store.status import short_id


@dataclass(frozen=True)
class Held:
    row: Row
    short: str


MIN_PREFIX = 4  # fewer characters than this could be anything: an id is never guessed


def find_held(ledger: Ledger, handle: str) -> Held:
    """The scheduled message whose short id (as `status` shows it) or Message-ID is ``handle``.

    An empty or too short prefix is an error, and so is one that fits several messages (they are listed):
    `release` and `cancel` act only on the one message the student meant.
    """
    handle = handle.strip()
    rows = ledger.in_states(SCHEDULED)
    exact = [Held(row, short_id(row.key)) for row in rows if handle and handle in (row.key, row.message_id)]
    if exact:
        return exact[0]
    if len(handle) < MIN_PREFIX:
        raise UserError(
            f"{handle!r} is too short to name a message: give at least {MIN_PREFIX} characters of "
            "the id `mentor-agent status` shows"
        )
    matches = [Held(row, short_id(row.key)) for row in rows if short_id(row.key).startswith(handle.lower())]
    if not matches:
        raise UserError(f"no held message with id {handle!r}; `mentor-agent status` lists them")
    if len(matches) > 1:
        listed = "\n".join(f"  [{m.short}] {m.row.subject}" for m in matches)
        raise UserError(
            f"{handle!r} matches {len(matches)} held messages, so nothing was done; give more of the id:\n{listed}"
        )
    return matches[0]


def drafts_folder(mailbox: Mailbox, configured: str) -> str:
    """Where a cancelled message goes: the configured folder, else SPECIAL-USE \\Drafts, else "Drafts"."""
    name = configured
    if not name:
        name = mailbox.special_drafts() or ""
    name = name or "Drafts"
    mailbox.ensure_folder(name)
    return name


def act(settings: Settings, config_file: str, handle: str, *, release: bool) -> str:
    from agent.daemon.session import connect

    ledger = Ledger(settings.ledger_path)
    try:
        held = find_held(ledger, handle)
        agent_id = ledger.agent_id()
    finally:
        ledger.close()
    mailbox, folders = connect(settings, config_file, agent_id)  # as the daemon logs in and finds its folders
    try:
        uids = (
            mailbox.find_by_message_id(folders.scheduled, held.row.key)
            if not held.row.key.startswith("sha256:")
            else ([held.row.uid] if held.row.uid else [])
        )
        if not uids:
            raise UserError(f"“{held.row.subject}” is no longer in {folders.scheduled} (sent or cancelled already?)")
        if release:
            mailbox.set_flags(folders.scheduled, uids[0], ["\\Flagged"])
            return f"released [{held.short}] “{held.row.subject}”: it goes now (and counts against the agreement)"
        # Never destroyed: the message goes to Drafts, where the student can take it up again.
        drafts = drafts_folder(mailbox, settings.imap.folders.drafts)
        if drafts in (folders.outbox, folders.scheduled, folders.sending, folders.sent):
            raise UserError(
                f"imap.folders.drafts = {drafts!r} is one of the agent's own folders: a cancelled "
                "message there would be sent (or look sent); name your drafts folder, or leave it empty"
            )
        try:
            mailbox.move(folders.scheduled, uids[0], drafts)
        except MessageGone:
            raise UserError(
                f"“{held.row.subject}” is no longer in {folders.scheduled} (sent or cancelled already?)"
            ) from None
        return (
            f"cancelled [{held.short}] “{held.row.subject}”: it is in {drafts}; move it to {folders.outbox} to "
            "send it after all"
        )
    finally:
        mailbox.close()
