"""Text out of mail: charsets, header words, format=flowed. HTML is in :mod:`agent.rules.htmltext`, the MIME walk
that uses both in :mod:`agent.rules.mimewalk`."""

from __future__ import annotations

import codecs
import re
from email.header import decode_header
from email.message import Message

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_HEADER_BREAKS = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
_UTF8_MULTIBYTE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
# Mail labelled Latin-1 or ASCII is in practice Windows-1252 (the WHATWG encoding standard does the same).
_AS_CP1252 = frozenset({"iso8859-1", "ascii", "cp1252"})


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


def _quoted(line: str) -> tuple[int, str]:
    """(quote depth, the line without its quote marks and space-stuffing), as RFC 3676 section 4.5 reads it."""
    content = line.lstrip(">")
    depth = len(line) - len(content)
    return depth, content[1:] if content.startswith(" ") else content


def unflow(text: str, *, delsp: bool) -> str:
    """Join the soft line breaks of text/plain; format=flowed (RFC 3676): only lines of the same quote depth
    join, and a joined quoted paragraph keeps one quote prefix ("> ", ">> ") at its start."""
    out: list[str] = []
    pending: tuple[int, str] | None = None
    for line in text.split("\n"):
        depth, content = _quoted(line.removesuffix("\r"))
        # A flowed line ends before a change of depth, and before a signature separator (RFC 3676 4.3).
        if pending is not None and (pending[0] != depth or content == "-- "):
            out.append(_requote(pending[0], pending[1].rstrip(" ")))
            pending = None
        joined = (pending[1] if pending else "") + content
        if content.endswith(" ") and content != "-- ":
            pending = (depth, joined[:-1] if delsp else joined)
            continue
        out.append(_requote(depth, joined))
        pending = None
    if pending is not None:
        out.append(_requote(*pending))
    return "\n".join(out)


def _requote(depth: int, content: str) -> str:
    return ">" * depth + " " + content if depth and content else ">" * depth + content
