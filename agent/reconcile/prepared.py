"""What one message goes out as: the wire copy (no Bcc) and the copy filed in Sent.

Shared by :mod:`agent.reconcile.delivery` (single messages) and :mod:`agent.reconcile.digest_delivery`
(digests and the messages too large for one), so that neither has to import the other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC
from email.utils import format_datetime

from agent.reconcile.context import World
from agent.rules.envelope import has_field, parse_envelope, split_head, with_field, without_fields
from agent.store.ledger import Row
from agent.store.taken_drafts import HANDED_OVER

# What mail programs keep on a draft for themselves (Thunderbird, Apple Mail, Outlook): never for the mentor.
DRAFT_ONLY = (
    "X-Mozilla-Draft-Info",
    "X-Identity-Key",
    "X-Account-Key",
    "Fcc",
    "X-Mozilla-Cloud-Part",
    "X-Uniform-Type-Identifier",
    "X-Universally-Unique-Identifier",
    "X-Apple-Base-Url",
    "X-Apple-Mail-Remote-Attachments",
    "X-Apple-Windows-Friendly",
    "X-Apple-Auto-Saved",
    "X-Unsent",  # Outlook: a message carrying it opens as a draft to edit
)


@dataclass(frozen=True)
class Prepared:
    """What goes over SMTP (no Bcc header) and what is filed in Sent (the original, with its Bcc).

    ``original``: the Sent copy is the student's message exactly as it sits in the Sending folder, so
    filing it is a MOVE rather than a second upload.
    """

    wire: bytes
    sent_copy: bytes
    message_id: str
    original: bool = False


def prepare_in(world: World, raw: bytes, row: Row) -> Prepared:
    """:func:`prepare`, knowing from the ledger whether the message was a draft handed over by a door."""
    return prepare(raw, row, draft=world.ledger.logged(HANDED_OVER, row.key))


def as_handed_over(world: World, raw: bytes, row: Row) -> bytes:
    """The message as the student handed it over: a draft taken by a door without its mail program's draft-only
    fields and with the Date it was handed over (what a digest carries of it, as when it goes alone)."""
    if not world.ledger.logged(HANDED_OVER, row.key):
        return raw
    return _undrafted(raw, row)


def _undrafted(raw: bytes, row: Row) -> bytes:
    return with_field(without_fields(raw, "Date", *DRAFT_ONLY), "Date", format_datetime(row.arrived.astimezone(UTC)))


def prepare(raw: bytes, row: Row, *, draft: bool = False) -> Prepared:
    """What a submission agent does (RFC 6409 section 8): the Message-ID chosen at intake where the message had none
    (or shares its Message-ID with another message), a Date where it has none or an empty one (when it was handed
    over: the same after a restart). Bcc dropped from the wire copy; the body untouched. A ``draft`` taken by a door
    goes without its mail program's draft-only fields and with the Date it was handed over (not when it was begun).
    """
    original = True
    if draft:
        raw = _undrafted(raw, row)
        original = False
    if parse_envelope(raw).message_id != row.message_id:
        raw = with_field(without_fields(raw, "Message-ID"), "Message-ID", row.message_id)
        original = False
    if not has_field(raw, "Date"):
        raw = with_field(without_fields(raw, "Date"), "Date", format_datetime(row.arrived.astimezone(UTC)))
        original = False
    untagged = _untagged(raw) if row.mentor else raw
    if untagged != raw:  # "[agenda]" asked for an agenda; going by e-mail, it is not for the mentor to read
        raw, original = untagged, False
    return Prepared(wire=without_fields(raw, "Bcc"), sent_copy=raw, message_id=row.message_id, original=original)


_SUBJECT = re.compile(rb"(?im)^subject:[^\r\n]*(?:\r?\n[ \t][^\r\n]*)*")
_TAG = re.compile(rb"[ \t]*\[agenda\][ \t]*", re.IGNORECASE)


def _untagged(raw: bytes) -> bytes:
    """``raw`` with ``[agenda]`` taken out of its Subject where it is written as it is (not inside an encoded word)."""
    head = split_head(raw)[0]
    found = _SUBJECT.search(head)
    if found is None or b"=?" in found.group(0) or not _TAG.search(found.group(0)):
        return raw  # none, or written in encoded words (left as she wrote them)
    name, _, value = found.group(0).partition(b":")
    cleaned = _TAG.sub(b" ", value).rstrip(b" \t")
    field = name + b":" + (cleaned if cleaned.strip() else b" (no subject)")
    return raw[: found.start()] + field + raw[found.end() :]
