"""Walking a MIME tree: what a message holds for the plain view, the HTML view, and the files it carries
(attachments byte for byte); a forwarded message shown inline and carried over whole, nesting bounded; and what
only goes as the student wrote it (signed or encrypted parts)."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from email import policy
from email.generator import BytesGenerator
from email.message import Message
from typing import Literal

from agent.rules.envelope import SEALED_TYPES
from agent.rules.mimetext import clean_text, decode_bytes, first_header, header_text, raw_headers, unflow, unsurrogate

SEALED_WHY = "it is signed or encrypted, and only valid exactly as written"
_MAX_DEPTH = 40
_TOKEN = re.compile(r"[a-z0-9][a-z0-9.+\-]*")
_KEPT_PARAMS = {("text", "calendar"): ("method", "component")}  # what a file means, besides its bytes (RFC 6047)


@dataclass(frozen=True)
class Attachment:
    """A file carried over byte for byte; ``cid`` is its Content-ID without brackets."""

    filename: str
    maintype: str
    subtype: str
    data: bytes
    cid: str | None = None
    charset: str | None = None
    params: tuple[tuple[str, str], ...] = ()  # Content-Type parameters that say what it is (a calendar's method)


@dataclass(frozen=True)
class Block:
    """Body text as found: plain text, or HTML still to be sanitised or rendered."""

    kind: Literal["plain", "html"]
    text: str


@dataclass
class Extract:
    """What a MIME (sub)tree holds: text for the plain view, text for the HTML view, and files."""

    plain: list[Block] = field(default_factory=list)
    html: list[Block] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    whole: list[str] = field(default_factory=list)  # why the message may only go as written (never in a digest)

    def extend(self, other: Extract) -> None:
        self.plain += other.plain
        self.html += other.html
        self.attachments += other.attachments
        self.whole += other.whole

    def note(self, text: str) -> None:
        self.plain.append(Block("plain", text))
        self.html.append(Block("plain", text))


def _payload(part: Message) -> bytes | None:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # the stdlib decoders are lenient, but a broken part must never stop the digest
        return None
    return data if isinstance(data, bytes) else None


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:  # broken RFC 2231 parameters
        return None
    if not name:
        return None
    steps = [step.strip(" .") for step in re.split(r"[/\\]", header_text(name))]
    return next((step for step in reversed(steps) if step), None)  # the base name, as mail clients save it


def _charset(part: Message) -> str | None:
    try:
        value = part.get_content_charset()
    except Exception:  # charset parameter with undecodable RFC 2231 value
        return None
    return value if value and re.fullmatch(r"[A-Za-z0-9._:+\-]{1,40}", value) else None


def _content_id(part: Message) -> str | None:
    values = raw_headers(part, "content-id")
    if not values:
        return None
    return "".join(clean_text(unsurrogate(values[0])).split()).strip("<>") or None


def _attachment(part: Message, data: bytes, name: str | None) -> Attachment:
    maintype, subtype = part.get_content_maintype(), part.get_content_subtype()
    if maintype in ("multipart", "message") or not all(_TOKEN.fullmatch(x) for x in (maintype, subtype)):
        maintype, subtype = "application", "octet-stream"
    charset = _charset(part) if maintype == "text" else None
    kept = ((key, _param(part, key)) for key in _KEPT_PARAMS.get((maintype, subtype), ()))
    params = tuple((key, value.upper()) for key, value in kept if _TOKEN.fullmatch(value))
    return Attachment(name or "", maintype, subtype, data, _content_id(part), charset, params)


def _param(part: Message, name: str) -> str:
    """A Content-Type parameter, lowercased; "" when absent or unreadable."""
    try:
        value = part.get_param(name, "")
    except Exception:  # broken RFC 2231 continuation or charset
        return ""
    return value.lower() if isinstance(value, str) else ""


def _disposition(part: Message) -> str:
    try:
        return part.get_content_disposition() or ""
    except Exception:  # broken Content-Disposition parameters
        return ""


def _text(part: Message, data: bytes) -> str:
    text = decode_bytes(data, _charset(part)).replace("\r\n", "\n")
    if part.get_content_subtype() == "plain" and _param(part, "format") == "flowed":
        text = unflow(text, delsp=_param(part, "delsp") == "yes")
    return clean_text(text)


def _leaf(part: Message) -> Extract:
    out = Extract()
    data = _payload(part)
    if data is None:
        out.note(f"[a part of type {part.get_content_type()} could not be read]")
        return out
    name = _filename(part)
    ctype = part.get_content_type()
    if ctype in ("text/plain", "text/html") and name is None and _disposition(part) != "attachment":
        kind: Literal["plain", "html"] = "plain" if ctype == "text/plain" else "html"
        block = Block(kind, _text(part, data))
        out.plain.append(block)
        out.html.append(block)
    else:
        out.attachments.append(_attachment(part, data, name))
    return out


def _choose_alternative(children: list[Extract]) -> Extract:
    """Plain view from the plainest alternative, HTML view from the richest; files from all of them."""
    readable = [c for c in children if c.plain]
    out = Extract(
        attachments=[a for c in children for a in c.attachments], whole=[w for c in children for w in c.whole]
    )
    if not readable:
        return out
    plain = next((c for c in readable if all(b.kind == "plain" for b in c.plain)), readable[-1])
    rich = next((c for c in reversed(readable) if any(b.kind == "html" for b in c.html)), plain)
    out.plain, out.html = plain.plain, rich.html
    return out


def _forwarded(part: Message, depth: int) -> Extract:
    children = part.get_payload() if part.is_multipart() else None
    inner = children[0] if isinstance(children, list) and children else None
    if not isinstance(inner, Message):
        return _leaf(part)
    out = Extract()
    fields = ((name, first_header(inner, name)) for name in ("From", "Date", "Subject", "To"))
    heading = [f"{name}: {value}" for name, value in fields if value]
    out.note("---------- Forwarded message ----------\n" + "\n".join(heading))
    shown = walk(inner, depth + 1)
    out.plain, out.html, out.whole = out.plain + shown.plain, out.html + shown.html, shown.whole
    # Its files stay inside it: the forwarded message itself is carried over, whole.
    data = _flattened(inner)
    if data is None or not data.isascii():
        out.whole.append("it forwards a message that cannot be carried over in a digest unchanged")
        out.attachments += shown.attachments
        return out
    subject = re.sub(r"[/\\:]+", " ", first_header(inner, "subject"))[:80].strip(" .")
    name = _filename(part) or f"{subject or 'forwarded message'}.eml"
    out.attachments.append(Attachment(name, "message", "rfc822", data))
    return out


def _carried(part: Message) -> Extract:
    """A message part other than message/rfc822 (RFC 6532 message/global, RFC 3464 message/delivery-status…):
    carried over whole as the part it is (its headers and body), shown by its name."""
    out = Extract()
    data = _flattened(part)
    if data is None or not data.isascii():
        out.whole.append("it carries a message part that cannot be carried over in a digest unchanged")
        return out
    subtype = part.get_content_subtype()
    subtype = subtype if _TOKEN.fullmatch(subtype) else "octet-stream"
    out.attachments.append(Attachment(_filename(part) or f"{subtype}.txt", "message", subtype, data))
    return out


def _flattened(inner: Message) -> bytes | None:
    buffer = io.BytesIO()
    try:
        BytesGenerator(buffer, mangle_from_=False, policy=policy.compat32.clone(linesep="\r\n")).flatten(inner)
    except Exception:  # a forwarded message too broken to write out again
        return None
    return buffer.getvalue()


def walk(part: Message, depth: int = 0) -> Extract:
    """Text and files of a parsed (compat32) message, in order; broken parts become notes, never errors."""
    if depth > _MAX_DEPTH:
        out = Extract()
        out.note("[parts nested too deeply could not be read]")
        return out
    if part.get_content_type() == "message/rfc822":
        return _forwarded(part, depth)
    if part.get_content_maintype() == "message" and part.is_multipart():  # message/global, a delivery status…
        return _carried(part)
    if part.get_content_type() in SEALED_TYPES:  # shown below as well as can be, but it never joins a digest
        out = _walk_open(part, depth)
        out.whole.append(SEALED_WHY)
        return out
    return _walk_open(part, depth)


def _walk_open(part: Message, depth: int) -> Extract:
    """:func:`walk` below the checks for forwarded and signed parts."""
    payload = part.get_payload() if part.is_multipart() else None  # without decoding: never raises for a list
    if not isinstance(payload, list):
        if part.get_content_maintype() == "multipart":  # a multipart without a usable boundary
            out = Extract()
            out.note("[a part of this message could not be read; it is attached as it was]")
            out.attachments.append(_attachment(part, _payload(part) or b"", "unreadable-part.txt"))
            return out
        return _leaf(part)
    children = [walk(child, depth + 1) for child in payload if isinstance(child, Message)]
    if part.get_content_subtype() == "alternative":
        return _choose_alternative(children)
    out = Extract()
    for child in children:
        out.extend(child)
    return out
