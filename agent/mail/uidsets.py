"""IMAP sequence sets and the answers that carry UIDs: ``1:3,7`` both ways, COPYUID maps, Message-IDs read
from a FETCH, flags as text. Pure functions, shared by the command connection and the claim protocol."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from agent.rules.envelope import message_ids


def text_of(flag: bytes | str) -> str:
    return flag.decode("utf-8", "replace") if isinstance(flag, bytes) else str(flag)


def identities_in(data: dict[int, dict[bytes, Any]], asked: set[int]) -> dict[int, str]:
    """{UID: Message-ID} from a FETCH of BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]; messages without one left out."""
    found: dict[int, str] = {}
    for uid, item in data.items():
        if int(uid) not in asked:
            continue
        for name, value in item.items():
            if isinstance(name, bytes) and name.upper().startswith(b"BODY[HEADER.FIELDS") and value:
                text = bytes(value).decode("utf-8", "replace")
                ids = message_ids(re.sub(r"\r?\n[ \t]+", " ", text))
                if ids:
                    found[int(uid)] = ids[0]
    return found


def expand(value: Any) -> set[int]:
    """The UIDs of an IMAP sequence set such as ``3:5,9`` (bytes or str)."""
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
    found: set[int] = set()
    for part in text.strip().split(","):
        low, _, high = part.partition(":")
        if low.isdigit() and (not high or high.isdigit()):
            a, b = int(low), int(high or low)
            found.update(range(min(a, b), max(a, b) + 1))
    return found


def in_order(value: str) -> list[int]:
    """A sequence set's UIDs in the order written (COPYUID pairs source and destination in this order)."""
    found: list[int] = []
    for part in value.split(","):
        low, _, high = part.partition(":")
        if not low.isdigit() or (high and not high.isdigit()):
            return []
        a, b = int(low), int(high or low)
        found.extend(range(a, b + 1) if a <= b else range(a, b - 1, -1))
    return found


def uid_set(uids: Sequence[int]) -> str:
    """``[1, 2, 3, 7]`` as ``1:3,7``: short command lines for large batches."""
    ordered = sorted(set(uids))
    parts: list[str] = []
    first = 0
    while first < len(ordered):
        last = first
        while last + 1 < len(ordered) and ordered[last + 1] == ordered[last] + 1:
            last += 1
        parts.append(str(ordered[first]) if first == last else f"{ordered[first]}:{ordered[last]}")
        first = last + 1
    return ",".join(parts)


def copyuid(values: list[Any] | None) -> dict[int, int]:
    """{source UID: destination UID} from ``COPYUID validity source-set destination-set`` response codes."""
    mapping: dict[int, int] = {}
    for value in values or ():
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
        parts = text.split()
        if len(parts) >= 3:
            sources, targets = in_order(parts[1]), in_order(parts[2])
            if len(sources) == len(targets):
                mapping.update(zip(sources, targets, strict=True))
    return mapping
