"""Sends in doubt, counted in a mentor's history: the safe side of "the agent cannot tell whether she got it".

A message whose SMTP transaction may or may not have ended (the line cut after DATA; the daemon killed between
``sending`` and ``accepted``) is in Needs attention, state ``attention``, with ``sent_at`` = when it was handed to
SMTP (:func:`agent.reconcile.attention.attention`; no other ``attention`` row has a ``sent_at``). Until the student
decides, it counts for the pacing rules as an e-mail the mentor received then: one per release (its rows share
``item``), not a follow-up, answered once a reply of hers names it. Moved back to the Outbox it is a new message
(intake forgets the row) and counts once it goes; its hand-over still counts as a past send
(:func:`agent.store.in_doubt_kept.keep_counting` records it as an item of its own first), so what she was told
about her next ones stays true and the new send is paced after it. A message the ledger has as received already
(its copy found in Sent) is not counted twice.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection
from datetime import UTC, datetime

from agent.rules.addresses import normal_address
from agent.rules.pacing import SentItem


def in_doubt_releases(
    db: sqlite3.Connection, mentor: str, addresses: Collection[str], since: datetime, known: Collection[str]
) -> dict[str, list[tuple[datetime, str, str]]]:
    """The releases to ``mentor`` (by her ``addresses``, else her policy id) in doubt since ``since`` that count
    as received: {release: [(handed over, key, Message-ID) of each of its messages]}. ``known``: the ids of
    what the history has as received already (those are counted there, not again here)."""
    wanted = {normal_address(a) for a in addresses if a.strip()}
    found: dict[str, list[tuple[datetime, str, str]]] = {}
    for key, message_id, item, sent_at, recipients, owner in db.execute(
        "SELECT key, message_id, item, sent_at, recipients, mentor FROM messages "
        "WHERE state = 'attention' AND sent_at IS NOT NULL AND sent_at >= ?",
        (since.astimezone(UTC).isoformat(),),
    ):
        hers = any(normal_address(a) in wanted for a in json.loads(recipients)) if wanted else owner == mentor
        if hers:
            found.setdefault(item or key, []).append((handed_over(sent_at), key, message_id))
    counted = {}
    for item, rows in found.items():
        own = {i for _, key, message_id in rows for i in (key, message_id)}
        # By its messages' own ids, not the release's: the other e-mails of a release split in several may have
        # been accepted (recorded under the release's id) while this one's part is in doubt. A hand-over kept
        # for a member moved back to the Outbox is matched by its release and time (:func:`kept_id`): the same
        # messages taken in again and handed over in doubt again are another hand-over, counted on their own.
        if any(i in known for i in own) or any(kept_id(item, at) in known for at, _, _ in rows):
            continue
        counted[item] = rows
    return counted


def in_doubt_items(
    db: sqlite3.Connection, mentor: str, addresses: Collection[str], since: datetime, known: Collection[str]
) -> list[SentItem]:
    """:func:`in_doubt_releases` as the pacing rules count them: one item per release, at its first hand-over."""
    items = []
    for item, rows in in_doubt_releases(db, mentor, addresses, since, known).items():
        own = {i for _, key, message_id in rows for i in (key, message_id)}
        items.append(SentItem(min(at for at, _, _ in rows), (item, *sorted(own - {item}))))
    return items


def handed_over(sent_at: str | datetime) -> datetime:
    """A ``sent_at`` as written (UTC); one without an offset (a ledger edited by hand) is read as UTC."""
    moment = datetime.fromisoformat(sent_at) if isinstance(sent_at, str) else sent_at
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


IN_DOUBT_ITEM = "in-doubt:"  # the id a hand-over kept for a member moved back is recorded under (kept_id)


def kept_id(release: str, handed_over: datetime) -> str:
    """The item id of the hand-over of ``release`` at ``handed_over`` kept when a member of it was moved back."""
    return f"{IN_DOUBT_ITEM}{release}@{handed_over.astimezone(UTC).isoformat()}"
