"""Digest composition: several e-mails to one mentor become one readable e-mail (pure: no network, no clock).

Why one module of ~550 lines: composing is one concept — the headers it reads (addresses, threads), the subject,
the two views (plain and HTML) and the split into parts under ``max_bytes`` all serve one message and are tested
as one (tests/test_digest*.py); the text and HTML handling it uses is in :mod:`agent.rules.mimetext`,
:mod:`agent.rules.htmltext` and :mod:`agent.rules.mimewalk`.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
import string
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from email import message_from_bytes, policy
from email.headerregistry import Address, HeaderRegistry
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser
from email.utils import format_datetime, getaddresses, parsedate_to_datetime
from urllib.parse import unquote

from agent.rules.addresses import ascii_domain, normal_address
from agent.rules.htmltext import html_to_text, sanitise_html, text_to_html
from agent.rules.mimetext import clean_text, first_header, header_text, raw_headers, unsurrogate
from agent.rules.mimewalk import Attachment, Extract, walk

# 7-bit transfer encodings everywhere: the digest survives any relay, CRLF line ends for SMTP and IMAP APPEND.
_POLICY = policy.SMTP.clone(cte_type="7bit")
_REGISTRY = HeaderRegistry()
_PLACEHOLDERS = frozenset({"count", "student", "topics", "mentor"})
_REPLY_PREFIX = re.compile(r"^(\s*(re|fwd?|aw|wg|sv|vs|antw|tr|rif)\s*(\[\d+\])?\s*:)+\s*", re.IGNORECASE)
_MSG_ID = re.compile(r"<[!-;=?-~]+>")
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?")
_SIZE_MARGIN = 1024  # headroom for the "(i/n)" titles that are only known after splitting
_TOPIC_CHARS = 40
_TOPICS_CHARS = 70
_RULE = "-" * 72
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class Original:
    """One message the student wrote: the caller's id and the exact bytes fetched over IMAP."""

    key: str
    raw: bytes


@dataclass(frozen=True)
class _Parsed:
    key: str
    subject: str
    written: str
    body: Extract


# ---------------------------------------------------------------- headers: addresses and threads


def _headers(raw_or_headers: bytes) -> Message:
    return BytesHeaderParser(policy=policy.compat32).parsebytes(raw_or_headers)


def _address_pairs(msg: Message, name: str) -> list[tuple[str, str]]:
    """(display name, address) of a field. Split as written, and each name decoded after: an encoded name may hold
    a comma ("=?UTF-8?Q?Rivera=2C_=C3=81na?=", "Rivera, Ána"), which decoded first made "rivera" an address of its
    own, a recipient of the digest."""
    values = [unsurrogate(v) for v in raw_headers(msg, name)]
    pairs: list[tuple[str, str]] = []
    for display, addr in getaddresses([" ".join(clean_text(v).split()) for v in values]):
        addr = addr.strip()
        if addr:
            pairs.append((header_text(display) if "=?" in display else display, addr))
    return pairs


def _address_set(msg: Message, name: str) -> list[str]:
    return sorted({normal_address(addr) for _, addr in _address_pairs(msg, name)})


_KEPT = ("reply-to", "disposition-notification-to")  # what a digest carries over, so only equal ones share one


def compatibility_key(raw_or_headers: bytes) -> str:
    """A stable key; messages with equal keys have the same To, Cc and Bcc address sets (and the same Reply-To
    and Disposition-Notification-To, which the digest keeps) and may share a digest."""
    return _key(raw_or_headers, ("to", "cc", "bcc", *_KEPT))


def _key(raw_or_headers: bytes, names: Sequence[str]) -> str:
    msg = _headers(raw_or_headers)
    found = {name: _address_set(msg, name) for name in names}
    if found.get("reply-to") == _address_set(msg, "from"):  # her own From again: as good as none
        found["reply-to"] = []
    return json.dumps(found, sort_keys=True)


def _message_ids(msg: Message, *names: str) -> list[str]:
    found: list[str] = []
    for name in names:
        for value in raw_headers(msg, name):
            found += _MSG_ID.findall(value)
    return list(dict.fromkeys(found))


def _id_token(message_id: str) -> str:
    return "".join(message_id.split()).strip("<>").lower()


def is_thread_reply(raw_or_headers: bytes, mentor_message_ids: Collection[str]) -> bool:
    """True when In-Reply-To or References names one of the mentor's Message-IDs (case ignored: errs on safe side)."""
    wanted = {_id_token(mid) for mid in mentor_message_ids}
    named = _message_ids(_headers(raw_or_headers), "in-reply-to", "references")
    return any(_id_token(mid) in wanted for mid in named)


def envelope_recipients(originals: Sequence[Original]) -> list[str]:
    """To, Cc and Bcc addresses of the originals, lowercased and deduplicated, in order of appearance."""
    found: dict[str, None] = {}
    for original in originals:
        msg = _headers(original.raw)
        for name in ("to", "cc", "bcc"):
            found.update((normal_address(addr), None) for _, addr in _address_pairs(msg, name))
    return list(found)


def _written(msg: Message) -> str:
    try:
        when = parsedate_to_datetime(first_header(msg, "date"))
    except (TypeError, ValueError, IndexError):
        return ""
    return f"{_DAYS[when.weekday()]} {when.day} {_MONTHS[when.month - 1]} {when.year}, {when:%H:%M}"


def _parse(original: Original) -> _Parsed:
    msg = message_from_bytes(original.raw, policy=policy.compat32)
    return _Parsed(original.key, first_header(msg, "subject") or "(no subject)", _written(msg), walk(msg))


# ---------------------------------------------------------------- subject


def _topic(subject: str) -> str:
    topic = _REPLY_PREFIX.sub("", subject).strip() or subject.strip()
    return topic if len(topic) <= _TOPIC_CHARS else topic[: _TOPIC_CHARS - 1].rstrip() + "…"


def _topics(subjects: Sequence[str]) -> str:
    """Shortened subjects joined with ", "; those that do not fit become "and N more"."""
    topics = list(dict.fromkeys(_topic(s) for s in subjects))
    shown: list[str] = []
    for topic in topics:
        if shown and len(", ".join([*shown, topic])) > _TOPICS_CHARS:
            break
        shown.append(topic)
    rest = len(topics) - len(shown)
    return ", ".join(shown) + (f" and {rest} more" if rest else "")


def _check_template(template: str) -> None:
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ValueError(f"subject_template {template!r}: {exc}") from None
    for name in fields:
        if name not in _PLACEHOLDERS:
            known = ", ".join("{" + p + "}" for p in sorted(_PLACEHOLDERS))
            raise ValueError(f"subject_template {template!r}: unknown placeholder {{{name}}}; use {known}")


def _subject(template: str, values: dict[str, object]) -> str:
    try:
        text = template.format(**values)
    except (ValueError, KeyError, IndexError) as exc:
        raise ValueError(f"subject_template {template!r}: {exc}") from None
    return header_text(text)


# ---------------------------------------------------------------- composing


@dataclass(frozen=True)
class _Identity:
    """Everything about the sender and the mentor that every part of a digest shares."""

    student_name: str
    student_address: str
    mentor_name: str
    template: str
    now: datetime
    domain: str
    to: list[Address]
    cc: list[Address]
    references: list[str]
    reply_to: list[Address]  # the student's own Reply-To (equal in every original), else her From address
    receipt_to: list[Address]  # Disposition-Notification-To (RFC 8098), as she asked


def _address(display: str, addr: str) -> Address | None:
    """A header address; an odd local part is quoted, and what still does not parse is left to the envelope."""
    local, _, domain = addr.rpartition("@")
    if not domain.isascii():  # its A-labels (IDNA2008, the same as every comparison: never another domain)
        written = ascii_domain(domain)
        if written is None:
            return None
        domain, addr = written, f"{local}@{written}"
    if not addr.isascii():  # a non-ASCII local part needs SMTPUTF8; such an address only goes in the envelope
        return None
    quoted = '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"@' + domain
    for spec in (addr, quoted):
        try:
            candidate = Address(display_name=header_text(display), addr_spec=spec)
        except Exception:  # HeaderParseError, ValueError: try the next spelling
            continue
        if not _REGISTRY("To", str(candidate)).defects:  # the stdlib does not always quote what needs it
            return candidate
    return None


def _unique_names(attachments: Iterator[Attachment]) -> list[Attachment]:
    """Give every file a name, and a distinct one: "notes.pdf", "notes (2).pdf"."""
    taken: set[str] = set()
    named: list[Attachment] = []
    for index, att in enumerate(attachments, start=1):
        ext = mimetypes.guess_extension(f"{att.maintype}/{att.subtype}", strict=False) or ".bin"
        base = att.filename[:200] or f"attachment-{index}{ext}"
        stem, dot, suffix = base.rpartition(".") if "." in base.lstrip(".") else (base, "", "")
        name, copy = base, 1
        while name.lower() in taken:
            copy += 1
            name = f"{stem} ({copy}){dot}{suffix}"
        taken.add(name.lower())
        named.append(replace(att, filename=name))
    return named


@dataclass
class _Section:
    subject: str
    written: str
    plain: str
    html: str
    has_html: bool
    inline: list[Attachment]
    attachments: list[Attachment]


def _section(parsed: _Parsed, cid_prefix: str) -> _Section:
    """Render one original; its cid: images referenced from its HTML become inline parts with fresh ids."""
    by_cid = {unquote(a.cid).lower(): a for a in parsed.body.attachments if a.cid}
    used: dict[str, str] = {}

    def resolve(cid: str) -> str | None:
        key = unquote(cid).strip("<>").lower()
        if key not in by_cid:
            return None
        return used.setdefault(key, f"{cid_prefix}.{len(used) + 1}")

    plain = "\n\n".join(b.text if b.kind == "plain" else html_to_text(b.text) for b in parsed.body.plain)
    markup = "\n".join(
        text_to_html(b.text) if b.kind == "plain" else sanitise_html(b.text, resolve) for b in parsed.body.html
    )
    inline = [replace(a, cid=used[k]) for k, a in by_cid.items() if k in used]
    rest = [a for a in parsed.body.attachments if not (a.cid and unquote(a.cid).lower() in used)]
    has_html = any(b.kind == "html" for b in parsed.body.html)
    return _Section(parsed.subject, parsed.written, plain.strip("\n"), markup, has_html, inline, rest)


def _plain_view(intro: str, sections: Sequence[_Section]) -> str:
    lines = [intro, ""] + [f"  {i}. {s.subject}" for i, s in enumerate(sections, start=1)]
    for i, s in enumerate(sections, start=1):
        lines += ["", "", _RULE, f"{i}. {s.subject}"]
        lines += [f"Written {s.written}"] if s.written else []
        lines += [f"Attached: {', '.join(a.filename for a in s.attachments)}"] if s.attachments else []
        lines += [_RULE, "", s.plain or "(no text)"]
    return "\n".join(lines) + "\n"


def _html_view(title: str, intro: str, sections: Sequence[_Section]) -> str:
    from html import escape as esc  # html loads its entity table (0.3 MB): only with a digest to write

    items = "".join(f'<li><a href="#item-{i}">{esc(s.subject)}</a></li>' for i, s in enumerate(sections, start=1))
    body = [f"<p>{esc(intro)}</p>", f"<ol>{items}</ol>"]
    for i, s in enumerate(sections, start=1):
        meta = [f"Written {s.written}"] if s.written else []
        meta += [f"Attached: {', '.join(a.filename for a in s.attachments)}"] if s.attachments else []
        body.append(f'<hr><h2 id="item-{i}">{i}. {esc(s.subject)}</h2>')
        body += [f'<p style="color:#555555">{esc(" · ".join(meta))}</p>'] if meta else []
        body.append(f"<div>{s.html or '<p>(no text)</p>'}</div>")
    head = f'<head><meta charset="utf-8"><title>{esc(title)}</title></head>'
    return f"<!DOCTYPE html>\n<html>{head}<body>\n" + "\n".join(body) + "\n</body></html>\n"


def _first_name(name: str, address: str) -> str:
    words = name.split()
    return words[0] if words else address.partition("@")[0]


def _build(group: Sequence[_Parsed], who: _Identity, part: int, parts: int) -> EmailMessage:
    # Deterministic: composing the same originals again (after a crash) gives the same Message-ID.
    seed = json.dumps([[p.key for p in group], who.now.isoformat(), part, parts])
    token = hashlib.sha256(seed.encode()).hexdigest()[:32]
    sections = [_section(p, f"part{n}.{token}@{who.domain}") for n, p in enumerate(group, start=1)]
    _name_files(sections)
    values: dict[str, object] = {
        "count": len(group),
        "student": _first_name(who.student_name, who.student_address),
        "topics": _topics([p.subject for p in group]),
        "mentor": header_text(who.mentor_name),
    }
    subject = _subject(who.template, values) + (f" ({part}/{parts})" if parts > 1 else "")
    noun = "message" if len(group) == 1 else "messages"
    intro = f"{len(group)} {noun} from {who.student_name or who.student_address}, sent together in one e-mail"
    intro += f" (part {part} of {parts})." if parts > 1 else "."
    msg = _headers_for(who, subject, f"<digest.{token}@{who.domain}>")
    msg.set_content(_plain_view(intro, sections))
    if any(s.has_html for s in sections):
        msg.add_alternative(_html_view(subject, intro, sections), subtype="html")
        html_part = next(part for part in msg.iter_parts() if part.get_content_type() == "text/html")
        assert isinstance(html_part, EmailMessage)
        for att in (a for s in sections for a in s.inline):
            html_part.add_related(att.data, att.maintype, att.subtype, cid=f"<{att.cid}>", filename=att.filename)
    for att in (a for s in sections for a in s.attachments):
        if (att.maintype, att.subtype) == ("message", "rfc822"):  # a forwarded message, carried over whole
            msg.add_attachment(message_from_bytes(att.data, policy=_POLICY), filename=att.filename)
            continue
        if att.maintype == "message":  # another message part (message/global…), carried over as the part it was
            if msg.get_content_type() != "multipart/mixed":
                msg.make_mixed()
            carried = message_from_bytes(att.data, policy=_POLICY)
            del carried["Content-Disposition"]
            carried.add_header("Content-Disposition", "attachment", filename=att.filename)
            msg.attach(carried)
            continue
        params = dict(att.params) | ({"charset": att.charset} if att.charset else {})
        msg.add_attachment(att.data, att.maintype, att.subtype, filename=att.filename, params=params)
    _fix_boundaries(msg, token)
    return msg


def _fix_boundaries(msg: EmailMessage, token: str) -> None:
    """Boundaries of the digest's own multiparts from its token: of one length, so that the size measured when
    the parts were split is the size sent (the generator's random ones differ by a digit or two), and the same
    after a crash. Parts carried over from an original keep theirs (they came with one)."""
    containers = [msg]
    number = 0
    while containers:
        part = containers.pop()
        if not part.is_multipart() or part.get_content_maintype() == "message":
            continue
        if part.get_boundary() is None:
            part.set_boundary(f"=_digest.{token}.{number}")
            number += 1
        containers.extend(child for child in part.iter_parts() if isinstance(child, EmailMessage))


def _name_files(sections: Sequence[_Section]) -> None:
    """Distinct file names across the whole digest (inline images share the namespace)."""
    named = iter(_unique_names(a for s in sections for a in (*s.inline, *s.attachments)))
    for s in sections:
        s.inline = [next(named) for _ in s.inline]
        s.attachments = [next(named) for _ in s.attachments]


def _headers_for(who: _Identity, subject: str, message_id: str) -> EmailMessage:
    msg = EmailMessage(policy=_POLICY)
    sender = Address(display_name=header_text(who.student_name), addr_spec=who.student_address)
    msg["From"] = sender
    msg["Reply-To"] = who.reply_to or sender
    if who.receipt_to:
        msg["Disposition-Notification-To"] = ", ".join(str(a) for a in who.receipt_to)  # not in the registry
    if who.to:
        msg["To"] = who.to
    if who.cc:
        msg["Cc"] = who.cc
    msg["Subject"] = subject
    msg["Date"] = format_datetime(who.now)
    msg["Message-ID"] = message_id
    if who.references:
        msg["References"] = " ".join(who.references)
    msg["MIME-Version"] = "1.0"
    return msg


def _nameable(raw: bytes) -> bool:
    """Whether a digest can write every To, Cc, Reply-To and Disposition-Notification-To address of ``raw``."""
    msg = _headers(raw)
    return all(_address(display, addr) for name in ("to", "cc", *_KEPT) for display, addr in _address_pairs(msg, name))


def _recipients(msg: Message, name: str) -> list[Address]:
    return [a for a in (_address(display, addr) for display, addr in _address_pairs(msg, name)) if a]


def _references(originals: Sequence[Original]) -> list[str]:
    """The threads the originals continue: their In-Reply-To and References, first seen first."""
    refs: list[str] = []
    for original in originals:
        refs += _message_ids(_headers(original.raw), "references", "in-reply-to")
    return list(dict.fromkeys(refs))


def _validate(originals: Sequence[Original], student_address: str, now: datetime, domain: str, kept: bool) -> None:
    if not originals:
        raise ValueError("compose() needs at least one original message")
    keys = {_key(o.raw, ("to", "cc", "bcc", *(_KEPT if kept else ()))) for o in originals}
    if len(keys) > 1:
        raise ValueError(
            "originals have different To/Cc/Bcc recipients (or Reply-To) and cannot share one digest: "
            + ", ".join(o.key for o in originals)
        )
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if not _DOMAIN.fullmatch(domain):
        raise ValueError(f"domain {domain!r} is not a host name for Message-IDs")
    try:
        Address(addr_spec=student_address.strip())
    except Exception as exc:  # HeaderParseError or ValueError, both mean the address is unusable
        raise ValueError(f"student_address {student_address!r} is not an e-mail address: {exc}") from None


def _size(msg: EmailMessage) -> int:
    """The size on the wire: what ``max_bytes`` limits (the digest goes out as ``as_bytes(policy=SMTP)``)."""
    return len(msg.as_bytes(policy=policy.SMTP))


def _groups(parsed: Sequence[_Parsed], who: _Identity, max_bytes: int) -> list[list[_Parsed]]:
    """Split in order, greedily, so that each digest stays under ``max_bytes`` (one original always fits alone)."""
    groups: list[list[_Parsed]] = []
    current: list[_Parsed] = []
    for item in parsed:
        trial = [*current, item]
        if current and _size(_build(trial, who, 1, 2)) + _SIZE_MARGIN > max_bytes:
            groups.append(current)
            trial = [item]
        current = trial
    if current:
        groups.append(current)
    return groups


def _identity(
    originals: Sequence[Original],
    student_name: str,
    student_address: str,
    mentor_name: str,
    template: str,
    now: datetime,
    domain: str,
    lead: Original | None = None,
) -> _Identity:
    """What the parts share; Reply-To and Disposition-Notification-To from ``lead`` (when given, the others
    that differ from it do not join: :func:`compose_parts`), else every original must have the same."""
    _validate(originals, student_address, now, domain, kept=lead is None)
    _check_template(template)
    first = _headers(originals[0].raw)
    kept = _headers((lead or originals[0]).raw)
    return _Identity(
        header_text(student_name),
        student_address.strip(),
        mentor_name,
        template,
        now,
        domain,
        to=_recipients(first, "to"),
        cc=_recipients(first, "cc"),
        references=_references(originals),
        reply_to=_recipients(kept, "reply-to"),
        receipt_to=_recipients(kept, "disposition-notification-to"),
    )


@dataclass(frozen=True)
class Part:
    """One e-mail of a release: a digest of ``keys`` or, when ``message`` is None, the one original in ``keys``
    as the student wrote it — it is larger than ``max_bytes`` on its own, or ``why`` it cannot be merged
    (signed or encrypted, see :mod:`agent.rules.mimewalk`), so it goes alone and unsplit."""

    keys: tuple[str, ...]
    message: EmailMessage | None
    why: str = ""  # "" for an original larger than max_bytes

    @property
    def alone(self) -> bool:
        return self.message is None


def compose_parts(
    originals: Sequence[Original],
    *,
    student_name: str,
    student_address: str,
    mentor_name: str,
    subject_template: str = "{count} updates from {student} — {topics}",
    max_bytes: int = 10_000_000,
    now: datetime,
    domain: str,
) -> list[Part]:
    """The e-mails that carry ``originals``, in order: digests of at most ``max_bytes`` each (titled "(1/2)" etc.
    when there are several), and every original that is larger than ``max_bytes`` by itself as its own part."""
    _validate(originals, student_address, now, domain, kept=False)
    order = {o.key: index for index, o in enumerate(originals)}
    alone = {o.key for o in originals if len(o.raw) > max_bytes}
    parsed = [_parse(o) for o in originals if o.key not in alone]
    whole = {p.key: p.body.whole[0] for p in parsed if p.body.whole}  # what never changes: it goes as written
    for o in originals:  # a digest's headers are ASCII: never a recipient left unnamed, nor a Reply-To replaced
        if o.key not in alone and o.key not in whole and not _nameable(o.raw):
            whole[o.key] = "it names an address beyond ASCII (or an odd one), which a digest's headers cannot carry"
    # A digest keeps Reply-To and Disposition-Notification-To: one that asks otherwise than the first goes alone.
    joining = {p.key for p in parsed if p.key not in whole}
    lead = next((o for o in originals if o.key in joining), originals[0])
    asks = _key(lead.raw, _KEPT)
    for o in originals:
        if o.key in joining and _key(o.raw, _KEPT) != asks:
            whole[o.key] = "it asks for answers (or a read receipt) elsewhere than the messages of the digest"
    parsed = [p for p in parsed if p.key not in whole]
    who = _identity(originals, student_name, student_address, mentor_name, subject_template, now, domain, lead)
    budget = max_bytes  # what the grouping aims at: less than the limit when a built part came out over it
    while True:
        groups = _groups(parsed, who, budget)
        built = [_build(group, who, index, len(groups)) for index, group in enumerate(groups, start=1)]
        sizes = [_size(msg) for msg in built]
        # One original can still come out over the limit once wrapped (quoted text, an HTML view): it goes alone.
        too_big = {
            group[0].key for group, size in zip(groups, sizes, strict=True) if len(group) == 1 and size > max_bytes
        }
        # Several can come out over it once titled and numbered ("(3/12)", other topics): group them tighter.
        over = max((size - max_bytes for group, size in zip(groups, sizes, strict=True) if len(group) > 1), default=0)
        if too_big:
            alone |= too_big
            parsed = [p for p in parsed if p.key not in too_big]
        elif over > 0:
            budget -= over
        else:
            break
    parts = [Part(tuple(p.key for p in group), msg) for group, msg in zip(groups, built, strict=True)]
    parts += [Part((key,), None) for key in alone]
    parts += [Part((key,), None, why) for key, why in whole.items()]
    return sorted(parts, key=lambda part: order[part.keys[0]])


def compose(
    originals: Sequence[Original],
    *,
    student_name: str,
    student_address: str,
    mentor_name: str,
    subject_template: str = "{count} updates from {student} — {topics}",
    max_bytes: int = 10_000_000,
    now: datetime,
    domain: str,
) -> list[EmailMessage]:
    """One digest of ``originals`` in order; several, titled "(1/2)" etc., when one would exceed ``max_bytes``.

    An original larger than ``max_bytes`` by itself comes back wrapped as a digest of one here; the daemon
    uses :func:`compose_parts` and sends such an original as it is.
    """
    who = _identity(originals, student_name, student_address, mentor_name, subject_template, now, domain)
    parsed = [_parse(o) for o in originals]
    groups = _groups(parsed, who, max_bytes)
    return [_build(group, who, index, len(groups)) for index, group in enumerate(groups, start=1)]
