"""Notices owed to the student: each kept in the ledger (meta ``owed notice <Message-ID>``) from before its APPEND
until it is known to be in her mailbox (:meth:`agent.reconcile.context.World.notify`), so that one refused, cut or
stopped before is told by a later pass, once."""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import asdict, dataclass, fields, replace

from agent.store.ledger import Ledger

PREFIX = "owed notice "
log = logging.getLogger("mentor_agent")

# Where a message the notice is about is: (ledger key, the UID it was moved from, its UID there once known, that
# folder's UIDVALIDITY then). By its UID it is that very message (another may share its Message-ID: a draft's saves
# at Gmail); renumbered, or its UID unknown, it is looked for by its key.
Place = tuple[str, int, int | None, int | None]


@dataclass(frozen=True)
class OwedNotice:
    message_id: str  # the notice's own: looked for by it before it is appended again
    title: str
    about: str | None
    raw: bytes
    seq: int  # the order the notices were written in (a clock set back does not reorder them)
    look_first: bool = False  # owed under this id before (an id made of what it tells): it may be there already
    absent: bool = False  # certainly not in her mailbox (its APPEND refused, or looked for and not found)
    while_folder: str | None = None  # owed only while one of the messages it is about is still in this folder
    places: tuple[Place, ...] = ()
    told_log: tuple[str, str | None, str, str] | None = None  # (event, mentor, message, detail): logged once told


def owe(
    ledger: Ledger,
    message_id: str,
    title: str,
    about: str | None,
    raw: bytes,
    *,
    while_in: tuple[str, str, int] | None = None,
    told_log: tuple[str, str | None, str, str] | None = None,
) -> OwedNotice:
    """Keep the notice as owed and return it. One with the same id (made of what it tells, by a caller that may write
    it again after a stop, or of a later message of the same kind) is replaced, keeps the messages it was about, and
    is looked for before its APPEND unless that one was refused. ``while_in``: (folder, ledger key, the UID it is
    moved from) of the message it is about. ``told_log``: the caller's mark that it is told, logged in the ledger
    when it is (by whichever pass tells it)."""
    before = get(ledger, message_id)
    look_first = before is not None and not before.absent
    seq = before.seq if before is not None else 1 + max((notice.seq for notice in owed(ledger)), default=0)
    folder: str | None = None
    places: tuple[Place, ...] = ()
    if while_in is not None:
        folder, key, source = while_in
        places = before.places if before is not None and before.while_folder == folder else ()
        if not any(place[:2] == (key, source) for place in places):  # the same one again (a stop before its move)
            places = (*places, (key, source, None, None))
    notice = OwedNotice(message_id, title, about, raw, seq, look_first, False, folder, places, told_log)
    _write(ledger, notice)
    return notice


def get(ledger: Ledger, message_id: str) -> OwedNotice | None:
    """The notice owed under ``message_id``, if any."""
    text = ledger.meta_value(PREFIX + message_id)
    return None if text is None else _read(text)


def owed(ledger: Ledger) -> list[OwedNotice]:
    """The notices still owed, in the order they were written. One that cannot be read is logged and dropped: a
    record the daemon cannot use must not stop its passes."""
    found = []
    for key, text in ledger.metas(PREFIX).items():
        try:
            found.append(_read(text))
        except (ValueError, TypeError, KeyError) as error:
            log.error("an owed notice in the ledger cannot be read, and is dropped (%s): %.200s", error, text)
            ledger.drop_meta(key)
    return sorted(found, key=lambda notice: notice.seq)


def _read(text: str) -> OwedNotice:
    data = json.loads(text)
    if "while_in" in data:  # as written by an earlier version: one message, (folder, key), its UID and numbering
        folder, key = data.pop("while_in") or (None, "")
        place = (key, -1, data.pop("while_uid", None), data.pop("while_validity", None))
        data |= {"while_folder": folder, "places": [place] if folder else []}
    data = {name: value for name, value in data.items() if name in _FIELDS}
    data["raw"] = base64.b64decode(data["raw"])
    places = [tuple(place) for place in data.get("places", ())]
    data["places"] = tuple((p[0], -1, p[1], p[2]) if len(p) == 3 else p for p in places)  # (no source UID kept)
    if any(len(place) != 4 for place in data["places"]):
        raise ValueError(f"places {data['places']!r}")
    data["told_log"] = tuple(data["told_log"]) if data.get("told_log") else None
    return OwedNotice(**data)


def absent(ledger: Ledger, notice: OwedNotice) -> OwedNotice:
    """``notice`` is certainly not in her mailbox: the next try appends it without looking for it first."""
    changed = replace(notice, absent=True)
    _write(ledger, changed)
    return changed


def placed(
    ledger: Ledger, notice: OwedNotice, key: str, source: int, uid: int | None, validity: int | None
) -> OwedNotice:
    """The message ``key`` moved from ``source`` is at ``uid`` in the notice's folder (of UIDVALIDITY ``validity``),
    or, with ``uid`` None, never got there (gone before its move): not one it is about."""
    places = [place for place in notice.places if uid is not None or place[:2] != (key, source)]
    places = [(key, source, uid, validity) if place[:2] == (key, source) else place for place in places]
    changed = replace(notice, places=tuple(places))
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


_FIELDS = {field.name for field in fields(OwedNotice)}


def _write(ledger: Ledger, notice: OwedNotice) -> None:
    data = asdict(notice) | {"raw": base64.b64encode(notice.raw).decode()}
    ledger.set_meta(PREFIX + notice.message_id, json.dumps(data))
