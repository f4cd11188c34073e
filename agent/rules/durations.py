"""Durations as people write them in policy files: "90m", "4h", "2d", "1h30m", "1w"; and shown as they wrote
them: "36h" is "36 hours", never "2 days" (``Written`` keeps the spelling; ``say_duration`` says it)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_PART = re.compile(r"(\d+)\s*([smhdw])")
_WHOLE = re.compile(r"^\s*(?:\d+\s*[smhdw]\s*)+$")


class Written(timedelta):
    """A duration that keeps how it was written ("36h", "1h30m"): shown and written back in that unit.

    Arithmetic gives plain timedeltas; equality and hashing are the timedelta's."""

    spec: str

    def __new__(cls, value: timedelta, spec: str) -> Written:
        self = super().__new__(cls, days=value.days, seconds=value.seconds, microseconds=value.microseconds)
        self.spec = spec
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (Written, (timedelta(self.days, self.seconds, self.microseconds), self.spec))


def written(value: timedelta, parts: list[tuple[int, str]]) -> Written:
    """``value`` spelt in the units someone wrote it: [(36, "h")] is "36h", [(1, "h"), (30, "m")] "1h30m"."""
    return Written(value, "".join(f"{amount}{unit}" for amount, unit in parts) or "0m")


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
    parts = [(int(amount), unit) for amount, unit in _PART.findall(cleaned)]
    for amount, unit in parts:
        total += timedelta(**{_UNITS[unit]: amount})
    return written(total, parts)


def format_duration(value: timedelta) -> str:
    """The policy-file spelling of a duration: as it was written ("36h"), else the shortest: timedelta(hours=4)
    -> "4h"."""
    if isinstance(value, Written):
        return value.spec
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0m"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


_UNIT_WORDS = (("week", 7 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60))
_SPEC_WORDS = {"w": "week", "d": "day", "h": "hour", "m": "minute", "s": "second"}


def _counted(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def say_duration(value: timedelta) -> str:
    """A duration as a person says it, in the units it was written in ("36h": "36 hours", "2d": "2 days",
    "1h30m": "1 hour 30 minutes"); one not written by anyone as "5 days", "24 hours", "26 weeks"."""
    if isinstance(value, Written) and value > timedelta(0):
        return " ".join(_counted(int(amount), _SPEC_WORDS[unit]) for amount, unit in _PART.findall(value.spec))
    seconds = int(value.total_seconds())
    if seconds <= 0:
        return "none"
    if seconds < 2 * 86400 and seconds % 3600 == 0:  # "24 hours", "36 hours": as notice periods are said
        return _counted(seconds // 3600, "hour")
    parts = []
    for word, size in _UNIT_WORDS:
        if word == "week" and seconds % size:  # "10 days", not "1 week 3 days"
            continue
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(_counted(count, word))
    if seconds:
        parts.append(f"{seconds} seconds")
    return " ".join(parts)
