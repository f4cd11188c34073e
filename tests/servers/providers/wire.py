"""Just enough of the IMAP grammar for the provider proxy: whole commands and responses with their literals,
a tokenizer for arguments, and the rewrites of capability lists, flag lists and COPYUID codes."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

LITERAL = re.compile(rb"\{(\d+)(\+?)\}\r\n\Z")
SYSTEM_FLAGS = frozenset({"\\ANSWERED", "\\FLAGGED", "\\DELETED", "\\SEEN", "\\DRAFT", "\\RECENT"})
SPECIAL_USE = frozenset({"\\ALL", "\\ARCHIVE", "\\DRAFTS", "\\FLAGGED", "\\JUNK", "\\SENT", "\\TRASH", "\\IMPORTANT"})


@dataclass
class Message:
    """A command or a response: text segments (each ending with CRLF) with the literals between them.

    ``parts[0]`` is text, then literal, text, literal, ... text. Rewrites touch text segments only.
    """

    parts: list[bytes]

    @property
    def first(self) -> bytes:
        return self.parts[0]

    def text(self) -> str:
        """The text segments joined, each literal shown as ``{n}`` (for analysis, not for forwarding)."""
        out = []
        for index, part in enumerate(self.parts):
            out.append(part.decode("utf-8", "replace") if index % 2 == 0 else "")
        return "".join(out)

    def literals(self) -> list[bytes]:
        return self.parts[1::2]

    def map_text(self, change: Callable[[bytes], bytes]) -> None:
        self.parts = [change(p) if i % 2 == 0 else p for i, p in enumerate(self.parts)]

    def wire(self) -> bytes:
        return b"".join(self.parts)


def literal_size(line: bytes) -> tuple[int, bool] | None:
    """(size, non-synchronizing) when ``line`` ends with a literal announcement."""
    found = LITERAL.search(line)
    return (int(found.group(1)), bool(found.group(2))) if found else None


def tokens(text: str) -> list[object]:
    """Top-level tokens of an IMAP line: atoms and quoted strings (unquoted) as str, lists as nested lists."""
    stack: list[list[object]] = [[]]
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \r\n":
            i += 1
        elif c == "(":
            stack.append([])
            i += 1
        elif c == ")":
            if len(stack) > 1:
                done = stack.pop()
                stack[-1].append(done)
            i += 1
        elif c == '"':
            j, value = i + 1, []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                value.append(text[j])
                j += 1
            stack[-1].append("".join(value))
            i = j + 1
        elif c == "[":  # a response code or a section, kept whole
            j = text.find("]", i)
            j = n if j < 0 else j + 1
            stack[-1].append(text[i:j])
            i = j
        else:
            j = i
            while j < n and text[j] not in ' ()"\r\n':
                if text[j] == "[":
                    close = text.find("]", j)
                    j = n if close < 0 else close
                j += 1
            stack[-1].append(text[i:j])
            i = j
    while len(stack) > 1:
        done = stack.pop()
        stack[-1].append(done)
    return stack[0]


def command_name(first: bytes) -> tuple[str, str]:
    """(tag, upper-case command) of a command's first line; ``UID FETCH`` etc. as two words."""
    words = first.decode("utf-8", "replace").split(None, 3)
    if len(words) < 2:
        return (words[0] if words else ""), ""
    name = words[1].upper()
    if name == "UID" and len(words) >= 3:
        name = "UID " + words[2].upper()
    return words[0], name


def flatten(items: Iterable[object]) -> list[str]:
    out: list[str] = []
    for item in items:
        if isinstance(item, list):
            out.extend(flatten(item))
        else:
            out.append(str(item))
    return out


# -- rewrites of text segments --------------------------------------------------------------------------------

_CAPABILITY_CODE = re.compile(rb"\[CAPABILITY ([^\]]*)\]", re.IGNORECASE)
_CAPABILITY_LINE = re.compile(rb"^(\* CAPABILITY )([^\r\n]*)", re.IGNORECASE)


def rewrite_capabilities(segment: bytes, drop: frozenset[str], add: tuple[str, ...]) -> bytes:
    def change(words: bytes) -> bytes:
        kept = [w for w in words.split() if w.decode().upper() not in drop]
        have = {w.decode().upper() for w in kept}
        kept += [a.encode() for a in add if a.upper() not in have]
        return b" ".join(kept)

    segment = _CAPABILITY_CODE.sub(lambda m: b"[CAPABILITY " + change(m.group(1)) + b"]", segment)
    return _CAPABILITY_LINE.sub(lambda m: m.group(1) + change(m.group(2)), segment)


_LIST_LINE = re.compile(rb"^(\* (?:LIST|LSUB|XLIST) \()([^)]*)(\))", re.IGNORECASE)


def strip_special_use(segment: bytes) -> bytes:
    def change(m: re.Match[bytes]) -> bytes:
        kept = [a for a in m.group(2).split() if a.decode().upper() not in SPECIAL_USE]
        return m.group(1) + b" ".join(kept) + m.group(3)

    return _LIST_LINE.sub(change, segment)


def system_only(flags: bytes) -> tuple[bytes, list[str]]:
    """The system flags of a space-separated flag list, and the names of the others (dropped)."""
    kept: list[bytes] = []
    dropped: list[bytes] = []
    for flag in flags.split():
        (kept if flag.decode().upper() in SYSTEM_FLAGS else dropped).append(flag)
    return b" ".join(kept), [d.decode() for d in dropped]


_PERMANENTFLAGS = re.compile(rb"\[PERMANENTFLAGS \(([^)]*)\)\]", re.IGNORECASE)
_FLAGS_LINE = re.compile(rb"^(\* FLAGS \()([^)]*)(\))", re.IGNORECASE)
_FETCH_FLAGS = re.compile(rb"(FLAGS \()([^)]*)(\))", re.IGNORECASE)
_FETCH_LINE = re.compile(rb"^\* \d+ FETCH ", re.IGNORECASE)


def no_keywords_in_response(segment: bytes, index: int, first: bytes) -> bytes:
    """PERMANENTFLAGS, FLAGS and FETCH FLAGS with system flags only (a server that keeps no keywords)."""
    segment = _PERMANENTFLAGS.sub(lambda m: b"[PERMANENTFLAGS (" + system_only(m.group(1))[0] + b")]", segment)
    segment = _FLAGS_LINE.sub(lambda m: m.group(1) + system_only(m.group(2))[0] + m.group(3), segment)
    if _FETCH_LINE.match(first):
        segment = _FETCH_FLAGS.sub(lambda m: m.group(1) + system_only(m.group(2))[0] + m.group(3), segment)
    return segment


_COPYUID = re.compile(rb"\[COPYUID (\d+) ([0-9:,]+) ([0-9:,]+)\]", re.IGNORECASE)


def expand(uid_set: str) -> list[int]:
    """A UID set's numbers in the order written (``7:9,12`` -> 7, 8, 9, 12; ``9:7`` -> 9, 8, 7)."""
    out: list[int] = []
    for part in uid_set.split(","):
        low, _, high = part.partition(":")
        a, b = int(low), int(high or low)
        out.extend(range(a, b + 1) if a <= b else range(a, b - 1, -1))
    return out


def reorder_copyuid(segment: bytes) -> tuple[bytes, bool]:
    """COPYUID with the destination UIDs reversed when there are several (MailKit #1405)."""
    changed = False

    def change(m: re.Match[bytes]) -> bytes:
        nonlocal changed
        targets = expand(m.group(3).decode())
        if len(targets) < 2:
            return m.group(0)
        changed = True
        listed = ",".join(str(t) for t in reversed(targets)).encode()
        return b"[COPYUID " + m.group(1) + b" " + m.group(2) + b" " + listed + b"]"

    return _COPYUID.sub(change, segment), changed


_STORE_FLAGS = re.compile(rb"([+-]?FLAGS(?:\.SILENT)?\s+)(\(([^)]*)\)|(\S+))", re.IGNORECASE)


def strip_store_keywords(first: bytes) -> tuple[bytes, list[str], bool]:
    """A STORE line with custom keywords removed: (line, dropped, the flag list is now empty)."""
    found = _STORE_FLAGS.search(first)
    if not found:
        return first, [], False
    inner = found.group(3) if found.group(3) is not None else found.group(4)
    kept, dropped = system_only(inner)
    if not dropped:
        return first, [], False
    new = found.group(1) + b"(" + kept + b")"
    return first[: found.start()] + new + first[found.end() :], dropped, not kept


_APPEND_FLAGS = re.compile(rb"^(\S+ APPEND (?:\"(?:[^\"\\]|\\.)*\"|[^\s(]+) )\(([^)]*)\)", re.IGNORECASE)


def append_parts(first: bytes) -> tuple[str, list[str]]:
    """(mailbox, flags) of an APPEND command's first line."""
    words = tokens(first.decode("utf-8", "replace"))
    mailbox = str(words[2]) if len(words) > 2 else ""
    flags = [str(f) for f in words[3]] if len(words) > 3 and isinstance(words[3], list) else []
    return mailbox, flags


def strip_append_keywords(first: bytes) -> tuple[bytes, list[str]]:
    found = _APPEND_FLAGS.search(first)
    if not found:
        return first, []
    kept, dropped = system_only(found.group(2))
    if not dropped:
        return first, []
    return first[: found.start()] + found.group(1) + b"(" + kept + b")" + first[found.end() :], dropped
