"""The addresses a header field names, as the envelope reads them (:func:`agent.rules.envelope.parse_envelope`).

Pure, and a student writes to the same few people: a field's reading is remembered (a backlog's From and To are read
once, not once a message; a long field is read each time and never kept).
"""

from __future__ import annotations

import functools
import re
from email.utils import getaddresses

from agent.rules.addresses import normal_address, plain_addresses

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # no address has a control character (C0, DEL, C1)
_UNREAD = re.compile(r"[\udc80-\udcff]")  # a byte that was not UTF-8, kept as a surrogate escape


def _as_utf8(value: str) -> str:
    """A raw address field (8-bit kept as surrogate escapes) decoded as UTF-8, the only 8-bit RFC 6532 allows, its
    other bytes left as surrogate escapes: never as the Windows-1252 a subject may be read as, which would make
    "ana@x.org" and a 0x80 byte (a NUL as Dovecot stores it) "ana@x.org€", another address than the mentor's."""
    return value if value.isascii() else value.encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")


def field_addresses(values: list[str], problems: list[str], name: str) -> tuple[str, ...]:
    """The addresses of a field's values (its every occurrence), normalised; what is wrong with them is added to
    ``problems`` (such an address is left out)."""
    if not values:
        return ()
    given = tuple(values)
    remembered = sum(len(v) for v in given) <= _REMEMBERED_FIELD
    found, said = _remembered_addresses(given, name) if remembered else _read_addresses(given, name)
    problems += said
    return found


_REMEMBERED_FIELD = 1000  # characters: a longer field is read each time (never kept)


def _read_addresses(values: tuple[str, ...], name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The addresses of a field's values, and what is wrong with them (pure: remembered)."""
    problems: list[str] = []
    found = []
    texts = [_as_utf8(v) for v in values]  # UTF-8 headers (RFC 6532)
    plain = [plain_addresses(v) for v in texts]  # the common forms, read without email.utils
    listed = (
        [a for each in plain for a in each or ()]
        if all(each is not None for each in plain)
        else [address for _display, address in getaddresses(texts)]
    )
    for address in listed:
        if _UNREAD.search(address):  # a display name in Latin-1 is only shown (decoded elsewhere): no matter
            shown = address.encode("utf-8", "surrogateescape").decode("utf-8", "replace")[:80]
            problems.append(
                f"{name} has an address not written in UTF-8 ({shown!r}): it would be read as another address;"
                " write it again"
            )
            continue
        address = normal_address(address)
        if not address:
            continue
        if "@" not in address or any(c in address for c in " <>,;") or _CONTROL.search(address):
            problems.append(f"{name} has an address that is not one: {address[:80]!r}")
            continue
        found.append(address)
    return tuple(found), tuple(problems)


_remembered_addresses = functools.lru_cache(maxsize=1024)(_read_addresses)  # she writes to the same few people
