"""What the draft doors took, kept in the ledger's log so that a restart or a new IMAP session forgets nothing.

- ``draft taken as`` (message: the draft's signature, detail: "key\\nwhen"): a copy saved again by the compose
  window after it was taken (a new Message-ID, same recipients and subject) is known across sessions.
- ``draft handed over`` (message: the key): a draft taken by the star or the label door goes without its mail
  program's draft-only header fields and with the Date it was handed over (:mod:`agent.reconcile.prepared`).
- ``draft door opened`` (message: the account, detail: the Drafts folder's UIDVALIDITY and the UIDs flagged then):
  the drafts flagged before the star door opened are never taken for that old flag; ``draft flag cleared``
  (message: account and UIDVALIDITY, detail: the UID) once such a flag is seen off, so that setting it again counts.
"""

from __future__ import annotations

from datetime import datetime

from agent.store.ledger import Ledger

TAKEN_AS = "draft taken as"
DOOR_OPENED = "draft door opened"
FLAG_CLEARED = "draft flag cleared"
HANDED_OVER = "draft handed over"


def remember(ledger: Ledger, signature: str, key: str, at: datetime) -> None:
    ledger.log(TAKEN_AS, message=signature, detail=f"{key}\n{at.isoformat()}")


def recall(ledger: Ledger, signature: str, since: datetime) -> str | None:
    """The key of the last draft taken with ``signature`` at or after ``since`` (None: none)."""
    rows = ledger.db.execute(
        "SELECT detail FROM log WHERE event = ? AND message = ? ORDER BY rowid DESC", (TAKEN_AS, signature)
    )
    for (detail,) in rows:
        key, _, when = str(detail).partition("\n")
        try:
            if datetime.fromisoformat(when) >= since:
                return key
        except ValueError:
            continue
    return None


def opened(ledger: Ledger, account: str) -> tuple[int, frozenset[int]] | None:
    """When the star door last opened on ``account``: (UIDVALIDITY, the UIDs flagged then); None: never."""
    row = ledger.db.execute(
        "SELECT detail FROM log WHERE event = ? AND message = ? ORDER BY rowid DESC LIMIT 1", (DOOR_OPENED, account)
    ).fetchone()
    if row is None:
        return None
    validity, _, uids = str(row[0]).partition(":")
    return int(validity), frozenset(int(u) for u in uids.split(",") if u)


def open_door(ledger: Ledger, account: str, validity: int, flagged: set[int]) -> None:
    ledger.log(DOOR_OPENED, message=account, detail=f"{validity}:" + ",".join(str(u) for u in sorted(flagged)))


def cleared(ledger: Ledger, account: str, validity: int) -> set[int]:
    """The UIDs flagged when the door opened whose flag has been seen off since."""
    rows = ledger.db.execute(
        "SELECT detail FROM log WHERE event = ? AND message = ?", (FLAG_CLEARED, f"{account}:{validity}")
    )
    return {int(detail) for (detail,) in rows}


def clear(ledger: Ledger, account: str, validity: int, uid: int) -> None:
    ledger.log(FLAG_CLEARED, message=f"{account}:{validity}", detail=str(uid))
