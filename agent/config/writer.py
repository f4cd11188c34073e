"""The text `mentor-agent setup` writes: the config (commented TOML, no secret in it) and a mentor's first policy.

Pure: values in, text out. Re-running setup renders the file again from what it holds plus the new answers, so
every value (also keys setup never asks about) is kept; the comments are this module's own.
"""

from __future__ import annotations

import difflib
import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# key path -> the comment written after it
COMMENTS: dict[tuple[str, ...], str] = {
    ("policies_dir",): "one TOML file per mentor; relative to this file",
    ("state_dir",): "the ledger (SQLite)",
    ("pass_through",): "mail to people who are not mentors goes out at once",
    ("student", "name"): "signs digests and notices",
    ("student", "address"): "the From address; also the ORGANIZER of meeting invites",
    ("student", "timezone"): "notices show times in the mentor's zone and in this one",
    ("imap", "security"): '"tls" (implicit), "starttls", or "plain" (loopback tests only)',
    ("imap", "keyring_service"): "the password is in the system keyring under this service and username",
    ("smtp", "keyring_service"): "the password is in the system keyring under this service and username",
    ("imap", "password_command"): "its first line of output is the password",
    ("smtp", "password_command"): "its first line of output is the password",
    ("imap", "oauth2"): "signed in with `mentor-agent setup`; the grant is kept in the keyring or state_dir",
    ("imap", "oauth2_client_id"): "the app registration the school or you made (the project has none of its own)",
    ("imap", "oauth2_authority"): "the sign-in server, when not the provider's own (a sovereign cloud)",
    ("smtp", "provider"): "whose sending limits apply",
    ("imap", "folders", "outbox"): "drop finished messages here",
    ("imap", "folders", "scheduled"): "held messages wait here; delete one to cancel, flag it to send now",
    ("imap", "folders", "sending"): "a message sits here only while it is being sent",
}
ORDER = ("policies_dir", "state_dir", "pass_through", "student", "imap", "smtp", "digest", "calendar")
HEADER = """\
# mentor-agent's settings, written by `mentor-agent setup` (run it again to change them; it shows the changes
# first). No password is kept here: see password_command, keyring_service or oauth2 below.
# Every key can also come from the environment: MENTOR_AGENT_<SECTION>__<KEY>, e.g. MENTOR_AGENT_IMAP__HOST.
"""


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        # A JSON string is a TOML basic string, but for DEL, which TOML wants escaped too.
        return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, Sequence):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _lines(data: Mapping[str, Any], path: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    scalars = [(k, v) for k, v in data.items() if not isinstance(v, Mapping)]
    tables = [(k, v) for k, v in data.items() if isinstance(v, Mapping)]
    if path and (scalars or not tables):
        out.append(f"\n[{'.'.join(path)}]")
    for key, value in scalars:
        line = f"{key} = {toml_value(value)}"
        comment = COMMENTS.get((*path, key))
        out.append(f"{line:<34} # {comment}" if comment else line)
    for key, value in tables:
        out.extend(_lines(value, (*path, key)))
    return out


def render_config(data: Mapping[str, Any]) -> str:
    ordered = {key: data[key] for key in ORDER if key in data} | {k: v for k, v in data.items() if k not in ORDER}
    return HEADER + "\n" + "\n".join(_lines(ordered, ())).lstrip("\n") + "\n"


def merged(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` written over it, table by table; a change to None removes the key."""
    out = dict(base)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping):
            out[key] = merged(out[key] if isinstance(out.get(key), Mapping) else {}, value)
        else:
            out[key] = value
    return out


def diff(old: str, new: str, name: str) -> str:
    """What would change in file ``name``, as a unified diff ("" when nothing would)."""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), f"{name} (now)", f"{name} (new)", n=1
    )
    return "".join(lines)


# -- the first policy -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MentorAnswers:
    name: str
    addresses: tuple[str, ...]
    timezone: str
    max_per_day: int = 1
    max_per_week: int = 3
    send_windows: tuple[str, ...] = ("Mon-Fri 08:00-17:00",)
    pronoun: str = "they"
    over_limit: str = "delay"


def _slug(text: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name).strip("-")


def policy_file_names(name: str) -> list[str]:
    """The file names a mentor's policy may take, best first: ``Dr. Ana Rivera`` -> ``rivera.toml``, then
    ``ana-rivera.toml`` (when another Rivera has the first), then ``rivera-2.toml``, ``rivera-3.toml``, …"""
    words = [w for w in re.split(r"[\s,]+", name) if w and not w.endswith(".")] or [name]
    last = _slug(words[-1]) or "mentor"
    names = [f"{last}.toml"]
    if len(words) > 1 and (full := _slug(" ".join(words))) and full != last:
        names.append(f"{full}.toml")
    return names + [f"{last}-{n}.toml" for n in range(2, 100)]


def policy_file_name(name: str) -> str:
    """``Dr. Ana Rivera`` -> ``rivera.toml``: the last word of the name, in ASCII letters, digits and dashes."""
    return policy_file_names(name)[0]


def render_policy(answers: MentorAnswers, *, today: str) -> str:
    v = toml_value
    rows: list[tuple[str, str]] = [
        ("[mentor]", ""),
        (f"name = {v(answers.name)}", "how notices and digests name the mentor"),
        (f"addresses = {v(list(answers.addresses))}", "every address this mentor writes from or is written to"),
        (f"timezone = {v(answers.timezone)}", "IANA zone; days, weeks and windows are the mentor's"),
        (f"pronoun = {v(answers.pronoun)}", '"she", "he" or "they": used only in notices'),
        ("", ""),
        ("[email]", ""),
        (
            f"max_per_day = {answers.max_per_day}",
            "messages (a digest counts as one) per calendar day, the mentor's zone",
        ),
        (f"max_per_week = {answers.max_per_week}", "per ISO week, Monday to Sunday"),
        ('min_gap = "0"', 'at least this long between two messages; durations: "90m", "4h", "2d"'),
        (
            f"send_windows = {v(list(answers.send_windows))}",
            "when mail may arrive, the mentor's local time; end exclusive",
        ),
        ("max_unanswered = 2", "this many may wait for a reply before new ones are held"),
        ('follow_up_after = "5d"', "after this long without a reply, one follow-up may go anyway"),
        (
            f"over_limit = {v(answers.over_limit)}",
            '"delay": each waits its turn; "batch": waiting ones go as one digest',
        ),
    ]
    width = max(len(line) for line, comment in rows if comment) + 1
    body = "\n".join(f"{line:<{width}}# {comment}" if comment else line for line, comment in rows)
    return f"""\
# The agreement with {answers.name}, written by `mentor-agent setup` on {today}.
# Every rule below is read in the mentor's time zone. Unknown keys are errors, so a typo is caught by
# `mentor-agent check`. See docs/policies.md for every key, e.g. [meetings] to let the agent propose them.

{body}
"""
