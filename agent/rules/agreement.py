"""The agreement with a mentor, in words: the numbered standards and the e-mail that proposes them.

Pure: a policy in, text out (agent/rules/agreement_answer.py reads her answer). ``mentor-agent agree``
(agent/cli/agree.py) puts the draft in Drafts or the Outbox, agent/reconcile/agreement.py reads her answer
and agent/config/policy_edit.py writes what was agreed into the policy file.

Each standard is one numbered line ``  3. When my e-mails arrive, your time: Mon-Fri 08:00-17:00`` so the
mentor can answer "fine", or write a line with the number and a new value ("3. Mon-Thu 09:00-16:00").
"""

from __future__ import annotations

import functools
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any, Literal

from agent.rules.durations import format_duration, say_duration, written
from agent.rules.policy import Policy
from agent.rules.windows import WeeklyWindow

Kind = Literal["count", "count_or_never", "duration", "windows"]
SUBJECT = "How we keep in touch: a proposal"
WIDTH = 76  # plain-text e-mail lines


@dataclass(frozen=True)
class Standard:
    """One numbered line of the agreement: where it lives in the policy file, and its value."""

    number: int
    section: str  # the policy table: "email", "meetings", "agreement"
    key: str
    label: str
    kind: Kind
    value: Any  # int, timedelta or tuple[WeeklyWindow, ...], as in the policy

    @property
    def path(self) -> str:
        return f"{self.section}.{self.key}"

    @property
    def text(self) -> str:
        return say_value(self.kind, self.value)

    @property
    def line(self) -> str:
        return f"{self.number:>3}. {self.label}: {self.text}"


# (section, key, label, kind): the order is the order of the e-mail.
_STANDARDS: tuple[tuple[str, str, str, Kind], ...] = (
    ("email", "max_per_week", "E-mails from me in a week, at most", "count"),
    ("email", "max_per_day", "E-mails from me in a day, at most", "count"),
    ("email", "send_windows", "When my e-mails arrive, your time", "windows"),
    ("email", "max_unanswered", "E-mails of mine waiting for your answer before I hold the next", "count"),
    ("email", "follow_up_after", "With no answer, one gentle reminder after", "duration"),
    ("email", "suggest_meeting_after", "When this many questions wait, I ask for a meeting instead", "count_or_never"),
    ("meetings", "duration", "A meeting lasts", "duration"),
    ("meetings", "windows", "When we can meet, your time", "windows"),
    ("meetings", "max_per_month", "Meetings in a month, at most", "count"),
    ("agreement", "mentor_answers_within", "Your answer, when you can, within", "duration"),
    ("agreement", "student_answers_within", "My answer to you, within", "duration"),
    ("agreement", "agenda_ahead", "The agenda reaches you before a meeting by", "duration"),
    ("agreement", "cancel_notice", "Notice for calling off a meeting, either of us", "duration"),
    ("agreement", "review_every", "We look at all this again after", "duration"),
)


def standards(policy: Policy) -> tuple[Standard, ...]:
    """The numbered standards of ``policy``, with its values."""
    found = []
    for number, (section, key, label, kind) in enumerate(_STANDARDS, start=1):
        value = getattr(getattr(policy, section), key)
        found.append(Standard(number, section, key, label, kind, value))
    return tuple(found)


# -- values in words, and back ------------------------------------------------------------------------------


def say_value(kind: Kind, value: Any) -> str:
    if kind == "count":
        return str(value)
    if kind == "count_or_never":
        return "never" if value == 0 else str(value)
    if kind == "duration":
        return say_duration(value)
    return ", ".join(w.spec for w in value) if value else "by arrangement"


def toml_value(kind: Kind, value: Any) -> Any:
    """The value as the policy file writes it: 3, "5d", ["Mon-Fri 08:00-17:00"]."""
    if kind == "duration":
        return format_duration(value)
    if kind == "windows":
        return [w.spec for w in value]
    return value


_NUMBER_WORDS = {
    w: n for n, w in enumerate(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"])
}
_SECONDS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60}


# The two long patterns are compiled when a mentor's answer is first read, not when the daemon starts (~2 ms).
@functools.cache
def _duration_part() -> re.Pattern[str]:
    return re.compile(
        r"(?<![\w.,½/+-])(\d+|(?:" + "|".join(_NUMBER_WORDS) + r"|an?)\b)\s*"
        r"(months?|weeks?|wks?|w|days?|d|hours?|hrs?|h|minutes?|mins?|m)\b",
        re.IGNORECASE,
    )


@functools.cache
def _window() -> re.Pattern[str]:
    return re.compile(
        r"(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*(?:\s*[-,]\s*(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*)*"
        r"\s+\d{1,2}:\d{2}\s*-\s*\d{1,2}:\d{2}",
        re.IGNORECASE,
    )


# What may stand beside a value and say nothing more; any other word or sign ("longer", "drop", "Berlin time",
# "half", "-", "?") means she said something the parser does not read, and the answer is "please read".
_SPARE = re.compile(r"(?:[\s,.;:!]|\b(?:and|please|pls|thanks|thank you)\b)*", re.IGNORECASE)
_COUNT_SPARE = re.compile(
    r"(?:[\s,.;:!]|\b(?:please|pls|thanks|thank you|e-?mails?|mails?|messages?|meetings?|questions?|at most|max|"
    r"maximum|times)\b)*",
    re.IGNORECASE,
)


def _amount(word: str) -> int:
    word = word.lower()
    if word.isdigit():
        return int(word)
    return 1 if word in ("a", "an") else _NUMBER_WORDS[word]


_CHOICE = re.compile(r"\b(or|either|between|and/or)\b", re.IGNORECASE)
_DAY_NAME = re.compile(r"\b(mon|tue|wed|thu|fri|sat|sun)", re.IGNORECASE)


def _nothing_else(spare: re.Pattern[str], left: str, cleaned: str) -> None:
    if not spare.fullmatch(left):
        words = " ".join(left.split()).strip(" ,.;:")
        raise ValueError(f"“{cleaned}” says more than a value (“{words}”): please read it")


def read_value(kind: Kind, text: str, *, per: str = "") -> Any:
    """The value a mentor wrote; ValueError (in plain words) when it cannot be read completely: when it is more
    than one value ("2 or 3", "30-45 minutes", "Mon to Fri 09:00-17:00"), or holds any word the parser does not
    read ("15 minutes longer", "drop Thu 07:00-08:00", "Tue 16:00-17:00 Berlin time", "half an hour"). A count
    may name its period ``per`` ("3 a week" for a weekly count); another period ("8 a month") is not read."""
    cleaned = text.strip().strip(".").strip()
    lowered = cleaned.lower()
    if _CHOICE.search(cleaned):
        raise ValueError(f"“{cleaned}” gives a choice, not one value")
    if kind in ("count", "count_or_never"):
        if kind == "count_or_never" and re.fullmatch(r"(never|none)\W*", lowered):
            return 0
        if per:
            lowered = re.sub(rf"\b(a|per|each|every|in a|an?)\s+{per}\b|/\s*{per}\b", " ", lowered)
        numbers = list(re.finditer(r"(?<![\w.,½/+-])(\d+|" + "|".join(_NUMBER_WORDS) + r")\b", lowered))
        if not numbers:
            raise ValueError(f"“{cleaned}” is not a number")
        if len(numbers) > 1:
            raise ValueError(f"“{cleaned}” holds more than one number")
        _nothing_else(_COUNT_SPARE, lowered[: numbers[0].start()] + " " + lowered[numbers[0].end() :], cleaned)
        number = _amount(numbers[0].group(1))
        if number < (0 if kind == "count_or_never" else 1):
            raise ValueError(f"“{cleaned}”: at least 1, please")
        return number
    if kind == "duration":
        if lowered in ("none", "0", "no notice"):
            return timedelta(0)
        parts = [(m.group(1), m.group(2)) for m in _duration_part().finditer(cleaned)]
        if not parts:
            raise ValueError(f"“{cleaned}” is not a length of time (e.g. 3 days, 24 hours, 45 minutes)")
        _nothing_else(_SPARE, _duration_part().sub(" ", cleaned), cleaned)
        if any(unit.lower().startswith("mo") for _, unit in parts):
            raise ValueError(f"“{cleaned}”: months differ in length; in weeks or days, please (26 weeks, 180 days)")
        total, spelt, sizes = 0, [], []
        for amount, unit in parts:
            unit = unit.lower()
            size = _SECONDS[unit[0]]
            sizes.append(size)
            total += _amount(amount) * size
            spelt.append((_amount(amount), unit[0]))
        if sizes != sorted(set(sizes), reverse=True):  # "30 minutes 45 minutes", "12 hours 3 days": not one length
            raise ValueError(f"“{cleaned}” is not one length of time")
        return written(timedelta(seconds=total), spelt)  # her unit kept: "48 hours" stays "48h"
    if re.fullmatch(r"(by arrangement|none|any time we arrange)\W*", lowered):
        return ()
    specs = _window().findall(cleaned)
    if not specs:
        raise ValueError(f"“{cleaned}” names no days and hours (e.g. Mon-Fri 08:00-17:00)")
    left = _window().sub(" ", cleaned)
    if re.search(r"\d", left) or _DAY_NAME.search(left):
        raise ValueError(f"“{cleaned}”: days or hours outside the windows it names (write e.g. Mon-Fri 08:00-17:00)")
    _nothing_else(_SPARE, left, cleaned)
    try:
        return tuple(WeeklyWindow.parse(re.sub(r"\s*-\s*(?=\d)", "-", spec)) for spec in specs)
    except ValueError as error:
        raise ValueError(f"“{cleaned}”: {error}") from None


# -- the e-mail that proposes them ----------------------------------------------------------------------------


def _salutation(name: str) -> str:
    parts = name.split()
    if len(parts) >= 2 and parts[0].rstrip(".").lower() in ("dr", "prof", "professor", "mr", "ms", "mrs", "mx"):
        return f"{parts[0]} {parts[-1]}"
    return name


def _what_i_do(policy: Policy) -> list[str]:
    email = policy.email
    lines = [
        "I write only inside the hours above, so nothing of mine arrives at night or on your days off."
        if email.send_windows
        else "",
        "Several small questions arrive as one e-mail, with a short list of contents at the top."
        if email.over_limit == "batch"
        else "When I have more to say than the limits allow, it waits for the next day rather than piling up.",
        f"While {email.max_unanswered} of my e-mails wait for your answer, the next one waits too; one gentle "
        f"reminder at most, after {say_duration(email.follow_up_after)}.",
        "An answer to one of your e-mails always stays in its thread.",
    ]
    if email.suggest_meeting_after:
        lines.append(
            f"When {email.suggest_meeting_after} questions wait, I ask for a short meeting instead of writing more."
        )
    if policy.meetings.windows:
        lines.append(
            f"I offer meeting times only inside the times above, and send the agenda "
            f"{say_duration(policy.agreement.agenda_ahead)} ahead."
        )
    return [line for line in lines if line]


def draft_body(policy: Policy, student_name: str) -> str:
    """The text of the e-mail that proposes the standards of ``policy`` to its mentor."""
    numbered = "\n".join(s.line for s in standards(policy))
    doing = "\n".join(
        textwrap.fill(line, WIDTH, initial_indent="  - ", subsequent_indent="    ") for line in _what_i_do(policy)
    )
    first = student_name.split()[0] if student_name.split() else student_name
    example = standards(policy)[0]
    paragraphs = (
        f"Dear {_salutation(policy.mentor.name)},",
        "Thank you for mentoring me. I would like to make sure my e-mails are never a burden, so I would "
        "like us to agree early on how we keep in touch: how often I write, when, and when a meeting is "
        "better than another e-mail. This is what I propose:",
        numbered,
        "If this suits you, a reply saying “fine” is all I need. If you would like something different, "
        "write the line's number and your value in your reply, for example "
        f"“{example.number}. {max(1, example.value - 1) if example.kind == 'count' else example.text}”, "
        "and I will keep to that.",
        "To keep to it I use a small program (mentor-agent) that paces my e-mails:\n" + doing,
        f"With many thanks,\n{first}",
    )
    wrapped = [p if p is numbered or "\n" in p else textwrap.fill(p, WIDTH) for p in paragraphs]
    return "\n\n".join(wrapped) + "\n"


def standards_json(proposed: Sequence[Standard]) -> list[dict[str, Any]]:
    """What the ledger keeps of a proposal: enough to read the answer against it later."""
    return [{"number": s.number, "path": s.path, "text": s.text} for s in proposed]


def standards_from_json(items: Sequence[dict[str, Any]]) -> tuple[Standard, ...]:
    """The proposal as it was sent (the policy may have been edited since)."""
    known = {f"{section}.{key}": (section, key, label, kind) for section, key, label, kind in _STANDARDS}
    found = []
    for item in items:
        if item["path"] not in known:
            continue
        section, key, label, kind = known[item["path"]]
        found.append(Standard(int(item["number"]), section, key, label, kind, read_value(kind, item["text"])))
    return tuple(found)


def proposal_message(
    policy: Policy, *, student_name: str, student_address: str, now: datetime, message_id: str
) -> EmailMessage:
    """The proposal as an e-mail to the mentor, marked ``X-Mentor-Agent: agreement`` (it goes on its own, never
    in a digest, so her answer threads to it)."""
    mentor = policy.mentor
    message = EmailMessage()
    message["From"] = formataddr((student_name, student_address))
    message["To"] = formataddr((mentor.name, mentor.addresses[0]))
    message["Subject"] = SUBJECT
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id
    message["X-Mentor-Agent"] = "agreement"
    message.set_content(draft_body(policy, student_name))
    return message
