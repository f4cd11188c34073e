"""What the agent needs to know of a message from its header block, and header surgery on raw bytes.

Only the header block is read to decide; the body is never parsed and is sent byte for byte. Broken headers
never raise: they become ``problems`` that send the message to Needs attention with a notice.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from email import policy as email_policy
from email.parser import BytesHeaderParser
from email.utils import getaddresses, parsedate_to_datetime

from agent.rules.address_fields import field_addresses
from agent.rules.addresses import author, needs_smtputf8
from agent.rules.header_fields import plain_fields, unread_lines
from agent.rules.mimetext import unsurrogate

_ID = re.compile(r"<[^<>\s]+>")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
MEETING_TAG = re.compile(r"\[(meeting|meet)\]", re.IGNORECASE)
MAX_RECIPIENTS = 100
# Signed or encrypted (RFC 1847, RFC 8551): valid only byte for byte, so such a message is never merged into a digest.
SEALED_TYPES = frozenset(
    {"multipart/signed", "multipart/encrypted", "application/pkcs7-mime", "application/x-pkcs7-mime"}
)


@dataclass(frozen=True)
class Envelope:
    key: str  # Message-ID, or "sha256:…" of the header block when there is none
    message_id: str | None
    sender: str  # the one address From names (addresses.author), else "": nobody the agent knows
    to: tuple[str, ...]
    cc: tuple[str, ...]
    bcc: tuple[str, ...]
    subject: str
    date: datetime | None
    references: tuple[str, ...]  # In-Reply-To and References, in order
    problems: tuple[str, ...] = field(default=())
    agent_kind: str = ""  # X-Mentor-Agent: what the agent itself wrote ("invite", "notice", …)
    in_reply_to: tuple[str, ...] = ()  # In-Reply-To alone: the message it answers
    reply_to: tuple[str, ...] = ()  # where she wants answers (a digest keeps it: only equal ones share one)
    receipt_to: tuple[str, ...] = ()  # Disposition-Notification-To (RFC 8098), kept the same way
    sealed: bool = False  # signed or encrypted as a whole (SEALED_TYPES): goes alone, byte for byte
    unsigned: tuple[str, ...] = ()  # what is wrong with its From (also in ``problems``): it never goes so
    authentication: str = ""  # every Authentication-Results value, decoded (UTF-8 kept), joined by " ; "

    @property
    def recipients(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for address in (*self.to, *self.cc, *self.bcc):
            seen.setdefault(address, None)
        return tuple(seen)

    @property
    def wide(self) -> bool:
        """It names, where a digest would show it (To, Cc, Reply-To, Disposition-Notification-To), an address
        beyond ASCII: a digest's headers are ASCII, so it goes alone, as written (SMTPUTF8), never in a digest."""
        return any(needs_smtputf8(a) for a in (*self.to, *self.cc, *self.reply_to, *self.receipt_to))

    @property
    def meeting_request(self) -> bool:
        return bool(MEETING_TAG.search(self.subject))

    @property
    def group_key(self) -> str:
        """Messages may share a digest only when they go to exactly the same people, and ask for answers (and
        read receipts) to go to the same place: a digest cannot carry two Reply-To."""
        key = "|".join(",".join(sorted(set(part))) for part in (self.to, self.cc, self.bcc))
        for name, part in (("reply-to", self.reply_to), ("receipt-to", self.receipt_to)):
            key += f"|{name}=" + ",".join(sorted(set(part))) if part else ""
        return key


_FOLD = re.compile(r"\r?\n(?=[ \t])")
_BREAKS = re.compile(r"[\r\n\t]+")


def _decoded(value: str) -> str:
    """:func:`unsurrogate`, without its look at each character when the value is ASCII (the common case)."""
    return value if value.isascii() else unsurrogate(value)


def message_ids(value: str | None) -> tuple[str, ...]:
    return tuple(_ID.findall(value or ""))


def parse_envelope(head: bytes) -> Envelope:
    """Read the facts the agent decides by from a header block (or a whole message).

    The header blocks read last are remembered (an Envelope never changes): a message about to go is read by the
    identity check, the From check and the preparation of its copy one after the other, and a backlog's messages
    are read again when they go, after their intake; parsing them is most of the CPU a send costs. Remembered:
    the last ``REMEMBERED`` blocks of at most ``REMEMBERED_SIZE`` bytes (a larger one is read each time)."""
    block = split_head(head)[0]
    return _remembered(block) if len(block) <= REMEMBERED_SIZE else _parse_block(block)


REMEMBERED = 6000  # header blocks kept with their Envelope: a backlog of 5,000 is read at intake, not again to go
REMEMBERED_SIZE = 4096  # a larger block is read each time (at most about 30 MB kept, ordinary blocks a third)


@functools.lru_cache(maxsize=REMEMBERED)  # thread-safe: the IMAP worker thread reads envelopes too
def _remembered(block: bytes) -> Envelope:
    return _parse_block(block)


def forget_read() -> None:
    """Let go of the remembered header blocks: the daemon calls it after each pass, so that an idle daemon does
    not keep a backlog's thousands of envelopes (they were wanted from its intake to its sending, one pass)."""
    _remembered.cache_clear()


def _parse_block(block: bytes) -> Envelope:
    problems: list[str] = []
    plain = plain_fields(block)
    content_type = plain[1] if plain is not None else None
    raw_items: list[tuple[str, str]] = plain[0] if plain is not None else []
    if plain is None:
        try:
            message = BytesHeaderParser(policy=email_policy.compat32).parsebytes(block)
            raw_items = [(name, str(value)) for name, value in message.raw_items()]
            content_type = message.get_content_type()
            problems += unread_lines(message, block)
        except Exception as error:  # the stdlib parser is lenient; anything else is a broken message
            problems.append(f"the header block cannot be read ({type(error).__name__})")

    # Every field's raw values (8-bit kept: unsurrogate() decodes), by lowercased name: one walk of the block.
    by_name: dict[str, list[str]] = {}
    for field_name, value in raw_items:
        by_name.setdefault(field_name.lower(), []).append(value)

    def listed(name: str) -> list[str]:
        return by_name.get(name.lower(), [])

    def text(name: str) -> str:
        # 8-bit values (RFC 6532) decoded as UTF-8: compat32's own str() would make each such byte U+FFFD
        found = listed(name)
        if not found:
            return ""  # most fields asked for are not there (In-Reply-To, References, X-Mentor-Agent)
        values = [_decoded(v) for v in found]
        if all(v.isascii() and "=?" not in v for v in values):
            return " ".join(_FOLD.sub("", v) for v in values)  # nothing to decode: the parser's answer, faster
        try:
            return " ".join(str(email_policy.default.header_factory(name, _FOLD.sub("", v))) for v in values)
        except Exception:
            problems.append(f"{name} cannot be decoded")
            return " ".join(str(v) for v in values)

    unsigned: list[str] = []  # RFC 5322 section 3.6: one From; a Sender when it names more than one author
    senders = field_addresses(listed("From"), unsigned, "From")
    if not senders and not unsigned:
        unsigned.append("it has no From (whom it is from); add your address as From")
    elif len(listed("From")) > 1:
        unsigned.append("it has more than one From field; keep one, with your address")
    elif len(senders) > 1 and not listed("Sender"):
        unsigned.append("its From names more than one address and it has no Sender; keep your address alone in From")
    problems += unsigned
    to = field_addresses(listed("To"), problems, "To")
    cc = field_addresses(listed("Cc"), problems, "Cc")
    bcc = field_addresses(listed("Bcc"), problems, "Bcc")
    ignored: list[str] = []  # a broken Reply-To is the mail program's business, not a reason to refuse
    reply_to = field_addresses(listed("Reply-To"), ignored, "Reply-To")
    reply_to = () if set(reply_to) == set(senders) else reply_to  # her own From again: as good as none
    receipt_to = field_addresses(listed("Disposition-Notification-To"), ignored, "Disposition-Notification-To")
    sealed = content_type in SEALED_TYPES
    if not (to or cc or bcc):
        problems.append("it has no recipients (To, Cc or Bcc)")
    if len({*to, *cc, *bcc}) > MAX_RECIPIENTS:
        problems.append(f"it has more than {MAX_RECIPIENTS} recipients; send it from your mail program")
    subject = _BREAKS.sub(" ", text("Subject")).strip()
    ids = message_ids(text("Message-ID"))
    date = None
    raw_date = text("Date")
    if raw_date:
        try:
            date = parsedate_to_datetime(raw_date)
            if date.tzinfo is None:
                date = None
        except (TypeError, ValueError, IndexError):
            date = None
            problems.append(f"its Date cannot be read ({raw_date[:60]!r}); remove it or fix it")
    in_reply_to = message_ids(text("In-Reply-To"))
    references = (*in_reply_to, *message_ids(text("References")))
    key = ids[0] if ids else "sha256:" + hashlib.sha256(block).hexdigest()
    return Envelope(
        key=key,
        message_id=ids[0] if ids else None,
        sender=author(_decoded(listed("From")[0])) if len(listed("From")) == 1 else "",
        to=to,
        cc=cc,
        bcc=bcc,
        subject=subject,
        date=date,
        references=tuple(dict.fromkeys(references)),
        problems=tuple(problems),
        agent_kind=text("X-Mentor-Agent").strip().lower(),
        in_reply_to=in_reply_to,
        reply_to=reply_to,
        receipt_to=receipt_to,
        sealed=sealed,
        unsigned=tuple(unsigned),
        authentication=" ; ".join(" ".join(_decoded(v).split()) for v in listed("Authentication-Results")),
    )


# -- identity: Message-ID and content ------------------------------------------------------------------------
# A message is its Message-ID *and* its content: a copy (the same bytes again) is the same message, but another
# message that reuses a Message-ID is another message. The ledger keys the first one by its Message-ID; a later,
# different one gets "<id>#<fingerprint>" and goes out with a Message-ID of its own.


_WRITTEN = (b"from", b"sender", b"to", b"cc", b"bcc", b"subject")  # what the sender writes (the Date the agent may add)


def same_subject_line(one: str | None, other: str | None) -> bool:
    """Whether two subjects are the same line (spacing and case aside; none and "(no subject)" alike): a copy
    under another subject is another message, whatever Message-ID it shares."""

    def line(text: str | None) -> str:
        words = " ".join((text or "").split()).casefold()
        return "" if words == "(no subject)" else words  # what the intake records for none

    return line(one) == line(other)


def fingerprint(raw: bytes) -> str:
    """What a message's content is known by: a hash of the header fields its sender wrote (From, To, Cc, Bcc,
    Subject), in order, and of its text (the body; line endings and trailing blanks aside). Not the Date (a
    submission agent adds it where it is missing), the Message-ID (the key) nor what mail programs and servers add
    on the way (Received, X-Mozilla-Status, …): a copy of the message with any of those added or changed is still the
    same message. ``raw`` is the whole message: its header block alone gives another fingerprint."""
    head, _, body = split_head(raw)
    fields = (f.partition(b":") for f in _fields(head))
    written = [  # only the fields it is known by are normalised (a message has many others)
        lowered + b":" + b" ".join(value.split())
        for name, _, value in fields
        if (lowered := name.strip().lower()) in _WRITTEN
    ]
    text = b"\n".join([line.rstrip() for line in body.splitlines()]).rstrip()
    written.append(b"body:" + hashlib.sha256(text).hexdigest().encode())
    return hashlib.sha256(b"\n".join(written)).hexdigest()[:16]


def same_written(held: bytes, copy: bytes, *, bcc_optional: bool = False) -> bool:
    """Whether ``copy`` is the message ``held`` as its sender wrote it, whatever the order of its header fields:
    a mail program's own Sent copy keeps the Bcc it sent without (right after To, as neomutt and Thunderbird file
    it), while the agent's copy has the envelope's recipients written back as a Bcc at the top. The same Bcc
    addresses; ``bcc_optional`` (a program's Sent copy and the agent's): when one of the two has no Bcc, the
    other's does not matter. The body as in :func:`fingerprint`."""
    if fingerprint(held) == fingerprint(copy):
        return True
    first, second = _written(held), _written(copy)
    if first[0] != second[0] or first[2] != second[2]:
        return False
    return first[1] == second[1] or (bcc_optional and not (first[1] and second[1]))


def _written(raw: bytes) -> tuple[list[bytes], set[str], str]:
    """(the sender's header fields but Bcc, sorted; the Bcc addresses; the text's hash)."""
    head, _, body = split_head(raw)
    parts = (f.partition(b":") for f in _fields(head))
    fields = [(name.strip().lower(), b" ".join(value.split())) for name, _, value in parts]
    kept = sorted(name + b":" + value for name, value in fields if name in _WRITTEN and name != b"bcc")
    bcc = {
        address.lower()
        for name, value in fields
        if name == b"bcc"
        for _, address in getaddresses([value.decode("utf-8", "replace")])
        if address
    }
    text = b"\n".join(line.rstrip() for line in body.splitlines()).rstrip()
    return kept, bcc, hashlib.sha256(text).hexdigest()


def variant_key(message_id: str, print_: str) -> str:
    return f"{message_id}#{print_}"


def split_key(key: str) -> tuple[str, str | None]:
    """(the Message-ID or hash a ledger key is found by, the fingerprint a variant key also asks for)."""
    base, mark, print_ = key.rpartition("#")
    if mark and base.endswith(">") and base.startswith("<") and re.fullmatch(r"[0-9a-f]{16}", print_):
        return base, print_
    return key, None


def is_keyed(raw: bytes, key: str) -> bool:
    """Whether this message (whole: a variant key asks for its text too) is the one the ledger knows by ``key``."""
    base, content = split_key(key)
    return parse_envelope(raw).key == base and (content is None or fingerprint(raw) == content)


def has_field(raw: bytes, name: str) -> bool:
    """Whether ``raw`` has the field ``name`` with something in it (an empty field is as good as none)."""
    head = split_head(raw)[0]
    wanted = name.lower().encode()
    return any(n.strip().lower() == wanted and v.strip() for n, _, v in (f.partition(b":") for f in _fields(head)))


# -- raw header surgery (the body is never touched) ------------------------------------------------------------


def split_head(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """(header block, the blank line that ends it, body): where ``_HEAD_END`` first matches (each line end looked
    at in turn: a tenth of the pattern's time)."""
    at = raw.find(b"\n")
    while at != -1:
        following = raw[at + 1 : at + 3]
        if following[:1] == b"\n":
            end = at + 2
        elif following == b"\r\n":
            end = at + 3
        else:
            at = raw.find(b"\n", at + 1)
            continue
        start = at - 1 if at and raw[at - 1] == 13 else at  # the CR before it, if any (13: "\r")
        return raw[:start], raw[start:end], raw[end:]
    return raw, b"", b""


def _fields(head: bytes) -> list[bytes]:
    """The header block as whole fields (a field with its continuation lines)."""
    result: list[bytes] = []
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and result:
            result[-1] += line
        else:
            result.append(line)
    return result


def without_fields(raw: bytes, *names: str) -> bytes:
    """``raw`` without the named header fields (e.g. Bcc), everything else byte for byte."""
    head, blank, body = split_head(raw)
    lowered = {name.lower().encode() for name in names}
    kept = [f for f in _fields(head) if f.split(b":", 1)[0].strip().lower() not in lowered]
    joined = b"".join(kept)
    if blank and joined and not joined.endswith(b"\n"):
        joined += b"\r\n"
    return joined.rstrip(b"\r\n") + blank + body if blank else joined


def with_field(raw: bytes, name: str, value: str) -> bytes:
    """``raw`` with one header field added at the top."""
    if "\r" in value or "\n" in value:
        raise ValueError("header values cannot contain line breaks")
    newline = b"\r\n" if b"\r\n" in raw[:2000] or not raw else b"\n"
    return f"{name}: {value}".encode() + newline + raw


def new_message_id(domain: str) -> str:
    return f"<{os.urandom(12).hex()}.mentor-agent@{domain}>"


def domain_of(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"
