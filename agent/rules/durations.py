"""Durations as people write them in policy files: "90m", "4h", "2d", "1h30m", "1w"."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_PART = re.compile(r"(\d+)\s*([smhdw])")
_WHOLE = re.compile(r"^\s*(?:\d+\s*[smhdw]\s*)+$")


def parse_duration(text: str) -> timedelta:
    """Parse "90m", "4h", "2d", "1h30m" or "0" into a timedelta; raise ValueError with a hint otherwise."""
    cleaned = text.strip().lower()
    if cleaned == "0":
        return timedelta(0)
    if not _WHOLE.match(cleaned):
        raise ValueError(
            f'{text!r} is not a duration; write a number and a unit, e.g. "90m", "4h", "2d" (units: s, m, h, d, w)'
        )
    total = timedelta(0)
    for amount, unit in _PART.findall(cleaned):
        total += timedelta(**{_UNITS[unit]: int(amount)})
    return total


def format_duration(value: timedelta) -> str:
    """The shortest policy-file spelling of a duration: timedelta(hours=4) -> "4h"."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0m"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
