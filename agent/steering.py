"""``mentor-agent release ID`` / ``cancel ID``: the same controls as the mail client, from a terminal.

They act on the mailbox exactly as the student would — flag the held message (send now anyway) or delete it
from Scheduled (cancel) — so the running daemon sees the change through IDLE and applies its usual rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.errors import UserError
from agent.ledger import SCHEDULED, Ledger, Row
from agent.mailbox import Mailbox
from agent.settings import Settings
from agent.status import short_id


@dataclass(frozen=True)
class Held:
    row: Row
    short: str


def find_held(ledger: Ledger, handle: str) -> Held:
    """The scheduled message whose short id (as `status` shows it) or Message-ID is ``handle``."""
    matches = [
        Held(row, short_id(row.key))
        for row in ledger.in_states(SCHEDULED)
        if handle in (row.key, row.message_id) or short_id(row.key).startswith(handle.lower())
    ]
    if not matches:
        raise UserError(f"no held message with id {handle!r}; `mentor-agent status` lists them")
    if len(matches) > 1:
        raise UserError(f"{handle!r} matches {len(matches)} held messages; give more of the id")
    return matches[0]


def act(settings: Settings, config_file: str, handle: str, *, release: bool) -> str:
    from agent.daemon import login_for

    ledger = Ledger(settings.ledger_path)
    try:
        held = find_held(ledger, handle)
    finally:
        ledger.close()
    mailbox = Mailbox(settings.imap, login_for(settings.imap, "imap", config_file))
    mailbox.connect()
    try:
        folders = mailbox.resolve_folders(settings.imap.folders)
        uids = mailbox.find_by_message_id(folders.scheduled, held.row.key) if not held.row.key.startswith(
            "sha256:") else ([held.row.uid] if held.row.uid else [])
        if not uids:
            raise UserError(f"“{held.row.subject}” is no longer in {folders.scheduled} (sent or cancelled already?)")
        if release:
            mailbox.set_flags(folders.scheduled, uids[0], ["\\Flagged"])
            return f"released [{held.short}] “{held.row.subject}”: it goes now (and counts against the agreement)"
        mailbox.delete(folders.scheduled, uids[0])
        return f"cancelled [{held.short}] “{held.row.subject}”"
    finally:
        mailbox.close()
