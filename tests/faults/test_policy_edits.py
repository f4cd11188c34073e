"""Broken edits of a policy file while the daemon runs: each is rejected with a notice naming the file and the
key, and the last good policy stays in force — proved by a message whose fate depends on it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.agent_process import MENTOR, Agent, closed_window, eventually, mail, policy_text
from tests.faults.accounting import folder_subjects

pytestmark = pytest.mark.servers

# The last good policy holds mail to the mentor (one minute a week); every broken edit would send it at once
# if it were taken in, even in part (open windows), and carries one mistake: (what to write, key the notice names).
HOLDING = policy_text(windows=closed_window())
OPEN = policy_text()
BREAKAGES: list[tuple[str, str, str]] = [
    ("max_per_day = 50", "max_per_day = -1", "max_per_day"),
    ("max_per_day = 50", 'max_per_day = "many"', "max_per_day"),
    ('min_gap = "0"', 'min_gap = "soon"', "min_gap"),
    ("send_windows = [", 'send_windows = ["Someday 25:00-26:00", ', "send_windows"),
    ('timezone = "America/Chicago"', 'timezone = "Mars/Olympus_Mons"', "timezone"),
    ("max_per_day = 50", "max_per_day = 50\nmax_per_dya = 3", "max_per_dya"),
    ('over_limit = "delay"', 'over_limit = "explode"', "over_limit"),
    ('addresses = ["arivera@hospital.example.org"]', 'addresses = ["not an address"]', "addresses"),
    ('follow_up_after = "7d"', 'follow_up_after = "-5d"', "follow_up_after"),
    ("max_unanswered = 50", "max_unanswered = 1.5", "max_unanswered"),
    ('name = "Dr. Ana Rivera"\n', "", "name"),
    ("[email]", "[emial]", "emial"),
    # Not TOML at all (a duplicate key): tomllib names no key, so the notice names the file and the line.
    ("max_per_week = 100", "max_per_week = 100\nmax_per_week = 7", "rivera.toml:10"),
    ('pronoun = "she"', 'pronoun = "it"', "pronoun"),
    ('timezone = "America/Chicago"', 'timezone = ""', "timezone"),  # (max_per_day = 1e9 is valid: 10⁹)
]


def broken_edit(n: int) -> tuple[str, str]:
    """The n-th broken file (a unique text each time: an identical one is only reported once) and its key."""
    old, new, key = BREAKAGES[n % len(BREAKAGES)]
    assert old in OPEN, old
    return OPEN.replace(old, new, 1) + f"# edit {n}\n", key


def test_broken_policy_edits_are_rejected_and_the_last_good_one_stays(
    agent: Agent, soak: bool, figures: Callable[..., Any]
) -> None:
    edits = 50 if soak else 10
    agent.policy(HOLDING)
    agent.start()
    path = agent.root / "policies" / "rivera.toml"
    rejected = named_key = held = 0
    misses: list[str] = []
    probes: list[str] = []
    for n in range(edits):
        text, key = broken_edit(n)
        count = len(_rejections(agent))
        path.write_text(text)
        notices = eventually(lambda c=count: _rejections(agent)[c:] or None, timeout=15)  # type: ignore[misc]
        body = notices[0]
        rejected += 1
        if "rivera.toml" in body and key in body:
            named_key += 1
        else:
            misses.append(f"edit {n} ({key}): {body[:300]}")
        probe = f"probe-{n:02d}"
        probes.append(probe)
        agent.drop(mail(probe, to=MENTOR))
        eventually(lambda p=probe: p in folder_subjects(agent, "Scheduled"), timeout=15)  # type: ignore[misc]
        held += 1
        assert agent.smtp.messages == [], f"edit {n} ({key}) was taken in: mail went out"
    # And the daemon still reads policies: a good edit releases every probe.
    path.write_text(OPEN)
    agent.smtp.wait_for(len(probes), timeout=60)
    time.sleep(0.5)
    figures(
        tries=edits,
        rejected=rejected,
        notice_names_file_and_key=named_key,
        last_good_kept=held,
        survived=held,
        lost=0,
        duplicated=len(agent.smtp.messages) - len(probes),
        misses=misses,
    )
    assert not agent.process_ended()
    assert misses == [], "\n".join(misses)
    assert len(agent.smtp.messages) == len(probes)


def _rejections(agent: Agent) -> list[str]:
    return [
        str(n["Subject"]) + "\n" + n.get_content()
        for n in agent.notices()
        if "Policy not taken in" in str(n["Subject"])
    ]
