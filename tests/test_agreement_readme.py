"""The guide's "Making the agreement" (docs/agreement.md) shows what the code writes: the proposal (its console block is run by
tests/test_readme.py) and the notice of a mentor's changed values (checked here)."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from agent.reconcile.agreement import answer_notice
from agent.rules.agreement import standards, standards_json
from agent.rules.agreement_answer import read_answer
from agent.rules.policy import load_policy
from agent.store.agreements import Proposal

ROOT = Path(__file__).resolve().parent.parent


def test_the_guide_notice_is_the_one_the_code_writes() -> None:
    section = (ROOT / "docs" / "agreement.md").read_text(encoding="utf-8")
    shown = re.search(r"```text\n(Subject: \[mentor-agent\].*?)```", section, re.DOTALL)
    assert shown is not None
    loaded = load_policy(ROOT / "policies" / "rivera.toml")
    loaded = type(loaded)(loaded.id, Path("policies/rivera.toml"), loaded.policy)  # as the README names it
    zone = ZoneInfo("America/New_York")
    proposed = standards(loaded.policy)
    proposal = Proposal(
        "<p@x>", "rivera", 1, datetime(2026, 11, 23, 9, 5, tzinfo=zone), standards_json(proposed),
        None, None, None, {}, [], None,
    )  # fmt: skip
    said = "Dear Sam, happy with this, two changes:\n\n1. 2\n3. Mon-Thu 09:00-16:00\n"
    answer = read_answer(said, proposed, names=(loaded.policy.mentor.name, "Sam Patel"))  # as the daemon reads
    title, lines = answer_notice(loaded, proposal, answer, zone)
    assert shown.group(1) == f"Subject: [mentor-agent] {title}\n\n" + "\n\n".join(lines) + "\n"
