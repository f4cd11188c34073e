"""The mentor's answer to a proposal (agent/rules/agreement.py): "fine", numbered values, or "please read".

Pure. Errors must be safe: a wrong "agreed" is worse than an honest "please read" (DESIGN.md).

- Only her own lines are read (agent/rules/own_lines.py): quotes, quote headers, signatures go.
- Every numbered value she wrote is read, wherever it stands: a line ``3. Mon-Thu 09:00-16:00``, ``3: …``,
  the whole proposed line with a new value, or within a sentence ("Fine, but 7. 45 minutes", "#7: 45 min",
  "item 7 → 45 minutes"); an own line under a quoted numbered line answers that line. A value that cannot
  be read, a number to no standard, or any other number in her words makes the answer "unclear": never
  "as proposed".
- "As proposed" only when her words say yes without negation, condition, question or reservation, and say
  nothing else (agent/rules/consent.py); changes only when the words around them neither refuse, ask nor
  make a condition.
- ``Answer.words`` are her own lines, for the notice to quote: the student can catch a wrong reading.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from agent.rules.agreement import Kind, Standard, read_value, say_value, toml_value
from agent.rules.consent import read_prose, signed_with
from agent.rules.own_lines import OwnLine, own_lines, quoted_lines

# A reference to a numbered standard: "7.", "7:", "7)", "#7", "no. 7", "item 7 →", "7 -> …"; never a clock
# time (09:00) or a decimal (3.5).
_TAG = r"(?:#|no\.?|nr\.?|number|item|point|line|standard|para(?:graph)?)"
_ARROW = r"(?:->|→|=>|=)"
_REFERENCE = re.compile(
    rf"(?<![\w.:/,-])(?:{_TAG}\s*(?P<tagged>\d{{1,2}})\b\s*(?:[.):]|{_ARROW}|[-–]|\bto\b|\bshould be\b|\bbecomes\b)?"
    rf"|(?P<plain>\d{{1,2}})\s*(?:[.)](?=\s)|:(?=\s|$)|{_ARROW}))\s*",
    re.IGNORECASE,
)
_LINE_START = re.compile(rf"^\s*(?:{_TAG}\s*)?(?P<number>\d{{1,2}})\s*(?:[.):]|{_ARROW}|[-–])(?!\d)\s*", re.IGNORECASE)
_TRAILING = re.compile(r"[\s,;]*(?:\b(?:and|also|please|pls|plus|then|thanks|thank you)\b[\s,;]*)*$", re.IGNORECASE)
_NUMBERED = re.compile(r"(\d{1,2})\s*[.):]\s")
_SENTENCE = re.compile(r"(?<=[.!])\s+(?=\S)")
_NEGATED_VALUE = re.compile(r"\b(not|no more than|instead of|rather than|isn't|n't)\b", re.IGNORECASE)
_WINDOWISH = re.compile(r"\b(mon|tue|wed|thu|fri|sat|sun)[a-z]*\b|\b(never|none|by arrangement)\b", re.IGNORECASE)
WORDS_LIMIT = (24, 1800)  # lines, characters of her own words quoted in the notice


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
    """What a reply says: ``accepted`` (as proposed), ``changed`` (with ``changes``) or ``unclear`` (please
    read: ``problems`` say why); ``words`` are her own lines."""

    outcome: Literal["accepted", "changed", "unclear"]
    changes: tuple[Change, ...] = ()
    problems: tuple[str, ...] = ()
    words: str = ""


def own_words(text: str) -> list[str]:
    """The lines the mentor wrote herself (see agent.rules.own_lines)."""
    return [line.text for line in own_lines(text)]


def quoted_words(lines: Sequence[OwnLine]) -> str:
    """Her own lines as the notice quotes them: at most ``WORDS_LIMIT`` lines and characters."""
    kept: list[str] = []
    size = 0
    for line in lines:
        if len(kept) >= WORDS_LIMIT[0] or size + len(line.text) > WORDS_LIMIT[1]:
            kept.append("[…]")
            break
        kept.append(line.text)
        size += len(line.text) + 1
    return "\n".join(kept)


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


@dataclass(frozen=True)
class _Said:
    number: int
    text: str  # the value as she wrote it


def _references(line: OwnLine) -> tuple[list[_Said], str]:
    """The numbered values in one of her lines, and the words around them."""
    text = line.text
    if line.signature:  # her name, title and telephone: only a line that starts with a number is read
        start = _LINE_START.match(text)
        if not start or not re.search(r"[a-z]", text[start.end() :], re.IGNORECASE):
            return [], ""
    found = [(m.start(), m.end(), int(m.group("tagged") or m.group("plain"))) for m in _REFERENCE.finditer(text)]
    start = _LINE_START.match(text)
    if start and not (found and found[0][0] <= start.start("number") < found[0][1]):
        found.insert(0, (start.start(), start.end(), int(start.group("number"))))
    if not found:
        if line.about is not None and (re.search(r"\d", text) or _WINDOWISH.search(text)):
            return [_Said(line.about, text.strip())], ""  # her answer under the quoted line
        return [], text
    said, prose = [], [text[: found[0][0]]]
    for index, (_begin, end, number) in enumerate(found):
        stop = found[index + 1][0] if index + 1 < len(found) else len(text)
        value, *after = _SENTENCE.split(text[end:stop], maxsplit=1)  # "7. 45 minutes. Let me think about the rest."
        said.append(_Said(number, _TRAILING.sub("", value).strip()))
        prose.extend(after)
    return said, " ".join(prose)


def read_answer(text: str, proposed: Sequence[Standard], *, names: Sequence[str] = ()) -> Answer:
    """Read the mentor's reply against the standards that were ``proposed``; ``names`` (hers, the student's)
    are words a yes may be said with ("Fine, thank you Sam")."""
    by_number = {s.number: s for s in proposed}
    text = unicodedata.normalize("NFKC", text)  # "ｎｏｔ" is "not"
    lines = own_lines(text)
    words = quoted_words(lines)
    if len(lines) > 1 and lines[-1].about is None and not lines[-2].text.strip() and signed_with(lines[-1].text, names):
        lines[-1] = OwnLine(lines[-1].text, None, True)  # her name on its own line under her words
    changes: dict[int, Change] = {}
    problems: list[str] = []
    prose: list[str] = []
    for line in lines:
        said, rest = _references(line)
        prose.append(rest)
        for item in said:
            standard = by_number.get(item.number)
            if standard is None:
                problems.append(f"“{line.text.strip()}”: there is no line {item.number} in the proposal")
                continue
            value_text = _value_part(item.text, standard)
            try:
                value = _value(standard, value_text)
            except ValueError as error:
                problems.append(f"{standard.number}. {standard.label}: {error}")
                continue
            if not same(standard.kind, value, standard.value):
                changes[standard.number] = Change(standard, value)
            else:
                changes.pop(standard.number, None)
    problems.extend(quote_edits(quoted_lines(text), proposed))
    words_around = "\n".join(prose)
    numbers = re.findall(r"\d+(?:[.:,]\d+)*", words_around)
    if numbers:
        problems.append("a number that is not a numbered line’s value: " + ", ".join(f"“{n}”" for n in numbers[:3]))
    reading = read_prose(words_around, names)
    if problems:  # nothing of it is recorded: the student reads it
        return Answer("unclear", (), tuple(problems), words)
    if changes:  # her other words must say yes to the rest, or be only greetings, thanks and names
        if reading.allows_changes:
            return Answer("changed", tuple(changes[n] for n in sorted(changes)), (), words)
        return Answer("unclear", (), _doubts(reading.change_doubts), words)
    if reading.consents:
        return Answer("accepted", (), (), words)
    why = reading.doubts if reading.says_yes else ["no “fine” or other yes in her own words", *reading.doubts]
    return Answer("unclear", (), _doubts(why), words)


def quote_edits(quoted: Sequence[str], proposed: Sequence[Standard]) -> list[str]:
    """Where the proposal she quotes is not as it was sent: a numbered line with another value ("30 minutes
    45 minutes please" inside Gmail's quote, "-> 45 minutes" in Outlook's original), or a line of her own
    standing in it (under ``>>`` quoting). Such a change is not read, so the answer is "please read"."""
    lines = [" ".join(line.split()) for line in quoted]
    by_number = {s.number: s for s in proposed}
    found: list[str] = []
    index = 0
    while index < len(lines):
        start = _NUMBERED.match(lines[index])
        standard = by_number.get(int(start.group(1))) if start else None
        if standard is None or not lines[index][start.end() if start else 0 :].startswith(standard.label):
            index += 1
            continue
        expected, said = " ".join(standard.line.split()), lines[index]
        while said != expected and expected.startswith(said) and index + 1 < len(lines) and lines[index + 1]:
            index += 1  # her mail program wrapped the line
            said += " " + lines[index]
        index += 1
        if said != expected:
            found.append(f"the proposal she quotes says “{said[:90]}” where it was “{expected}”")
        elif standard is not proposed[-1] and index < len(lines) and lines[index] and not _NUMBERED.match(lines[index]):
            found.append(
                f"a line stands inside the proposal she quotes, under line {standard.number}: “{lines[index][:90]}”"
            )
    return found


def _value(standard: Standard, text: str) -> Any:
    """Her value for ``standard``, read completely, or ValueError. "30 minutes -> 45 minutes" (the proposed value,
    an arrow, hers) is hers."""
    if _NEGATED_VALUE.search(text):
        raise ValueError(f"“{text}” says what not to do, not a value")
    per = standard.key.removeprefix("max_per_") if standard.key.startswith("max_per_") else ""
    arrow = re.split(_ARROW, text)
    if len(arrow) == 2 and arrow[0].strip():
        if not same(standard.kind, read_value(standard.kind, arrow[0], per=per), standard.value):
            raise ValueError(f"“{text}”: the value before the arrow is not the one proposed")
        text = arrow[1]
    return read_value(standard.kind, text, per=per)


def read_reply(texts: Sequence[str], proposed: Sequence[Standard], *, names: Sequence[str] = ()) -> Answer:
    """Read a reply's plain and HTML texts (agent.rules.own_lines.reply_texts): when they are read differently
    (plain "Fine", HTML "Not fine …"), she may have meant either, and the answer is "please read"."""
    if not texts:
        return read_answer("", proposed, names=names)
    answers = [read_answer(text, proposed, names=names) for text in texts]
    first = answers[0]
    for other in answers[1:]:
        if (other.outcome, other.changes) != (first.outcome, first.changes):
            problem = (
                f"her e-mail's plain text reads “{first.outcome}” and its HTML “{other.outcome}”: "
                "a mail program shows one or the other"
            )
            words = first.words if first.words == other.words else f"{first.words}\n\n[HTML:]\n{other.words}"
            return Answer("unclear", (), (problem, *first.problems, *other.problems), words)
    return first


def _doubts(why: Sequence[str]) -> tuple[str, ...]:
    return tuple(f"her words hold {doubt}" if not doubt.startswith("no ") else doubt for doubt in why)


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
