"""Notices whose APPEND may have happened: the connection broke before the server's answer (a drop, a cut for a
trickle, a kill). A notice tried again soon after (its caller tells it at the next pass, as the intake does) is looked
for under the Message-ID of that try before it is appended again, so a server that keeps cutting never makes her a
pile of copies.

Kept in the ledger's ``meta`` (a restart in between keeps them), from just before the APPEND until its answer. Only a
try within :data:`RETRY_WITHIN` is the same notice again: later, the same words are a new event (the same login
refused again on another day, the same slip in a policy made again) and are told. A few at most, the oldest first
forgotten."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime, timedelta

from agent.store.ledger import Ledger

KEY = "notices in doubt"
KEPT = 50  # more than any pass tells before one APPEND works again
RETRY_WITHIN = timedelta(minutes=15)  # the reconnect's longest wait (5 min) and a cut's window, with room


def content_of(title: str, lines: Sequence[str], about: str | None) -> str:
    """What makes a notice the same notice again: its title, its words and what it is about."""
    return hashlib.sha256("\x00".join([title, *lines, about or ""]).encode()).hexdigest()[:32]


def _stored(ledger: Ledger) -> dict[str, list[str]]:
    stored = ledger.meta_value(KEY)
    found = json.loads(stored) if stored else {}
    return found if isinstance(found, dict) else {}


def tried(ledger: Ledger, content: str, now: datetime) -> str | None:
    """The Message-ID a try of this notice within :data:`RETRY_WITHIN` was appended under, its answer never read."""
    entry = _stored(ledger).get(content)
    if not isinstance(entry, list) or len(entry) != 2:
        return None
    message_id, at = entry
    return str(message_id) if now - datetime.fromisoformat(str(at)) <= RETRY_WITHIN else None


def trying(ledger: Ledger, content: str, message_id: str, now: datetime) -> None:
    """Before its APPEND: until :func:`answered`, the notice may be in her mailbox under ``message_id``."""
    owed = {k: v for k, v in _stored(ledger).items() if k != content and _recent(v, now)}
    owed[content] = [message_id, now.isoformat()]
    ledger.set_meta(KEY, json.dumps(dict(list(owed.items())[-KEPT:])))


def answered(ledger: Ledger, content: str) -> None:
    """The server answered (stored, refused), or it was found there: nothing in doubt."""
    owed = _stored(ledger)
    if owed.pop(content, None) is not None:
        ledger.set_meta(KEY, json.dumps(owed))


def _recent(entry: object, now: datetime) -> bool:
    return isinstance(entry, list) and len(entry) == 2 and now - datetime.fromisoformat(str(entry[1])) <= RETRY_WITHIN
