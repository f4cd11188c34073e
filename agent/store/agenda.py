"""The agenda's one write that must be a single transaction: questions joining an invitation not sent yet.

The round's new description and REQUEST to append (as ``todo``), the offers' new REQUEST Message-IDs, the
old REQUESTs cancelled and the questions attached commit together: a crash leaves either the old invitation
(with the old agenda) or the new one due, never both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from agent.store.ledger import (
    ACCEPTED,
    ATTENTION,
    CANCELLED,
    CLAIMED,
    DONE,
    QUEUED,
    SCHEDULED,
    SENDING,
    Ledger,
    Row,
)
from agent.store.rounds import Stored

REPLACED = "replaced by an invitation with a longer agenda"


def join_invitation(
    ledger: Ledger,
    stored: Stored,
    requests: Mapping[str, str],
    replaced: Iterable[str],
    questions: Iterable[str],
    digest: str,
    *,
    dropped: Iterable[str] = (),
) -> None:
    """Save ``stored`` (its new description and todo); point each offer uid of ``requests`` at its new REQUEST
    Message-ID; cancel the ledger rows ``replaced`` (the old REQUESTs, still in Scheduled); mark ``questions``
    with ``digest``; forget the agenda of ``dropped`` (questions the student took out of Scheduled)."""
    now = datetime.now(UTC).isoformat()
    with ledger.transaction() as db:
        db.execute(
            "UPDATE rounds SET state = ?, open = ?, updated = ? WHERE round_id = ?",
            (stored.to_json(), int(stored.open), now, stored.round_id),
        )
        for uid, message_id in requests.items():
            db.execute("UPDATE meetings SET message_id = ?, updated = ? WHERE uid = ?", (message_id, now, uid))
        for key in replaced:
            ledger.update(key, state=CANCELLED, detail=REPLACED)
        for key in questions:
            ledger.update(key, digest=digest)
        for key in dropped:
            ledger.update(key, digest=None)


def by_message_id(ledger: Ledger, message_id: str) -> Row | None:
    """The newest ledger row of the e-mail with this Message-ID (an invitation the desk appended)."""
    found = ledger.db.execute(
        "SELECT key FROM messages WHERE message_id = ? ORDER BY updated DESC LIMIT 1", (message_id,)
    ).fetchone()
    return ledger.get(found[0]) if found else None


def on_agenda(ledger: Ledger) -> dict[str, list[Row]]:
    """Scheduled messages on an agenda (``digest`` "agenda" or "agenda:…"), by mentor, in arrival order: one
    query a pass, however many other messages wait."""
    found: dict[str, list[Row]] = {}
    for record in ledger.db.execute(
        "SELECT * FROM messages WHERE state = ? AND (digest = 'agenda' OR digest LIKE 'agenda:%') "
        "ORDER BY arrived, key",
        (SCHEDULED,),
    ):
        row = Row.of(record)
        if row.mentor is not None:
            found.setdefault(row.mentor, []).append(row)
    return found


def taken_off(ledger: Ledger) -> dict[str, list[Row]]:
    """Questions on an agenda that left it, not yet accounted for: taken out of Scheduled by the student (cancelled),
    gone by e-mail (she flagged one to go now: its own send, not the invitation's, is its ``item``), or edited so that
    an agenda cannot carry it (``detail`` "agenda off:": it waits in Scheduled to go by e-mail)."""
    found: dict[str, list[Row]] = {}
    gone = (CLAIMED, QUEUED, SENDING, ACCEPTED, DONE, ATTENTION)
    marks = ", ".join("?" for _ in gone)
    for record in ledger.db.execute(
        "SELECT * FROM messages WHERE digest LIKE 'agenda:%' AND (state = ? OR (state IN "
        f"({marks}) AND (item IS NULL OR item = message_id)) OR (state = ? AND detail LIKE 'agenda off:%')) "
        "ORDER BY arrived, key",
        (CANCELLED, *gone, SCHEDULED),
    ):
        row = Row.of(record)
        if row.mentor is not None:
            found.setdefault(row.mentor, []).append(row)
    return found
