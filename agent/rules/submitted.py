"""A message handed over by SMTP submission (RFC 6409), made ready for the Outbox: pure, bytes in, bytes out.

The envelope (RCPT TO) is the truth about recipients. A client that keeps a Bcc only in the envelope (most do:
the Bcc header is never sent) has it written back as a ``Bcc`` header, which the intake reads like any Bcc and
which never goes over the wire (:mod:`agent.reconcile.prepared` drops it from the copy that is sent; the copy in
Sent keeps it, as a mail program's own would). A message without a Message-ID gets one made from its bytes and
envelope, so that a client that sends it again (it never heard the 250) hands over the same message, not a new one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

from agent.rules.envelope import Envelope, parse_envelope, split_head, with_field, without_fields


@dataclass(frozen=True)
class Submitted:
    raw: bytes  # what goes into the Outbox
    envelope: Envelope  # read from ``raw``: its recipients are the envelope's
    added_bcc: tuple[str, ...]  # envelope recipients the header did not name: now in Bcc
    not_in_envelope: tuple[str, ...]  # header recipients the client did not ask to send to


def _has_field(raw: bytes, name: str) -> bool:
    head = split_head(raw)[0]
    return re.search(rb"(?im)^" + re.escape(name.encode()) + rb"[ \t]*:", head) is not None


def made_message_id(raw: bytes, recipients: Sequence[str], domain: str, generation: int = 0) -> str:
    """The same bytes to the same people always get the same Message-ID (of the same ``generation``: the same
    bytes handed over again long after are a new message, :mod:`agent.reconcile.doors.submission`). The recipients
    in any order: a program that hands it over again may name them in another (a set, a restart)."""
    salt = f"\0{generation}".encode() if generation else b""
    digest = hashlib.sha256(raw + b"\0" + "\0".join(sorted(recipients)).encode() + salt).hexdigest()[:32]
    return f"<{digest}.submitted.mentor-agent@{domain}>"


SKIPPED = (b"message-id", b"bcc", b"date")  # what the agent may add, or the program's Sent copy may differ in


def head_print(raw: bytes) -> str:
    """The header block as the program wrote it, without Message-ID, Bcc and Date (the agent adds the first and
    the last where missing; the envelope Bcc is written back): what the program's own Sent copy of a message it
    gave no Message-ID still shares with the submitted one."""
    head = split_head(raw)[0].replace(b"\r\n", b"\n")
    kept: list[bytes] = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and kept:
            kept[-1] += b" " + line.strip()
        elif line.strip():
            kept.append(line.strip())
    fields = [f for f in kept if f.split(b":", 1)[0].strip().lower() not in SKIPPED]
    return "head:" + hashlib.sha256(b"\n".join(fields)).hexdigest()[:32]


def as_submitted(raw: bytes, rcpt_tos: Sequence[str], *, domain: str, now: datetime, generation: int = 0) -> Submitted:
    """``raw`` as it goes into the Outbox: with a Message-ID, a Date, and every envelope recipient named."""
    recipients = tuple(dict.fromkeys(r.strip().lower() for r in rcpt_tos if r.strip()))
    found = parse_envelope(raw)
    if found.message_id is None and not _has_field(raw, "Message-ID"):
        raw = with_field(raw, "Message-ID", made_message_id(raw, recipients, domain, generation))
    if not _has_field(raw, "Date"):
        raw = with_field(raw, "Date", format_datetime(now))
    named = set(found.recipients)
    added = tuple(sorted(r for r in recipients if r not in named))  # in one order, however the envelope had them
    if added:
        bcc = ", ".join((*found.bcc, *added))
        raw = with_field(without_fields(raw, "Bcc"), "Bcc", bcc)
    missing = tuple(a for a in found.recipients if a not in recipients)
    return Submitted(raw=raw, envelope=parse_envelope(raw), added_bcc=added, not_in_envelope=missing)
