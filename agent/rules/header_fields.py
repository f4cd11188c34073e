"""The fields of a plain header block, read the way the stdlib's compat32 parser reads them, at a third of its cost.

:func:`agent.rules.envelope.parse_envelope` reads every message taken in and every one that goes; most header
blocks are plain (each line a field or its continuation), and for those the stdlib's general parser (mbox From
lines, defects, bodies) is most of the work. Anything not plain is left to it, and :func:`unread_lines` says what
of such a block it did not read as a field (mail programs and Dovecot read on where it stops).
"""

from __future__ import annotations

import re
from email import errors
from email.message import Message

_FIELD_START = re.compile(r"[\x21-\x39\x3b-\x7e]+:")  # a field's name and its colon (RFC 5322 ftext)


def plain_fields(block: bytes) -> tuple[list[tuple[str, str]], str] | None:
    """(the fields as the stdlib's compat32 parser gives them, the Content-Type it reads) of a plain header block:
    every line a field (a name, a colon) or the continuation of one, lines ended by CRLF or LF, a plain ASCII
    Content-Type. None for anything else (a bare CR, a "From " line, a line that is neither, a first line that
    continues nothing, 8-bit in a name or in the Content-Type...): the stdlib reads that (a third of the cost of
    reading an ordinary block goes to its general parser). Tests hold the two to the same answer."""
    text = block.decode("ascii", "surrogateescape")
    if not text or text.count("\r") != text.count("\r\n"):
        return None
    lines = text.split("\n")
    fields: list[tuple[str, str]] = []
    name = ""
    value: list[str] = []
    for number, line in enumerate(lines):
        end = "\n" if number < len(lines) - 1 else ""
        if line[:1] in (" ", "\t"):
            if not name:
                return None
            value.append(line + end)
            continue
        found = _FIELD_START.match(line)
        if found is None:
            return None
        if name:
            fields.append((name, "".join(value).rstrip("\r\n")))
        name = line[: found.end() - 1]
        value = [line[found.end() :].lstrip(" \t") + end]
    if name:
        fields.append((name, "".join(value).rstrip("\r\n")))
    ctype = next((v for n, v in fields if n.lower() == "content-type"), None)
    if ctype is None:
        return fields, "text/plain"
    if not ctype.isascii():
        return None
    ctype = ctype.partition(";")[0].strip().lower()
    return fields, ctype if ctype.count("/") == 1 else "text/plain"


def unread_lines(message: Message, block: bytes) -> list[str]:
    """The lines of a header block (``message``: the stdlib's parser read it) not read as fields, as problems: mail
    programs and IMAP servers (Dovecot) read on past a line that is not a field, the stdlib stops there (the rest is
    "body"), so a To or Cc after it (a second mentor) would be seen by everyone but the agent. Only a first mbox
    "From " line is no field and no problem."""
    unread: list[tuple[str, str]] = []  # (the line, what it does)
    dropped = (errors.MisplacedEnvelopeHeaderDefect, errors.FirstHeaderLineIsContinuationDefect)
    for defect in message.defects:
        if isinstance(defect, dropped):
            unread.append((repr(_shown(str(defect))), "it would not be read as mail programs read it"))
        elif isinstance(defect, errors.InvalidHeaderDefect):  # compat32 reads no value: a line ":…" alone
            unread.append(("a line beginning with ':'", "it would not be read as mail programs read it"))
    if re.match(r"From[ \t]*:", message.get_unixfrom() or ""):  # "From : x" is a From field (obsolete syntax)
        unread.append((repr(_shown(message.get_unixfrom() or "")), "it would not be read as mail programs read it"))
    rest = message.get_payload()  # its 8-bit bytes are U+FFFD here: the line is shown from the block
    if isinstance(rest, str) and rest.strip():
        first = next(line for line in rest.splitlines() if line.strip())
        written = (line for line in block.splitlines() if line.decode("ascii", "replace") == first)
        shown = next(written, first.encode())
        unread.append((repr(shown.decode("utf-8", "replace")[:80]), "fields after it would not be read"))
    return [
        f"a line of its header block is not a header field ({line}): {does}; fix or remove it" for line, does in unread
    ]


def _shown(line: str) -> str:
    return line.encode("utf-8", "surrogateescape").decode("utf-8", "replace").rstrip("\r\n")[:80]
