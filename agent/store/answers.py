"""What the reading of her answers needs from the ledger beyond items and replies: when each item went, what
the student wrote in it, and what bounced or was told once (kept in the log, found by its index)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from agent.rules.addresses import normal_address
from agent.store.ledger import Ledger

BOUNCED = "bounced"  # log.message: the item's Message-ID; detail: the server's words
BOUNCED_TO = "bounced-to"  # log.message: the item's Message-ID; detail: one of her addresses it failed to reach
NOT_AN_ANSWER = "not-an-answer"  # log.message: the Message-ID of her auto-reply or read receipt; detail: the sign
UNKNOWN_ADDRESS = "unknown-address"  # log.message: the address the student was told about


def sent_times(ledger: Ledger) -> dict[str, datetime]:
    """Every Message-ID a mentor received from us (and each member of a digest) -> when it went."""
    found: dict[str, datetime] = {}
    for message_id, at, members in ledger.db.execute("SELECT message_id, at, members FROM items"):
        moment = datetime.fromisoformat(at)
        found[message_id] = moment
        for member in json.loads(members):
            found.setdefault(member, moment)
    return found


def logged(ledger: Ledger, event: str, message: str) -> bool:
    """Whether the log has ``event`` about ``message`` (a bounce recorded, a notice given once)."""
    row = ledger.db.execute("SELECT 1 FROM log WHERE event = ? AND message = ? LIMIT 1", (event, message))
    return row.fetchone() is not None


def last_detail(ledger: Ledger, event: str, message: str) -> str | None:
    """The detail of the last ``event`` logged about ``message`` (None: never logged)."""
    row = ledger.db.execute(
        "SELECT detail FROM log WHERE event = ? AND message = ? ORDER BY rowid DESC LIMIT 1", (event, message)
    ).fetchone()
    return str(row[0]) if row else None


def last_logged_at(ledger: Ledger, event: str, message: str) -> datetime | None:
    """When ``event`` was last logged about ``message`` (None: never)."""
    found = last_logged(ledger, event, message)
    return found[0] if found else None


def last_logged(ledger: Ledger, event: str, message: str) -> tuple[datetime, str] | None:
    """When ``event`` was last logged about ``message``, and its detail (None: never)."""
    row = ledger.db.execute(
        "SELECT at, detail FROM log WHERE event = ? AND message = ? ORDER BY rowid DESC LIMIT 1", (event, message)
    ).fetchone()
    return (datetime.fromisoformat(str(row[0])), str(row[1])) if row else None


def subject_of(ledger: Ledger, message_id: str) -> str:
    """The subject the student gave the message with ``message_id`` (empty when it went without the agent)."""
    row = ledger.db.execute("SELECT subject FROM messages WHERE message_id = ? OR item = ? LIMIT 1", (message_id,) * 2)
    found = row.fetchone()
    return str(found[0]) if found else ""


def recipients_of(ledger: Ledger, item: str) -> set[str]:
    """Every address the student wrote the message(s) of ``item`` to (empty when it went without the agent)."""
    found: set[str] = set()
    for (packed,) in ledger.db.execute("SELECT recipients FROM messages WHERE message_id = ? OR item = ?", (item,) * 2):
        found.update(normal_address(str(address)) for address in json.loads(packed))
    return found


def bounced_to(ledger: Ledger, item: str) -> set[str]:
    """Her addresses a delivery report said ``item`` failed to reach."""
    rows = ledger.db.execute("SELECT detail FROM log WHERE event = ? AND message = ?", (BOUNCED_TO, item))
    return {str(address) for (address,) in rows}


def found_in_sent(ledger: Ledger, message_id: str) -> bool:
    """Whether mail under ``message_id`` was found in Sent, sent without the agent (an item from the Sent folder)."""
    found = ledger.db.execute(
        "SELECT 1 FROM items WHERE message_id = ? AND source = 'sent-folder' LIMIT 1", (message_id,)
    ).fetchone()
    return found is not None


def sent_to(ledger: Ledger, message_id: str) -> set[str]:
    """The addresses (normalized) that mail under ``message_id`` found in Sent was counted for."""
    found = ledger.db.execute(
        "SELECT addresses FROM items WHERE message_id = ? AND source = 'sent-folder'", (message_id,)
    ).fetchall()
    return {address for (packed,) in found if packed for address in str(packed).split()}


def found_in_sent_among(ledger: Ledger, message_ids: Iterable[str]) -> set[str]:
    """Those of ``message_ids`` that :func:`found_in_sent` finds (one query per 500, not one each)."""
    wanted = list(dict.fromkeys(message_ids))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        found.update(
            str(r[0])
            for r in ledger.db.execute(
                f"SELECT DISTINCT message_id FROM items WHERE message_id IN ({marks}) AND source = 'sent-folder'", chunk
            )
        )
    return found


def last_event_at(ledger: Ledger, event: str) -> datetime | None:
    """When ``event`` was last logged (None: never)."""
    found = ledger.db.execute("SELECT at FROM log WHERE event = ? ORDER BY id DESC LIMIT 1", (event,)).fetchone()
    return datetime.fromisoformat(str(found[0])) if found else None
