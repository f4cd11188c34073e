"""Sent copies the agent filed itself (``file_in_sent = "auto"``), watched for a while in case the provider files its
own late (then ours goes): in the ledger's ``sent_watch`` table, so that a restart meanwhile still leaves one copy."""

from __future__ import annotations

from datetime import UTC, datetime

from agent.store.ledger import Ledger


def watch(ledger: Ledger, message_id: str, uid: int, filed_at: datetime) -> None:
    """Remember a Sent copy the agent filed itself, to remove it if the provider files its own late."""
    ledger.db.execute(
        "INSERT OR REPLACE INTO sent_watch(message_id, uid, filed_at) VALUES (?, ?, ?)",
        (message_id, uid, filed_at.astimezone(UTC).isoformat()),
    )


def watched(ledger: Ledger) -> dict[str, tuple[int, datetime]]:
    """{Message-ID: (UID of the agent's copy in Sent, when it was filed)}, oldest first."""
    found = ledger.db.execute("SELECT message_id, uid, filed_at FROM sent_watch ORDER BY filed_at, message_id")
    return {message_id: (int(uid), datetime.fromisoformat(at)) for message_id, uid, at in found}


def unwatch(ledger: Ledger, message_id: str) -> None:
    ledger.db.execute("DELETE FROM sent_watch WHERE message_id = ?", (message_id,))
