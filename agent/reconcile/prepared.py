"""What one message goes out as: the wire copy (no Bcc) and the copy filed in Sent.

Shared by :mod:`agent.reconcile.delivery` (single messages) and :mod:`agent.reconcile.digest_delivery`
(digests and the messages too large for one), so that neither has to import the other.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.rules.envelope import with_field, without_fields
from agent.store.ledger import Row


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


def prepare(raw: bytes, row: Row) -> Prepared:
    """Add the Message-ID chosen at intake if the message had none; drop Bcc from the wire copy; body untouched."""
    original = not row.key.startswith("sha256:")
    if not original:
        raw = with_field(raw, "Message-ID", row.message_id)
    return Prepared(wire=without_fields(raw, "Bcc"), sent_copy=raw, message_id=row.message_id, original=original)
