"""A send in doubt moved back to the Outbox by the student: its hand-over keeps counting (:mod:`agent.store.in_doubt`).

Apart from :mod:`agent.store.in_doubt` because it writes through the ledger, which reads that module."""

from __future__ import annotations

from datetime import datetime

from agent.store.in_doubt import IN_DOUBT_ITEM, handed_over, kept_id
from agent.store.ledger import DONE, Ledger, Row

TAKEN_BACK = "taken back in doubt"  # logged about a message taken in again after a send in doubt: its kept_id


def taken_back(ledger: Ledger) -> dict[str, list[tuple[str, datetime]]]:
    """The messages taken in again after a send in doubt, by that send's release (a message's or a digest's
    Message-ID): {release: [(key, when that send was handed over)]}, oldest first."""
    found: dict[str, list[tuple[str, datetime]]] = {}
    for key, detail in ledger.db.execute(
        "SELECT message, detail FROM log WHERE event = ? ORDER BY rowid", (TAKEN_BACK,)
    ):
        release, _, at = str(detail).removeprefix(IN_DOUBT_ITEM).rpartition("@")  # a Message-ID has an @ too
        if release:
            found.setdefault(release, []).append((str(key), handed_over(at)))
    return found


def keep_counting(ledger: Ledger, row: Row) -> None:
    """``row`` in doubt is about to be forgotten (moved back to the Outbox: a new send): record its release's
    hand-over as an item of its own, so it keeps counting as the e-mail the mentor may have received then (inside
    the caller's transaction). One item per hand-over, known by its release and time (:func:`kept_id`), not by
    its members' own ids: its release's other rows still in doubt are matched to it that way (counted once), and
    the same messages taken in again and handed over in doubt again count on their own."""
    if row.sent_at is None:
        return
    release = row.item or row.key
    kept = kept_id(release, row.sent_at)
    # The message taken in again is linked to that hand-over: a copy of it found in Sent later means the message
    # went then, and the copy taken in again is not sent a second time (agent.reconcile.went_after_all).
    ledger.log(TAKEN_BACK, message=row.key, detail=kept)
    if row.mentor is None:
        return
    # A digest's own Message-ID is no member's: kept, so that its copy found in Sent later is known (not counted
    # again). A message's own id is not: taken in again, it goes out with it.
    members = {kept} | ({release} - {row.key, row.message_id})
    ledger.add_item(row.mentor, kept, row.sent_at, members, addresses=row.recipients)


def kept_hand_overs(ledger: Ledger, release: str) -> list[datetime]:
    """When the sends in doubt of ``release`` were handed over, as kept for messages taken in again (oldest
    first): what a ledger from before the links were logged (:data:`TAKEN_BACK`) still knows of them."""
    prefix = f"{IN_DOUBT_ITEM}{release}@"
    found = ledger.db.execute(
        "SELECT message_id FROM items WHERE substr(message_id, 1, ?) = ? ORDER BY at", (len(prefix), prefix)
    )
    return [handed_over(str(item)[len(prefix) :]) for (item,) in found]


def untold(ledger: Ledger, details: tuple[str, ...], told: str, *, state: str = DONE) -> list[Row]:
    """The rows in ``state`` with one of ``details`` that no ``told`` event was logged about (a notice still owed)."""
    marks = ", ".join("?" for _ in details)
    found = ledger.db.execute(
        f"SELECT * FROM messages WHERE state = ? AND detail IN ({marks}) AND NOT EXISTS "
        "(SELECT 1 FROM log WHERE log.event = ? AND log.message = messages.key) ORDER BY arrived, rowid",
        (state, *details, told),
    )
    return [Row.of(record) for record in found]
