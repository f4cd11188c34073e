"""A send in doubt moved back to the Outbox by the student: its hand-over keeps counting (:mod:`agent.store.in_doubt`).

Apart from :mod:`agent.store.in_doubt` because it writes through the ledger, which reads that module."""

from __future__ import annotations

from agent.store.in_doubt import kept_id
from agent.store.ledger import Ledger, Row


def keep_counting(ledger: Ledger, row: Row) -> None:
    """``row`` in doubt is about to be forgotten (moved back to the Outbox: a new send): record its release's
    hand-over as an item of its own, so it keeps counting as the e-mail the mentor may have received then (inside
    the caller's transaction). One item per hand-over, known by its release and time (:func:`kept_id`), not by
    its members' own ids: its release's other rows still in doubt are matched to it that way (counted once), and
    the same messages taken in again and handed over in doubt again count on their own."""
    if row.sent_at is None or row.mentor is None:
        return
    release = row.item or row.key
    kept = kept_id(release, row.sent_at)
    # A digest's own Message-ID is no member's: kept, so that its copy found in Sent later is known (not counted
    # again). A message's own id is not: taken in again, it goes out with it.
    members = {kept} | ({release} - {row.key, row.message_id})
    ledger.add_item(row.mentor, kept, row.sent_at, members, addresses=row.recipients)
