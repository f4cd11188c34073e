"""Notices owed to the student: each kept in the ledger (meta ``owed notice <Message-ID>``) from before its APPEND
until it is known to be in her mailbox (:meth:`agent.reconcile.context.World.notify`), so that one refused, cut or
stopped before is told by a later pass, once."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, replace

from agent.store.ledger import Ledger

PREFIX = "owed notice "


@dataclass(frozen=True)
class OwedNotice:
    message_id: str  # the notice's own: looked for by it before it is appended again
    title: str
    about: str | None
    raw: bytes
    seq: int  # the order the notices were written in (a clock set back does not reorder them)
    stable: bool = False  # its id is made of what it tells: written again by a caller that tells it again
    absent: bool = False  # certainly not in her mailbox (its APPEND refused, or looked for and not found)
    while_in: tuple[str, str] | None = None  # (folder, ledger key): owed only while that message is still there
    while_uid: int | None = None  # its UID there, once known: that very message (another may share its Message-ID)


def owe(
    ledger: Ledger,
    message_id: str,
    title: str,
    about: str | None,
    raw: bytes,
    *,
    stable: bool = False,
    while_in: tuple[str, str] | None = None,
) -> OwedNotice:
    """Keep the notice as owed (one with the same id replaced) and return it."""
    seq = 1 + max((notice.seq for notice in owed(ledger) if notice.message_id != message_id), default=0)
    notice = OwedNotice(message_id, title, about, raw, seq, stable, False, while_in, None)
    _write(ledger, notice)
    return notice


def owed(ledger: Ledger) -> list[OwedNotice]:
    """The notices still owed, in the order they were written."""
    found = []
    for text in ledger.metas(PREFIX).values():
        data = json.loads(text)
        data["raw"] = base64.b64decode(data["raw"])
        data["while_in"] = tuple(data["while_in"]) if data.get("while_in") else None
        found.append(OwedNotice(**data))
    return sorted(found, key=lambda notice: notice.seq)


def absent(ledger: Ledger, notice: OwedNotice) -> OwedNotice:
    """``notice`` is certainly not in her mailbox: the next try appends it without looking for it first."""
    changed = replace(notice, absent=True)
    _write(ledger, changed)
    return changed


def placed(ledger: Ledger, notice: OwedNotice, uid: int) -> OwedNotice:
    """The message ``notice`` is about is at ``uid`` in its ``while_in`` folder."""
    changed = replace(notice, while_uid=uid)
    _write(ledger, changed)
    return changed


def told(ledger: Ledger, notice: OwedNotice) -> None:
    """``notice`` is in her mailbox (or owed no more)."""
    ledger.drop_meta(PREFIX + notice.message_id)


def _write(ledger: Ledger, notice: OwedNotice) -> None:
    data = asdict(notice) | {"raw": base64.b64encode(notice.raw).decode()}
    ledger.set_meta(PREFIX + notice.message_id, json.dumps(data))
