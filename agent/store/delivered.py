"""Messages delivered inside another e-mail: the questions a meeting invitation carried as its agenda.

They count as delivered with that e-mail, as the messages of a digest do: its ``items`` row lists them as
members, so a reply that refers to one of them answers the invitation, and a copy found in Sent is known.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from agent.store.ledger import Ledger


def add_members(ledger: Ledger, item: str, members: Iterable[str]) -> bool:
    """Add ``members`` to the ``items`` row of ``item`` (in the caller's transaction, if any); False when the
    mentor has no such item (yet)."""
    found = ledger.db.execute("SELECT members FROM items WHERE message_id = ?", (item,)).fetchone()
    if found is None:
        return False
    merged = sorted({*json.loads(found[0]), *members})
    ledger.db.execute("UPDATE items SET members = ? WHERE message_id = ?", (json.dumps(merged), item))
    return True
