"""What `mentor-agent setup` checks in an answer before it goes on: an address (a pasted "Name <address>" too),
an IANA time zone (with the name a slip stands for), a weekly window. Each check gives the problem, or None."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from agent.rules.localtime import zone_named
from agent.rules.windows import WeeklyWindow


def local_zone_name() -> str:
    """This machine's IANA zone name ($TZ, /etc/timezone, the /etc/localtime link), else UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text(encoding="utf-8").strip())
    with contextlib.suppress(OSError):
        candidates.append(os.readlink("/etc/localtime").split("zoneinfo/", 1)[-1])
    for name in candidates:
        if name and zone_problem(name) is None:
            return name
    return "UTC"


def zone_problem(name: str) -> str | None:
    try:
        zone_named(name)
    except ValueError as error:
        meant = _zone_meant(name)
        return f"{error}; did you mean {meant}?" if meant else str(error)
    return None


def _zone_meant(name: str) -> str | None:
    """The IANA name a slip of ``name`` stands for: spaces for underscores, another case ("america/new york")."""
    import zoneinfo

    key = name.strip().replace(" ", "_").lower()
    return next((zone for zone in sorted(zoneinfo.available_timezones()) if zone.lower() == key), None)


_ADDRESS = re.compile(r"[^@\s,;<>()\[\]\\\"]+@(?:[^\W_](?:[\w-]*[^\W_])?\.)+[\w-]{2,}")  # Unicode domains too


def bare_address(value: str) -> str:
    """The address in what was typed or pasted: ``Dr. Ana Rivera <arivera@hospital.example.org>`` or a plain one."""
    value = value.strip()
    if value.endswith(">") and "<" in value:
        return value.rpartition("<")[2][:-1].strip()
    return value


def address_problem(value: str) -> str | None:
    """A plain address (local@domain.tld); a typo such as "@@", "..", a comma or a space is asked again."""
    return None if _ADDRESS.fullmatch(bare_address(value)) else f"{value!r} is not an e-mail address"


def window_problem(value: str) -> str | None:
    try:
        WeeklyWindow.parse(value)
    except ValueError as error:
        return str(error)
    return None
