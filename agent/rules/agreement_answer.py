"""The mentor's answer to a proposal (agent/rules/agreement.py): "fine", or numbered lines with new values.

Pure. Only her own lines are read: quoted lines (``>``) and everything from the quoted message's header on
("On … wrote:", Outlook's "From:" block) are not hers. A line ``3. Mon-Thu 09:00-16:00``, ``3: …`` or the whole
proposed line with a new value changes standard 3; a value equal to the proposed one changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from agent.rules.agreement import Kind, Standard, read_value, say_value, toml_value

_QUOTE_START = re.compile(
    r"^\s*(On\b.*\bwrote:?|-+\s*Original Message\s*-+|From:\s.*|Le\b.*\ba écrit\s*:|Am\b.*\bschrieb.*:)\s*$",
    re.IGNORECASE,
)
_NUMBERED = re.compile(r"^\s*(?:#|no\.?\s*)?(\d{1,2})\s*[.):](?!\d)\s*(.+?)\s*$", re.IGNORECASE)
_YES = re.compile(
    r"\b(fine|agree[ds]?|ok|okay|yes|sounds? good|good|great|perfect|all good|happy with|works for me|"
    r"looks good|lovely|excellent|accepted?|sure|of course|no problem)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Change:
    standard: Standard
    value: Any  # the new value, as the policy holds it

    @property
    def text(self) -> str:
        return say_value(self.standard.kind, self.value)

    @property
    def toml(self) -> Any:
        return toml_value(self.standard.kind, self.value)


@dataclass(frozen=True)
class Answer:
    """What a reply says: ``accepted`` (as proposed), ``changed`` (with ``changes``) or ``unclear``."""

    outcome: Literal["accepted", "changed", "unclear"]
    changes: tuple[Change, ...] = ()
    problems: tuple[str, ...] = ()


def own_words(text: str) -> list[str]:
    """The lines the mentor wrote herself: quoted lines and everything after the quoted message's header go."""
    lines = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if _QUOTE_START.match(line):
            break
        if line.lstrip().startswith(">"):
            continue
        lines.append(line)
    return lines


def same(kind: Kind, first: Any, second: Any) -> bool:
    """Whether two values are the same standard (windows by their days and hours, not their spelling)."""
    if kind == "windows":
        return [(w.days, w.start, w.end) for w in first] == [(w.days, w.start, w.end) for w in second]
    return bool(first == second)


def _value_part(rest: str, standard: Standard) -> str:
    if rest.lower().startswith(standard.label.lower()):
        rest = rest[len(standard.label) :].lstrip(" :–-")
    elif ": " in rest:
        rest = rest.split(": ", 1)[1]
    return rest


def read_answer(text: str, proposed: Sequence[Standard]) -> Answer:
    """Read the mentor's reply against the standards that were ``proposed``."""
    by_number = {s.number: s for s in proposed}
    changes: dict[int, Change] = {}
    problems: list[str] = []
    mine = own_words(text)
    for line in mine:
        match = _NUMBERED.match(line)
        if not match or int(match.group(1)) not in by_number:
            continue
        standard = by_number[int(match.group(1))]
        try:
            value = read_value(standard.kind, _value_part(match.group(2), standard))
        except ValueError as error:
            problems.append(f"{standard.number}. {standard.label}: {error}")
            continue
        if not same(standard.kind, value, standard.value):
            changes[standard.number] = Change(standard, value)
        else:
            changes.pop(standard.number, None)
    if problems:
        return Answer("unclear", tuple(changes.values()), tuple(problems))
    if changes:
        return Answer("changed", tuple(changes[n] for n in sorted(changes)))
    if _YES.search("\n".join(mine)):
        return Answer("accepted")
    return Answer("unclear")


def quotes_proposal(text: str, proposed: Sequence[Standard]) -> bool:
    """Whether ``text`` (a reply, with what it quotes) holds the proposal's numbered lines: most of their labels."""
    flat = re.sub(r"\s+", " ", re.sub(r"(?m)^[ >]+", " ", text)).lower()  # quote marks and re-wrapping gone
    found = sum(1 for s in proposed if s.label.lower() in flat)
    return bool(proposed) and found >= min(len(proposed), 3) and found * 2 >= len(proposed)


def side_by_side(changes: Sequence[Change]) -> list[str]:
    """``   3. When my e-mails arrive, your time:  Mon-Fri 08:00-17:00  →  Mon-Thu 09:00-16:00``"""
    return columns([(c.standard.number, c.standard.label, c.standard.text, c.text) for c in changes])


def columns(rows: Sequence[Sequence[Any]]) -> list[str]:
    """(number, label, proposed, hers) rows as aligned lines: numbers right, the two values in columns."""
    if not rows:
        return []
    digits = max(len(str(number)) for number, *_ in rows)
    width = max(len(f"{label}:") for _, label, _, _ in rows)
    proposed = max(len(old) for _, _, old, _ in rows)
    return [
        f"  {number:>{digits}}. {(label + ':'):<{width}}  {old:<{proposed}}  →  {new}"
        for number, label, old, new in rows
    ]
