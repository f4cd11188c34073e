"""The fields of a plain header block, read the way the stdlib's compat32 parser reads them, at a third of its cost.

:func:`agent.rules.envelope.parse_envelope` reads every message taken in and every one that goes; most header
blocks are plain (each line a field or its continuation), and for those the stdlib's general parser (mbox From
lines, defects, bodies) is most of the work. Anything not plain is left to it.
"""

from __future__ import annotations

import re

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
