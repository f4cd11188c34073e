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
    look_first: bool = False  # owed under this id before (an id made of what it tells): it may be there already
    absent: bool = False  # certainly not in her mailbox (its APPEND refused, or looked for and not found)
    while_in: tuple[str, str] | None = None  # (folder, ledger key): owed only while that message is still there
    while_uid: int | None = None  # its UID there, once known: that very message (another may share its Message-ID)
    while_validity: int | None = None  # that folder's UIDVALIDITY then: renumbered, it is looked for by its key
    told_log: tuple[str, str | None, str, str] | None = None  # (event, mentor, message, detail): logged once told


def owe(
    ledger: Ledger,
    message_id: str,
    title: str,
    about: str | None,
    raw: bytes,
    *,
    while_in: tuple[str, str] | None = None,
    told_log: tuple[str, str | None, str, str] | None = None,
) -> OwedNotice:
    """Keep the notice as owed and return it. One with the same id (made of what it tells, by a caller that may write
    it again after a stop) is replaced, and looked for before its APPEND unless that one was refused. ``told_log``:
    the caller's mark that it is told, logged in the ledger when it is (by whichever pass tells it)."""
    before = get(ledger, message_id)
    look_first = before is not None and not before.absent
    seq = before.seq if before is not None else 1 + max((notice.seq for notice in owed(ledger)), default=0)
    notice = OwedNotice(message_id, title, about, raw, seq, look_first, False, while_in, None, None, told_log)
    _write(ledger, notice)
    return notice


def get(ledger: Ledger, message_id: str) -> OwedNotice | None:
    """The notice owed under ``message_id``, if any."""
    text = ledger.meta_value(PREFIX + message_id)
    return None if text is None else _read(text)


def owed(ledger: Ledger) -> list[OwedNotice]:
    """The notices still owed, in the order they were written."""
    return sorted((_read(text) for text in ledger.metas(PREFIX).values()), key=lambda notice: notice.seq)


def _read(text: str) -> OwedNotice:
    data = json.loads(text)
    data["raw"] = base64.b64decode(data["raw"])
    data["while_in"] = tuple(data["while_in"]) if data.get("while_in") else None
    data["told_log"] = tuple(data["told_log"]) if data.get("told_log") else None
    return OwedNotice(**data)


def absent(ledger: Ledger, notice: OwedNotice) -> OwedNotice:
    """``notice`` is certainly not in her mailbox: the next try appends it without looking for it first."""
    changed = replace(notice, absent=True)
    _write(ledger, changed)
    return changed


def placed(ledger: Ledger, notice: OwedNotice, uid: int, validity: int | None) -> OwedNotice:
    """The message ``notice`` is about is at ``uid`` in its ``while_in`` folder (of UIDVALIDITY ``validity``)."""
    changed = replace(notice, while_uid=uid, while_validity=validity)
    _write(ledger, changed)
    return changed


def told(ledger: Ledger, notice: OwedNotice) -> None:
    """``notice`` is in her mailbox: owed no more, and its ``told_log`` logged (at once)."""
    with ledger.transaction():
        ledger.drop_meta(PREFIX + notice.message_id)
        if notice.told_log is not None:
            event, mentor, message, detail = notice.told_log
            ledger.log(event, mentor=mentor, message=message, detail=detail)


def dropped(ledger: Ledger, notice: OwedNotice) -> None:
    """``notice`` is owed no more, untold: what it would tell is moot."""
    ledger.drop_meta(PREFIX + notice.message_id)


def _write(ledger: Ledger, notice: OwedNotice) -> None:
    data = asdict(notice) | {"raw": base64.b64encode(notice.raw).decode()}
    ledger.set_meta(PREFIX + notice.message_id, json.dumps(data))
