"""Text out of mail: charsets, header words, format=flowed, HTML to text, a safe HTML subset, the MIME walk."""

from __future__ import annotations

import codecs
import html
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.header import decode_header
from email.message import Message
from html.parser import HTMLParser
from typing import Literal

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_HEADER_BREAKS = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
# Mail labelled Latin-1 or ASCII is in practice Windows-1252 (the WHATWG encoding standard does the same).
_AS_CP1252 = frozenset({"iso8859-1", "ascii", "cp1252"})
_MAX_DEPTH = 40
_TOKEN = re.compile(r"[a-z0-9][a-z0-9.+\-]*")


def _codec_name(label: str | None) -> str | None:
    if not label:
        return None
    try:
        return codecs.lookup(label.strip().strip('"')).name
    except (LookupError, ValueError):
        return None


def _decode_cp1252(data: bytes) -> str:
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:  # five bytes are undefined in cp1252
        return data.decode("latin-1")


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode body or header bytes: the declared charset, then UTF-8, then Windows-1252; never raises."""
    codec = _codec_name(charset)
    if codec in _AS_CP1252 or codec is None:
        try:
            return data.decode("utf-8") if codec is None or data.isascii() else _decode_cp1252(data)
        except UnicodeDecodeError:
            pass
    else:
        try:
            return data.decode(codec)
        except (UnicodeDecodeError, LookupError, ValueError):
            pass
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    if _UTF8_MULTIBYTE.search(data):
        return data.decode("utf-8", errors="replace")
    return _decode_cp1252(data)


def clean_text(text: str) -> str:
    """Remove control characters other than tab and line breaks (they break mail and HTML)."""
    return _CONTROL.sub("", text)


def unsurrogate(value: str) -> str:
    """Turn raw 8-bit header bytes (kept by the parser as surrogate escapes) into text."""
    if not any("\udc80" <= ch <= "\udcff" for ch in value):
        return value
    return decode_bytes(value.encode("utf-8", errors="surrogateescape"), None)


def _decode_words(text: str) -> str:
    """Decode RFC 2047 encoded words, each with its own charset (an unknown one falls back like a body)."""
    try:
        chunks = decode_header(text)
    except Exception:  # broken base64 in a word: keep the raw text, it is still readable
        return text
    if len(chunks) == 1 and isinstance(chunks[0][0], str):
        return text
    return "".join(
        chunk.decode("raw-unicode-escape") if charset is None else decode_bytes(chunk, charset)
        for chunk, charset in chunks
        if isinstance(chunk, bytes)
    )


def header_text(value: str) -> str:
    """One header value as a single clean line: 8-bit bytes and RFC 2047 words decoded, no CR/LF."""
    return " ".join(_HEADER_BREAKS.sub(" ", _decode_words(unsurrogate(value))).split())


def raw_headers(msg: Message, name: str) -> list[str]:
    """All ``name`` values of a compat32 message as raw text (8-bit bytes kept as surrogate escapes)."""
    return [str(value) for key, value in msg.raw_items() if key.lower() == name.lower()]


def first_header(msg: Message, name: str) -> str:
    """The first ``name`` header of a compat32 message as clean text ("" when absent)."""
    values = raw_headers(msg, name)
    return header_text(values[0]) if values else ""


def unflow(text: str, *, delsp: bool) -> str:
    """Join the soft line breaks of text/plain; format=flowed (RFC 3676)."""
    out: list[str] = []
    pending = ""
    for line in text.split("\n"):
        line = line.removesuffix("\r")
        line = line[1:] if line.startswith(" ") else line
        if line.endswith(" ") and line != "-- ":
            pending += line[:-1] if delsp else line
            continue
        out.append(pending + line)
        pending = ""
    if pending:
        out.append(pending)
    return "\n".join(out)


_BLOCKS = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "caption",
        "center",
        "dd",
        "div",
        "dl",
        "dt",
        "figcaption",
        "figure",
        "footer",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "tbody",
        "tfoot",
        "thead",
        "tr",
        "ul",
    }
)
_ITEMS = frozenset({"li", "dd", "dt", "tr"})  # one line each, no blank line between them
_SKIP_CONTENT = frozenset(
    {
        "applet",
        "embed",
        "frame",
        "frameset",
        "head",
        "iframe",
        "math",
        "noembed",
        "noframes",
        "noscript",
        "object",
        "script",
        "select",
        "style",
        "svg",
        "template",
        "title",
    }
)
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")  # not \s: a no-break space is meant to stay
_VOID = frozenset(
    {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    }
)


class _TextRenderer(HTMLParser):
    """HTML to readable plain text: blocks on their own lines, list items with "- ", links with their URL."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip: list[str] = []
        self._pre = 0
        self._links: list[tuple[str, int]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip or tag in _SKIP_CONTENT:
            if tag not in _VOID:
                self._skip.append(tag)
            return
        values = {name: value or "" for name, value in attrs}
        if tag in _BLOCKS or tag == "br":
            self.parts.append("\n")
        if tag == "li":
            self.parts.append("- ")
        elif tag == "pre":
            self._pre += 1
        elif tag == "a" and values.get("href", "").strip():
            self._links.append((values["href"].strip(), len(self.parts)))
        elif tag == "img" and values.get("alt", "").strip():
            self.parts.append(f"[image: {values['alt'].strip()}]")
        elif tag in ("td", "th") and not self._line_start():
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if self._skip:
            if tag == self._skip[-1]:
                self._skip.pop()
            return
        if tag == "pre" and self._pre:
            self._pre -= 1
        if tag == "a" and self._links:
            href, start = self._links.pop()
            label = " ".join("".join(self.parts[start:]).split())
            if href.removeprefix("mailto:") not in label and not href.startswith("#"):
                self.parts.append(f" <{href}>")
        if tag in _BLOCKS and tag not in _ITEMS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._pre:
            self.parts.append(data)
            return
        text = _HTML_SPACE.sub(" ", data)
        self.parts.append(text.lstrip() if self._line_start() else text)

    def _line_start(self) -> bool:
        last = next((part for part in reversed(self.parts) if part), "\n")
        return last.endswith("\n")


def html_to_text(markup: str) -> str:
    """A readable plain-text rendering of an HTML body."""
    renderer = _TextRenderer()
    renderer.feed(clean_text(markup))
    renderer.close()
    lines = [line.rstrip() for line in "".join(renderer.parts).split("\n")]
    text = "\n".join(line if line.strip() else "" for line in lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


_ALLOWED = frozenset(
    {
        "a",
        "abbr",
        "b",
        "blockquote",
        "br",
        "caption",
        "center",
        "cite",
        "code",
        "col",
        "colgroup",
        "dd",
        "del",
        "dfn",
        "div",
        "dl",
        "dt",
        "em",
        "font",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "img",
        "ins",
        "kbd",
        "li",
        "mark",
        "ol",
        "p",
        "pre",
        "q",
        "s",
        "samp",
        "small",
        "span",
        "strike",
        "strong",
        "sub",
        "sup",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "tt",
        "u",
        "ul",
        "var",
    }
)
_GLOBAL_ATTRS = frozenset({"title", "dir", "lang"})
_TAG_ATTRS: Mapping[str, frozenset[str]] = {
    "a": frozenset({"href"}),
    "img": frozenset({"src", "alt", "width", "height"}),
    "font": frozenset({"color", "face", "size"}),
    "ol": frozenset({"start", "type"}),
    "li": frozenset({"value"}),
    "table": frozenset({"border", "cellpadding", "cellspacing", "width", "align"}),
    "td": frozenset({"colspan", "rowspan", "align", "valign", "width"}),
    "th": frozenset({"colspan", "rowspan", "align", "valign", "width", "scope"}),
    "col": frozenset({"span", "width"}),
    "colgroup": frozenset({"span", "width"}),
    "p": frozenset({"align"}),
    "div": frozenset({"align"}),
}
_LINK_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*):")


def safe_href(value: str) -> str | None:
    """The link target if it is http(s), mailto, tel or an in-page anchor; ``None`` otherwise."""
    cleaned = re.sub(r"[\x00-\x20\x7f]", "", value)
    match = _SCHEME.match(cleaned)
    if match:
        return cleaned if match.group(1).lower() in _LINK_SCHEMES else None
    return cleaned if cleaned.startswith("#") and len(cleaned) > 1 else None


class _Sanitiser(HTMLParser):
    """Rebuild HTML from an allow-list; everything else is dropped, tags are always balanced."""

    def __init__(self, resolve_cid: Callable[[str], str | None]) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._open: list[str] = []
        self._skip: list[str] = []
        self._resolve_cid = resolve_cid

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skip or tag in _SKIP_CONTENT:
            if tag not in _VOID:
                self._skip.append(tag)
            return
        if tag not in _ALLOWED:
            return
        kept = self._attributes(tag, attrs)
        if kept is None:
            return
        rendered = "".join(f' {name}="{html.escape(value, quote=True)}"' for name, value in kept)
        self.out.append(f"<{tag}{rendered}>")
        if tag not in _VOID:
            self._open.append(tag)

    def _attributes(self, tag: str, attrs: list[tuple[str, str | None]]) -> list[tuple[str, str]] | None:
        allowed = _GLOBAL_ATTRS | _TAG_ATTRS.get(tag, frozenset())
        kept: list[tuple[str, str]] = []
        for name, raw in attrs:
            value = clean_text(raw or "")
            if name not in allowed:
                continue
            if name == "href":
                href = safe_href(value)
                if href is not None:
                    kept.append((name, href))
            elif name == "src":
                src = self._resolve_cid(value.strip()[4:]) if value.strip().lower().startswith("cid:") else None
                if src is None:
                    return self._drop_image(attrs)
                kept.append((name, "cid:" + src))
            else:
                kept.append((name, value))
        if tag == "img" and not any(name == "src" for name, _ in kept):
            return self._drop_image(attrs)
        return kept

    def _drop_image(self, attrs: list[tuple[str, str | None]]) -> list[tuple[str, str]] | None:
        """Remote or unknown images are not loaded: show their alt text instead."""
        alt = next((value for name, value in attrs if name == "alt" and value and value.strip()), None)
        if alt:
            self.out.append(html.escape(f"[image: {clean_text(alt).strip()}]", quote=False))
        return None

    def handle_endtag(self, tag: str) -> None:
        if self._skip:
            if tag == self._skip[-1]:
                self._skip.pop()
            return
        if tag not in self._open:
            return
        while self._open:
            closing = self._open.pop()
            self.out.append(f"</{closing}>")
            if closing == tag:
                break

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.out.append(html.escape(clean_text(data), quote=False))

    def finish(self) -> str:
        self.close()
        self.out.extend(f"</{tag}>" for tag in reversed(self._open))
        self._open.clear()
        return "".join(self.out)


def sanitise_html(markup: str, resolve_cid: Callable[[str], str | None] = lambda _cid: None) -> str:
    """A safe fragment of ``markup``: no scripts, handlers, forms or remote content; balanced tags.

    ``resolve_cid`` maps an original ``cid:`` reference to the new Content-ID (without brackets), or ``None``.
    """
    sanitiser = _Sanitiser(resolve_cid)
    sanitiser.feed(clean_text(markup))
    return sanitiser.finish()


def text_to_html(text: str) -> str:
    """A plain-text body for the HTML view: escaped, line breaks and spacing kept."""
    escaped = html.escape(clean_text(text), quote=False)
    return f'<pre style="white-space:pre-wrap;font-family:inherit">{escaped}</pre>'


# ---------------------------------------------------------------- walking a MIME tree


@dataclass(frozen=True)
class Attachment:
    """A file carried over byte for byte; ``cid`` is its Content-ID without brackets."""

    filename: str
    maintype: str
    subtype: str
    data: bytes
    cid: str | None = None
    charset: str | None = None


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

    def extend(self, other: Extract) -> None:
        self.plain += other.plain
        self.html += other.html
        self.attachments += other.attachments

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
    return Attachment(name or "", maintype, subtype, data, _content_id(part), charset)


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
    out = Extract(attachments=[a for c in children for a in c.attachments])
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
    out.extend(walk(inner, depth + 1))
    return out


def walk(part: Message, depth: int = 0) -> Extract:
    """Text and files of a parsed (compat32) message, in order; broken parts become notes, never errors."""
    if depth > _MAX_DEPTH:
        out = Extract()
        out.note("[parts nested too deeply could not be read]")
        return out
    if part.get_content_type() == "message/rfc822":
        return _forwarded(part, depth)
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
