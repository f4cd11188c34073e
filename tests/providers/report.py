"""The tables of docs/providers.md, from a run of the profile suite and from the profiles themselves.

MENTOR_AGENT_PROVIDERS_REPORT=/tmp/providers.jsonl python3 -m pytest tests/providers
python3 -m tests.providers.report /tmp/providers.jsonl          # results: case x profile
python3 -m tests.providers.report --profiles                    # what each profile emulates
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from tests.servers.providers import PROFILES, Profile

MARK = {
    "passed": "pass",
    "failed": "**FAIL**",
    "xfail": "fails today",
    "XPASS": "pass (marker left)",
    "skipped": "skipped",
}


def results(entries: list[dict[str, Any]]) -> str:
    cases: list[str] = []
    for e in entries:
        if e["case"] not in cases:
            cases.append(e["case"])
    cell: dict[tuple[str, str], dict[str, Any]] = {(e["case"], e["profile"]): e for e in entries}
    notes: list[str] = []
    head = "| case | " + " | ".join(PROFILES) + " |"
    lines = [head, "|---" * (len(PROFILES) + 1) + "|"]
    for case in cases:
        row = [f"`{case.removeprefix('test_')}`"]
        for name in PROFILES:
            entry = cell.get((case, name))
            if entry is None:
                row.append("n/a")
                continue
            text = MARK.get(entry["outcome"], entry["outcome"])
            if entry["outcome"] != "passed" and entry.get("detail"):
                detail = _general(entry["detail"])
                if detail not in notes:
                    notes.append(detail)
                text += f" [{notes.index(detail) + 1}]"
            row.append(text)
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines += [f"{n}. {note.replace('|', '/')}" for n, note in enumerate(notes, start=1)]
    return "\n".join(lines)


def _general(detail: str) -> str:
    """A failure's first line without the test's own subjects and counts, so that one cause is one note."""
    detail = detail.removeprefix("AssertionError: ")
    detail = re.sub(r":?\s*\(?\[[^\]]*\]\)?", "", detail)
    return re.sub(r"\b\d+ with ", "", detail)


def _yes(value: bool) -> str:
    return "yes" if value else "**no**"


def profiles() -> str:
    lines = ["| | " + " | ".join(p.title for p in PROFILES.values()) + " |", "|---" * (len(PROFILES) + 1) + "|"]

    def row(label: str, value: Any) -> None:
        lines.append(f"| {label} | " + " | ".join(value(p) for p in PROFILES.values()) + " |")

    def limits(p: Profile) -> str:
        parts = []
        if p.limits.per_day:
            parts.append(f"{p.limits.per_day:,}/day")
        if p.limits.per_minute:
            parts.append(f"{p.limits.per_minute}/min")
        if p.limits.recipients_per_message:
            parts.append(f"{p.limits.recipients_per_message} rcpt/msg")
        return ", ".join(parts) or "none"

    row(
        "capabilities removed",
        lambda p: (
            ", ".join(sorted(c for c in p.drop_capabilities if c in {"MOVE", "CONDSTORE", "QRESYNC", "SPECIAL-USE"}))
            or "none"
        ),
    )
    row("capabilities added", lambda p: ", ".join(p.add_capabilities) or "none")
    row("MOVE", lambda p: _yes(p.has_move))
    row(
        "CONDSTORE",
        lambda p: "advertised, SELECT (CONDSTORE) → NO" if p.refuse_select_condstore else _yes(p.has_condstore),
    )
    row("SPECIAL-USE attributes in LIST", lambda p: _yes(p.special_use))
    row("custom keywords kept", lambda p: _yes(p.keywords))
    row("COPYUID order", lambda p: "**reversed**" if p.reorder_copyuid else "as the sources")
    row("Sent folder", lambda p: f'"{p.sent}"')
    row("server files SMTP submissions in Sent", lambda p: "**yes**" if p.files_sent else "no")
    row("labels (All Mail)", lambda p: f'"{p.all_mail}" (partial)' if p.all_mail else "no")
    row("provider's own Outbox", lambda p: f'**"{p.builtin_outbox}"**' if p.builtin_outbox else "no")
    row("IDLE dropped after", lambda p: f"{p.idle_limit / 60:.0f} min" if p.idle_limit else "-")
    row("session dropped after", lambda p: f"{p.session_limit / 3600:.0f} h" if p.session_limit else "-")
    row("APPEND limit", lambda p: f"{p.append_limit:,} B" if p.append_limit else "-")
    row("sending limits", limits)
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--profiles"]:
        print(profiles())
        return
    entries = [json.loads(line) for path in argv for line in Path(path).read_text().splitlines() if line.strip()]
    print(results(entries))


if __name__ == "__main__":
    main(sys.argv[1:])
