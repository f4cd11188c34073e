"""A send in doubt moved back to the Outbox by the student: its hand-over keeps counting (:mod:`agent.store.in_doubt`).

Apart from :mod:`agent.store.in_doubt` because it writes through the ledger, which reads that module."""

from __future__ import annotations

from agent.store.ledger import Ledger, Row

IN_DOUBT_ITEM = "in-doubt:"  # the id an item kept for a hand-over in doubt is recorded under: this, then the release's


def keep_counting(ledger: Ledger, row: Row) -> None:
    """``row`` in doubt is about to be forgotten (moved back to the Outbox: a new send): record its release's
    hand-over as an item of its own, so it keeps counting as the e-mail the mentor may have received then (inside
    the caller's transaction). Its release's other rows still in doubt are members: counted once, not twice."""
    if row.sent_at is None or row.mentor is None:
        return
    release = row.item or row.key
    # One item per hand-over (the same message may be moved back, sent in doubt and moved back again), and not
    # known by the message's own key or Message-ID: taken in again it is a new send, and a new hand-over of it in
    # doubt must count on its own.
    kept = f"{IN_DOUBT_ITEM}{release}@{row.sent_at.isoformat()}"
    members = {kept, release}
    for key, message_id in ledger.db.execute(
        "SELECT key, message_id FROM messages WHERE state = 'attention' AND sent_at IS NOT NULL AND item = ?",
        (release,),
    ):
        members.update((key, message_id))
    members -= {row.key, row.message_id}
    ledger.add_item(row.mentor, kept, row.sent_at, members, addresses=row.recipients)
