"""Per-mentor policy files: the agreement, as data the student edits by hand.

One TOML file per mentor in a policies directory. Unknown keys are errors (a typo must not silently
disable a limit) and every error names the file, the key and, where it can, the line.

Why one module of ~480 lines: the schema (the pydantic sections) and the errors that point into the file
(``line_of``, ``problems_from_validation``) are one concept — an error must name the key the schema defines, and
a new key needs both; loading and the PolicyBook are a few lines each. (A natural seam later: the errors.)
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agent.errors import Problem, UserError
from agent.rules.addresses import inbound_address, normal_address
from agent.rules.durations import format_duration, parse_duration
from agent.rules.localtime import zone_named
from agent.rules.windows import DAY_NAMES, WeeklySchedule, WeeklyWindow

_ADDRESS = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError('write durations as text with a unit, e.g. "90m", "4h", "2d"')
    return parse_duration(value)


def _zone(value: Any) -> ZoneInfo:
    if isinstance(value, ZoneInfo):
        return value
    if not isinstance(value, str):
        raise ValueError('write the time zone as text, e.g. "America/Chicago"')
    return zone_named(value)


def _windows(value: Any) -> tuple[WeeklyWindow, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise ValueError('write windows as a list, e.g. ["Mon-Fri 08:00-17:00"]')
    return tuple(v if isinstance(v, WeeklyWindow) else WeeklyWindow.parse(str(v)) for v in value)


def _address(value: Any) -> str:
    if not isinstance(value, str) or not _ADDRESS.match(value.strip()):
        raise ValueError(f"{value!r} is not an e-mail address (write just the address, e.g. name@example.org)")
    return normal_address(value)


Duration = Annotated[timedelta, BeforeValidator(_duration), PlainSerializer(format_duration)]
Zone = Annotated[ZoneInfo, BeforeValidator(_zone), PlainSerializer(str)]
Windows = Annotated[
    tuple[WeeklyWindow, ...], BeforeValidator(_windows), PlainSerializer(lambda ws: [w.spec for w in ws])
]
Address = Annotated[str, BeforeValidator(_address)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


def _minutes(moment: time | None) -> int:
    return 24 * 60 if moment is None else moment.hour * 60 + moment.minute


def _no_overlap(windows: tuple[WeeklyWindow, ...]) -> tuple[WeeklyWindow, ...]:
    """Two windows that cover the same hour are a slip (a typed day range or hour too wide): say which."""
    for index, first in enumerate(windows):
        for second in windows[index + 1 :]:
            days = sorted(first.days & second.days)
            start = max(_minutes(first.start), _minutes(second.start))
            end = min(_minutes(first.end), _minutes(second.end))
            if days and start < end:
                names = ", ".join(DAY_NAMES[day].title() for day in days)
                raise ValueError(
                    f"{first.spec!r} and {second.spec!r} overlap ({names} {start // 60:02}:{start % 60:02}-"
                    f"{end // 60:02}:{end % 60:02}); write each hour in one window only"
                )
    return windows


class Mentor(_Section):
    name: str = Field(min_length=1)
    addresses: tuple[Address, ...] = Field(min_length=1)
    timezone: Zone
    # How notices refer to the mentor ("she", "he", "they"); purely cosmetic.
    pronoun: Literal["she", "he", "they"] = "they"

    @field_validator("addresses", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class EmailRules(_Section):
    max_per_day: int = Field(default=1, ge=1)
    max_per_week: int = Field(default=3, ge=1)
    min_gap: Duration = timedelta(0)
    send_windows: Windows = (WeeklyWindow.parse("Mon-Fri 08:00-18:00"),)
    max_unanswered: int = Field(default=2, ge=1)
    follow_up_after: Duration = timedelta(days=7)
    # "delay": each waits its turn; "batch": the waiting ones go as one digest; "agenda": those held over a
    # limit go as the agenda of the next meeting invitation (needs [meetings] windows; agent.rules.agenda).
    over_limit: Literal["delay", "batch", "agenda"] = "delay"
    # Digest only: when this many messages wait for one mentor, suggest a meeting instead (0 = never).
    suggest_meeting_after: int = Field(default=0, ge=0)

    @field_validator("send_windows")
    @classmethod
    def _some_window(cls, value: tuple[WeeklyWindow, ...]) -> tuple[WeeklyWindow, ...]:
        if not value:
            raise ValueError("give at least one window, or nothing could ever be sent")
        return _no_overlap(value)

    @field_validator("max_per_week")
    @classmethod
    def _week_holds_a_day(cls, value: int, info: ValidationInfo) -> int:
        per_day = info.data.get("max_per_day")
        if isinstance(per_day, int) and per_day > value:
            raise ValueError(
                f"{value} a week is fewer than max_per_day = {per_day}: the day's limit could never be reached; "
                f"raise max_per_week or lower max_per_day"
            )
        return value

    @field_validator("follow_up_after")
    @classmethod
    def _positive_follow_up(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than 0")
        return value

    @field_validator("min_gap")
    @classmethod
    def _non_negative_gap(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("must not be negative")
        if value > timedelta(days=7):
            raise ValueError(
                f"{format_duration(value)} is longer than a week, so at most one message could go in a week and "
                'max_per_week would mean nothing; write at most "7d" (hours are "h", e.g. "8h")'
            )
        return value


class MeetingRules(_Section):
    windows: Windows = ()
    duration: Duration = timedelta(minutes=30)
    buffer: Duration = timedelta(minutes=10)
    min_notice: Duration = timedelta(hours=48)
    horizon: Duration = timedelta(days=21)
    max_per_week: int = Field(default=1, ge=0)
    max_per_month: int = Field(default=2, ge=0)
    proposals: int = Field(default=3, ge=1, le=10)
    location: str = ""
    description: str = ""
    # "sequential": one invite for the best slot, alternatives named in its text, the next slot offered on
    # decline or timeout (light inbox). "holds": one invite per slot, the others cancelled on the first accept.
    strategy: Literal["sequential", "holds"] = "sequential"
    reply_timeout: Duration = timedelta(days=3)

    @field_validator("windows")
    @classmethod
    def _windows_apart(cls, value: tuple[WeeklyWindow, ...]) -> tuple[WeeklyWindow, ...]:
        return _no_overlap(value)

    @field_validator("duration")
    @classmethod
    def _positive_duration(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than 0")
        return value

    @model_validator(mode="after")
    def _fits_a_window(self) -> MeetingRules:
        if self.windows and all(w.length() < self.duration for w in self.windows):
            raise ValueError(
                f"duration {format_duration(self.duration)} is longer than every meeting window; "
                "no meeting could ever be proposed"
            )
        if self.horizon <= self.min_notice:
            raise ValueError("horizon must be longer than min_notice, or no slot could ever be offered")
        return self


class Agreement(_Section):
    """What the mentor agreed to, and when: written by ``mentor-agent agree`` when her answer is applied.

    The standards here are the ones a published mentoring agreement names beside the pace and the meetings
    (AAMC compacts, CIMER "Aligning Expectations"): answer times both ways, the agenda sent ahead, notice for
    cancelling, and a review after six months.
    """

    agreed_on: date | None = None  # None: the mentor has not agreed to this file yet (`status` says so)
    version: int = Field(default=0, ge=0)  # raised each time a change is agreed
    review_every: Duration = timedelta(days=182)  # about six months
    mentor_answers_within: Duration = timedelta(days=5)  # the answer time the student hopes for
    student_answers_within: Duration = timedelta(days=2)  # how soon the student answers the mentor
    agenda_ahead: Duration = timedelta(hours=24)  # the agenda goes this long before a meeting
    cancel_notice: Duration = timedelta(hours=24)  # notice for cancelling a meeting, either side

    @field_validator("review_every")
    @classmethod
    def _review_at_least_a_week(cls, value: timedelta) -> timedelta:
        if value < timedelta(days=7):
            raise ValueError('must be at least a week ("26w" is about six months)')
        return value


class Policy(_Section):
    """One mentor's agreement, as read from ``policies/<id>.toml``."""

    mentor: Mentor
    email: EmailRules = EmailRules()
    meetings: MeetingRules = MeetingRules()
    agreement: Agreement = Agreement()

    @property
    def zone(self) -> ZoneInfo:
        return self.mentor.timezone

    @property
    def send_schedule(self) -> WeeklySchedule:
        return WeeklySchedule.of(self.email.send_windows, self.mentor.timezone)


@dataclass(frozen=True)
class LoadedPolicy:
    """A policy with where it came from: ``id`` is the file's stem (``rivera`` for ``rivera.toml``)."""

    id: str
    path: Path
    policy: Policy
    text: str = field(default="", repr=False, compare=False)  # the file's text it was read from

    @property
    def name(self) -> str:
        return self.policy.mentor.name


# -- errors that point at the file -------------------------------------------------------------------------

_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")


def line_of(text: str, loc: tuple[str | int, ...]) -> int | None:
    """The line where the key at ``loc`` (e.g. ("email", "max_per_day")) is written, if it is."""
    keys = [str(part) for part in loc if isinstance(part, str)]
    if not keys:
        return None
    table, key = keys[:-1], keys[-1]
    current: list[str] = []
    header_line: int | None = None  # the key is a table of its own: its [header]
    table_line: int | None = None  # the key is missing: the header of the table it belongs in
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("[") and not line.startswith("[["):
            current = [part.strip().strip('"') for part in line.split("]")[0].strip("[ ").split(".")]
            if current == keys:
                header_line = number
            if table and current == table and table_line is None:
                table_line = number
            continue
        if current == table and re.match(rf'^"?{re.escape(key)}"?\s*=', line):
            return number
    return header_line or table_line


_line_of = line_of


def _close(key: str, known: Iterable[str]) -> str | None:
    import difflib  # only for a mistyped key: not loaded by a daemon whose files are right

    close = difflib.get_close_matches(key, list(known), n=1)
    return close[0] if close else None


def _suggest(key: str, known: Iterable[str]) -> str:
    close = _close(key, known)
    return f" (did you mean {close!r}?)" if close else ""


def _model_at(loc: tuple[str | int, ...], model: type[BaseModel]) -> type[BaseModel] | None:
    """The model that holds the last key of ``loc`` (None where ``loc`` goes through a list or a plain value)."""
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            return None
    return model


def _known_keys(loc: tuple[str | int, ...], model: type[BaseModel]) -> list[str]:
    holder = _model_at(loc, model)
    return list(holder.model_fields) if holder else []


def _sections(loc: tuple[str | int, ...], model: type[BaseModel]) -> list[str]:
    """The keys at ``loc``'s level that are tables of their own ([mentor], [imap.folders])."""
    holder = _model_at(loc, model)
    if holder is None:
        return []
    return [
        name
        for name, field in holder.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
    ]


def _in_plain_words(item: Any) -> str:
    """Pydantic's message, as the person who wrote the file would say it."""
    kind, context = item["type"], item.get("ctx") or {}
    if kind in ("int_parsing", "int_type", "float_parsing", "float_type"):
        return "not a number"
    if kind == "int_from_float":
        return "not a whole number"
    if kind in ("bool_parsing", "bool_type"):
        return "not true or false"
    if kind in ("string_type",):
        return 'not text (write it in quotes, e.g. "…")'
    if kind == "greater_than_equal":
        return f"must be at least {context.get('ge')}"
    if kind == "greater_than":
        return f"must be more than {context.get('gt')}"
    if kind == "less_than_equal":
        return f"must be at most {context.get('le')}"
    if kind == "less_than":
        return f"must be less than {context.get('lt')}"
    if kind == "too_short":
        return "must not be empty"
    message = str(item["msg"]).removeprefix("Value error, ")
    return message.replace("Input should be ", "must be ", 1)


def problems_from_validation(
    path: Path,
    text: str,
    error: ValidationError,
    model: type[BaseModel] | None = None,
    env: Mapping[tuple[str, ...], str] | None = None,
) -> list[Problem]:
    """One Problem per error, naming the file, key and line — or, for a value that came from the environment
    (``env`` maps a key path such as ("imap", "port") to its variable), the variable."""
    model = model or Policy
    items = error.errors()
    unknown_sections: set[str] = set()
    for item in items:
        loc = tuple(item["loc"])
        if item["type"] == "extra_forbidden" and isinstance(item.get("input"), dict):
            close = _close(str(loc[-1]), _sections(loc, model))
            if close:
                unknown_sections.add(".".join(str(part) for part in (*loc[:-1], close)))
    problems = []
    for item in items:
        loc = tuple(item["loc"])
        key = ".".join(str(part) for part in loc)
        if item["type"] == "missing" and key in unknown_sections:
            continue  # said once already: the section is there, misspelt
        variable = _variable_for(loc, env or {})
        if item["type"] == "extra_forbidden":
            if isinstance(item.get("input"), dict) and variable is None:
                close = _close(str(loc[-1]), _sections(loc, model))
                hint = f" (did you mean [{'.'.join(str(p) for p in (*loc[:-1], close))}]?)" if close else ""
                problems.append(
                    Problem(file=str(path), key="", message=f"unknown section [{key}]{hint}", line=line_of(text, loc))
                )
                continue
            known = _known_keys(loc, model)
            message = ("unknown setting" if variable else "unknown key") + _suggest(str(loc[-1]), known)
        elif item["type"] == "missing":
            message = "required but missing"
        else:
            message = _in_plain_words(item)
        if variable is not None:
            problems.append(Problem(file="", key=variable, message=message))
        else:
            problems.append(Problem(file=str(path), key=key, message=message, line=line_of(text, loc)))
    return problems


def _variable_for(loc: tuple[str | int, ...], env: Mapping[tuple[str, ...], str]) -> str | None:
    """The environment variable that set the value at ``loc`` (or a section holding it), if one did."""
    keys = tuple(str(part).lower() for part in loc)
    for length in range(len(keys), 0, -1):
        if keys[:length] in env:
            return env[keys[:length]]
    return None


def read_toml(path: Path) -> tuple[str, dict[str, Any]]:
    """Read a TOML file or raise UserError naming the file and the line of the syntax error."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UserError([Problem(file=str(path), key="", message=f"cannot read: {error.strerror}")]) from error
    except UnicodeDecodeError as error:
        raise UserError([Problem(file=str(path), key="", message="is not UTF-8 text")]) from error
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        position = _TOML_POSITION.search(str(error))
        line = int(position.group(1)) if position else None
        message = _TOML_POSITION.sub("", str(error)).strip()
        raise UserError([Problem(file=str(path), key="", message=f"not valid TOML: {message}", line=line)]) from error


def load_policy(path: Path) -> LoadedPolicy:
    text, data = read_toml(path)
    try:
        policy = Policy.model_validate(data)
    except ValidationError as error:
        raise UserError(problems_from_validation(path, text, error)) from error
    if policy.email.over_limit == "agenda" and not policy.meetings.windows:
        message = (
            '"agenda" puts held messages on a meeting invitation, and this policy has no [meetings] windows to '
            'offer a time in; add windows under [meetings], or choose "delay" or "batch"'
        )
        line = line_of(text, ("email", "over_limit"))
        raise UserError([Problem(file=str(path), key="email.over_limit", message=message, line=line)])
    return LoadedPolicy(id=path.stem, path=path, policy=policy, text=text)


def file_name(policy_id: str) -> str:
    """The file a policy id was read from (``rivera.toml``; also for one retired: ``rivera~retired-…``)."""
    return policy_id.split("~", 1)[0] + ".toml"


def policy_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.toml") if not p.name.startswith("."))


def check_unique_addresses(policies: Iterable[LoadedPolicy]) -> list[Problem]:
    """Two policies that claim the same mentor address are an error: which one would apply?"""
    owner: dict[str, LoadedPolicy] = {}
    problems = []
    for loaded in policies:
        for address in loaded.policy.mentor.addresses:
            first = owner.setdefault(normal_address(address), loaded)
            if first is not loaded:
                problems.append(
                    Problem(
                        file=str(loaded.path),
                        key="mentor.addresses",
                        message=f"{address} is already claimed by {first.path}; one address, one policy",
                        line=line_of(loaded.path.read_text(encoding="utf-8"), ("mentor", "addresses")),
                    )
                )
    return problems


def load_policies(directory: Path) -> list[LoadedPolicy]:
    """Load every policy in ``directory``; raise one UserError listing every problem in every file."""
    if not directory.is_dir():
        raise UserError([Problem(file=str(directory), key="", message="no such policies directory")])
    loaded: list[LoadedPolicy] = []
    problems: list[Problem] = []
    for path in policy_files(directory):
        try:
            loaded.append(load_policy(path))
        except UserError as error:
            problems.extend(error.problems)
    problems.extend(check_unique_addresses(loaded))
    if problems:
        raise UserError(problems)
    return loaded


class PolicyBook:
    """The loaded policies, looked up by mentor address or id."""

    def __init__(self, policies: Iterable[LoadedPolicy], *, held: Iterable[str] = ()) -> None:
        self.by_id: dict[str, LoadedPolicy] = {p.id: p for p in policies}
        self.held = frozenset(held)  # the ids of removed policies kept in force only for the mail that waits
        self.by_address: dict[str, LoadedPolicy] = {
            normal_address(address): p for p in self.by_id.values() for address in p.policy.mentor.addresses
        }

    def for_address(self, address: str) -> LoadedPolicy | None:
        """Her policy, however the address is spelled (case, IDNA: :func:`agent.rules.addresses.normal_address`),
        but never for a domain that only folds into hers (:func:`agent.rules.addresses.inbound_address`)."""
        return self.by_address.get(inbound_address(address))

    def pacing(self, mentor: str | None, recipients: Iterable[str]) -> LoadedPolicy | None:
        """The policy that paces a message taken in under ``mentor`` (a policy id) for ``recipients`` (those its
        policy named then; all of them for a message kept before that was known): that one while it still claims
        one of them, else whichever claims one now (her file renamed), else None. A mentor is her addresses: a file
        of that name that names none of them any more (her address edited out, the file reused for another mentor,
        even one the message copies) paces nothing of hers."""
        wanted = list(recipients)
        bound = self.by_id.get(mentor) if mentor else None
        if bound is not None and any(self.for_address(a) is bound for a in wanted):
            return bound
        return next((found for found in map(self.for_address, wanted) if found is not None), None)

    def __iter__(self) -> Any:
        return iter(self.by_id.values())

    def __len__(self) -> int:
        return len(self.by_id)
