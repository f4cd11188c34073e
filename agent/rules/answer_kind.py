"""Who wrote a message that refers to one of ours: a person, or a machine answering for her.

Only a person's answer is an answer. An out-of-office reply (RFC 3834), a read receipt (RFC 8098) and a
delivery report (RFC 3464) all carry In-Reply-To, come from or about her address, and say nothing from her:
:func:`classify` tells them apart from the header block alone, naming the sign it went by. A delivery report
is news for the student: :func:`read_delivery_report` finds, in the whole message, which message it is about,
which recipients failed, and the receiving server's own words.

Pure: bytes in, values out; broken input never raises.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from email import policy as email_policy
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser, HeaderParser
from email.utils import getaddresses
from typing import Literal

from agent.rules.addresses import normal_address
from agent.rules.envelope import message_ids, split_head
from agent.rules.mimetext import decode_bytes, header_text, raw_headers, unsurrogate

Kind = Literal["person", "auto-reply", "read-receipt", "delivery-report"]

# Subjects Exchange and Outlook give an out-of-office reply, in the languages met most.
_AUTO_SUBJECT = re.compile(
    r"^\s*(automatic reply|auto(matic)? response|auto-?reply|out of (the )?office( auto-?reply| reply)?|"
    r"automatische antwort|abwesenheitsnotiz|"
    r"réponse automatique|respuesta automática|risposta automatica|resposta automática|automatisch antwoord|"
    r"automatyczna odpowiedź|automatiskt? svar|autosvar|automaattinen vastaus|"
    r"自动回复|自动答复|自動回覆|自動回复|自動応答|自動返信|자동 회신|자동 응답|"
    r"автоматический ответ|automatická odpověď|automatikus válasz|otomatik yanıt|αυτόματη απάντηση|"
    r"תשובה אוטומטית|رد تلقائي|resposta automàtica|răspuns automat|trả lời tự động)\s*[:：]",
    re.IGNORECASE,
)
# Subjects of a read receipt sent as plain mail (Outlook without MDN, Lotus Notes, Thunderbird's "(displayed)").
_RECEIPT_SUBJECT = re.compile(
    r"^\s*(read|not read|read receipt|return receipt|delivered|gelesen|ungelesen|lu|non lu|leído|letto|lida|lido|"
    r"gelezen|läst|przeczytane|przeczytana|прочитано|прочитано|已读|已讀|開封済み|읽음)\s*(:|：|$)|"
    r"^\s*return receipt \([^()]*\)\s*-",
    re.I,
)
# What a mail system puts before a subject from outside: "[EXTERNAL] ", "EXT: ", "*EXTERNAL* " (a university's
# gateway), read past before the subject's own first words.
_TAGS = re.compile(
    r"^\s*((\[[^\[\]]{1,40}\]|\([^()]{1,24}\)|\*{1,3}[^*]{1,24}\*{1,3})\s*[:：-]?\s*|"
    r"(ext|external|extern|externe)\s*[:：-]\s*|caution\s*:\s*external e-?mail\.?\s*)+",
    re.I,
)
_COMMENT = re.compile(r"\([^()]*\)")  # RFC 3834 allows a comment: "Auto-Submitted: no (written by hand)"
# The senders of delivery reports: the mail system's own mailboxes (Exchange on premises: MicrosoftExchange<hex>@).
_DAEMON = re.compile(r"^(mailer-daemon|mailerdaemon|postmaster|mail-daemon|microsoftexchange[0-9a-f]*)@", re.I)
_QUOTED_ID = re.compile(rb"(?im)^[ \t]*message-id:[ \t]*(<[^<>\s]+>)")
# qmail's plain-text bounce: "<address>:" on a line of its own, then the server's words up to a blank line.
_QMAIL_RECIPIENT = re.compile(r"(?ms)^<([^<>\s@]+@[^<>\s]+)>:[ \t]*\r?$(.*?)(?:^[ \t]*\r?$|\Z)")
_COPY_BELOW = re.compile(r"(?m)^-{3,}")  # the copy of the message a report carries below its own words
_MAX_WORDS = 400  # characters of the server's words kept for a notice


@dataclass(frozen=True)
class Verdict:
    """What a message is, and the sign it was known by (empty for a person)."""

    kind: Kind
    sign: str = ""

    @property
    def answer(self) -> bool:
        return self.kind == "person"


@dataclass(frozen=True)
class Recipient:
    """One recipient a delivery report speaks of."""

    address: str
    action: str  # failed, delayed, delivered, relayed, expanded (RFC 3464); "failed" when the report has none
    status: str  # "5.1.1", or "" when not given
    words: str  # the receiving server's own words (Diagnostic-Code), else the report's text
    original: str = ""  # the address as the student wrote it (Original-Recipient), when a forward changed it

    def names(self, addresses: Iterable[str]) -> bool:
        """Whether this recipient is one of ``addresses`` (as delivered, or as she was written to)."""
        wanted = {normal_address(a) for a in addresses}
        return normal_address(self.address) in wanted or (
            bool(self.original) and normal_address(self.original) in wanted
        )


@dataclass(frozen=True)
class DeliveryReport:
    original: str | None  # the Message-ID of the message it reports on
    recipients: tuple[Recipient, ...]
    subject: str = ""  # that message's subject, when the report carries its headers
    sender: str = ""  # the report's From address

    @property
    def by_mail_system(self) -> bool:
        """Whether a mail system wrote it (MAILER-DAEMON, postmaster, …): anyone else's word that a message
        failed is not believed (anyone can write a multipart/report quoting a Message-ID)."""
        return bool(_DAEMON.match(self.sender))

    @property
    def failed(self) -> tuple[Recipient, ...]:
        return tuple(r for r in self.recipients if r.action == "failed")


def _head(raw: bytes) -> Message:
    return BytesHeaderParser(policy=email_policy.compat32).parsebytes(split_head(raw)[0])


def _value(message: Message, name: str) -> str:
    """All ``name`` values as clean text: RFC 2047 words and raw UTF-8 (RFC 6532) alike decoded."""
    return " ".join(header_text(value) for value in raw_headers(message, name)).strip()


def _addresses(message: Message, name: str) -> list[str]:
    """The addresses of a field, split as written (a name decoded first may hold a comma: two addresses)."""
    return [address for _, address in getaddresses([unsurrogate(v) for v in raw_headers(message, name)]) if address]


def classify(raw: bytes) -> Verdict:
    """Person, auto-reply, read receipt or delivery report, from the header block of ``raw``."""
    try:
        head = _head(raw)
    except Exception:  # the stdlib parser is lenient; a header block it cannot read is nobody's answer
        return Verdict("auto-reply", "a header block that cannot be read")
    content_type = head.get_content_type() if head.get("Content-Type") else ""
    report = str(head.get_param("report-type", "", header="Content-Type") or "").strip().lower()
    if content_type == "multipart/report" and report == "delivery-status":
        return Verdict("delivery-report", "Content-Type: multipart/report; report-type=delivery-status")
    if content_type == "multipart/report" and report == "disposition-notification":
        return Verdict("read-receipt", "Content-Type: multipart/report; report-type=disposition-notification")
    senders = _addresses(head, "From")
    if senders and _DAEMON.match(senders[0]):
        return Verdict("delivery-report", f"From: {senders[0]}")
    auto = _COMMENT.sub("", _value(head, "Auto-Submitted")).split(";")[0].strip().strip('"').strip().lower()
    if auto and auto != "no":
        return Verdict("auto-reply", f"Auto-Submitted: {auto}")
    # X-Auto-Response-Suppress is no sign: it is the sender's request not to be auto-answered, which Exchange
    # stamps on ordinary mail and on her own meeting answers alike.
    for name in ("X-Autoreply", "X-Autorespond", "X-Autogenerated", "X-Autoresponse", "X-Auto-Reply"):
        if head.get(name) is not None and _value(head, name).strip('" ').lower() not in ("no", "false", "0"):
            return Verdict("auto-reply", f"{name}: {_value(head, name)}".strip())
    for name in ("Precedence", "X-Precedence"):
        precedence = _value(head, name).lower()
        if precedence in ("auto_reply", "auto-reply", "bulk", "junk"):
            return Verdict("auto-reply", f"{name}: {precedence}")
    source = _value(head, "X-MS-Exchange-Generated-Message-Source")
    if source.lower() == "mailbox rules agent":  # Exchange's reply rule ("have server reply using a message")
        return Verdict("auto-reply", f"X-MS-Exchange-Generated-Message-Source: {source}")
    if head.get("Return-Path") is not None and _value(head, "Return-Path").replace(" ", "") in ("", "<>"):
        return Verdict("auto-reply", "Return-Path: <>")
    subject = _TAGS.sub("", unicodedata.normalize("NFC", _value(head, "Subject")))  # "á" however it is spelled
    if _AUTO_SUBJECT.match(subject):
        return Verdict("auto-reply", f"Subject: {subject[:80]}")
    if _RECEIPT_SUBJECT.match(subject):
        return Verdict("read-receipt", f"Subject: {subject[:80]}")
    return Verdict("person")


def _text_of(part: Message) -> str:
    try:
        data = part.get_payload(decode=True)
    except Exception:
        return ""
    return decode_bytes(data, part.get_content_charset()) if isinstance(data, bytes) else ""


def _fields(part: Message) -> list[Message]:
    """The field blocks of a message/delivery-status part (the stdlib parses them as messages)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    text = payload if isinstance(payload, str) else ""
    return [HeaderParser().parsestr(block) for block in re.split(r"\r?\n\s*\r?\n", text) if block.strip()]


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()[:_MAX_WORDS]


def _typed(value: str) -> str:
    """``rfc822; a@b`` → ``a@b``; ``smtp; 550 …`` → ``550 …``."""
    kind, _, rest = value.partition(";")
    return _one_line(rest if rest and " " not in kind.strip() else value)


def _original(message: Message) -> tuple[str | None, str]:
    """The Message-ID and subject of the message a report is about, from the headers it carries back."""
    noted: tuple[str, ...] = ()  # X-Original-Message-ID (Gmail): when the report carries no headers back
    for part in message.walk():
        kind, inner = part.get_content_type(), None
        if kind == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload and isinstance(payload[0], Message) else None
        elif kind == "text/rfc822-headers":
            inner = HeaderParser().parsestr(_text_of(part))
        elif kind == "message/delivery-status":
            noted = tuple(m for block in _fields(part) for m in message_ids(_value(block, "X-Original-Message-ID")))
        found = message_ids(_value(inner, "Message-ID")) if inner is not None else ()
        if inner is not None and found:
            return found[0], _one_line(_value(inner, "Subject"))
    references = noted or message_ids(_value(message, "In-Reply-To")) or message_ids(_value(message, "References"))
    return (references[-1] if references else None), ""


def _notification(message: Message) -> str:
    """The report's first plain text, for a report without a Diagnostic-Code (or without structure at all)."""
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            text = _COPY_BELOW.split(_text_of(part), maxsplit=1)[0]
            kept = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
            return _one_line(" ".join(kept[-4:]))
    return ""


def _qmail_recipients(message: Message) -> list[Recipient]:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            text = _COPY_BELOW.split(_text_of(part), maxsplit=1)[0]
            return [
                Recipient(found.group(1).lower(), "failed", "", _one_line(found.group(2)))
                for found in _QMAIL_RECIPIENT.finditer(text)
            ]
    return []


def read_delivery_report(raw: bytes) -> DeliveryReport:
    """Which message a delivery report is about, and what became of each recipient, in the server's words."""
    try:
        message = BytesParser(policy=email_policy.compat32).parsebytes(raw)
    except Exception:
        return DeliveryReport(None, ())
    recipients: list[Recipient] = []
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        for block in _fields(part)[1:]:
            given = _typed(_value(block, "Original-Recipient")).lower().strip("<>")
            address = _typed(_value(block, "Final-Recipient")).lower().strip("<>") or given
            if not address:
                continue
            action = _value(block, "Action").lower() or "failed"
            words = _typed(_value(block, "Diagnostic-Code")) or _notification(message)
            forwarded_from = given if given != address else ""
            recipients.append(Recipient(address, action, _value(block, "Status"), words, forwarded_from))
    if not recipients:  # no structure: X-Failed-Recipients (Exim, Gmail) and the text
        failed = [a.lower() for a in _addresses(message, "X-Failed-Recipients")]
        recipients = [Recipient(address, "failed", "", _notification(message)) for address in failed]
    if not recipients:  # qmail: "<address>:" lines in its text
        recipients = _qmail_recipients(message)
    original, subject = _original(message)
    if original is None:  # Exim and older servers quote the message as text below their words
        quoted = _QUOTED_ID.search(split_head(raw)[2])
        original = quoted.group(1).decode("ascii", "replace") if quoted else None
    senders = _addresses(message, "From")
    return DeliveryReport(original, tuple(recipients), subject, senders[0] if senders else "")
