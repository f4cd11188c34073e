"""Notices whose APPEND may have happened: the connection broke before the server's answer (a drop, a cut for a
trickle). The next try of the same notice looks for it under the Message-ID that try used before appending it again,
so a notice retried pass after pass on a server that keeps cutting is told once. Kept in the ledger's ``meta`` (a
restart in between keeps them); a few at most, the oldest forgotten first."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from agent.store.ledger import Ledger

KEY = "notices in doubt"
KEPT = 50  # more than any pass tells before one APPEND works again


def content_of(title: str, lines: Sequence[str], about: str | None) -> str:
    """What makes a notice the same notice again: its title, its words and what it is about."""
    return hashlib.sha256("\x00".join([title, *lines, about or ""]).encode()).hexdigest()[:32]


def in_doubt(ledger: Ledger) -> dict[str, str]:
    """{content: the Message-ID its last try was appended under}."""
    stored = ledger.meta_value(KEY)
    found = json.loads(stored) if stored else {}
    return found if isinstance(found, dict) else {}


def doubt(ledger: Ledger, content: str, message_id: str) -> None:
    owed = in_doubt(ledger)
    owed.pop(content, None)
    owed[content] = message_id
    ledger.set_meta(KEY, json.dumps(dict(list(owed.items())[-KEPT:])))


def settle(ledger: Ledger, content: str) -> None:
    owed = in_doubt(ledger)
    if owed.pop(content, None) is not None:
        ledger.set_meta(KEY, json.dumps(owed))
