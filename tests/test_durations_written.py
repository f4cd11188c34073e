"""Durations shown as the person wrote them: "36h" in a policy is "36 hours" in `status`, in the agreement's
text and its notices, never "2 days"; the unit the mentor wrote is the one written into her policy file."""

from __future__ import annotations

import copy
import pickle
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.config.policy_edit import edited
from agent.rules.agreement import read_value, standards, toml_value
from agent.rules.answer_times import summarize, wording
from agent.rules.durations import format_duration, parse_duration, say_duration
from agent.rules.policy import Policy, load_policy

ROOT = Path(__file__).resolve().parent.parent
RIVERA = (ROOT / "policies" / "rivera.toml").read_text(encoding="utf-8")


def rivera(**agreement: str) -> Policy:
    text = RIVERA
    for key, value in agreement.items():
        start = text.index(f"{key} = ")
        end = text.index("\n", start)
        text = text[:start] + f'{key} = "{value}"' + text[end:]
    return Policy.model_validate(tomllib.loads(text))


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ("36h", "36 hours"),
        ("48h", "48 hours"),
        ("2d", "2 days"),
        ("14d", "14 days"),
        ("2w", "2 weeks"),
        ("90m", "90 minutes"),
        ("1h30m", "1 hour 30 minutes"),
        ("1h", "1 hour"),
    ],
)
def test_a_policy_duration_is_said_in_the_unit_it_was_written(spec: str, said: str) -> None:
    value = parse_duration(spec)
    assert say_duration(value) == said
    assert format_duration(value) == spec  # and written back as it was
    assert value == parse_duration(spec.replace("h", " h"))  # still the same length of time


def test_status_says_the_hoped_answer_time_as_the_policy_writes_it() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    policy = rivera(mentor_answers_within="48h", student_answers_within="36h")
    assert "hoped for: within 48 hours" in wording(
        "x", summarize([], now, policy.agreement.mentor_answers_within), agreed=False
    )
    assert "agreed: within 36 hours" in wording(
        "you", summarize([], now, policy.agreement.student_answers_within), agreed=True
    )


def test_the_agreement_says_durations_as_the_policy_writes_them() -> None:
    lines = {s.key: s.text for s in standards(rivera(mentor_answers_within="48h", cancel_notice="36h"))}
    assert lines["mentor_answers_within"] == "48 hours" and lines["cancel_notice"] == "36 hours"
    assert lines["review_every"] == "26 weeks"


@pytest.mark.parametrize(
    ("hers", "spec"),
    [("48 hours", "48h"), ("2 days", "2d"), ("a week", "1w"), ("45 min", "45m"), ("1 hour 30 minutes", "1h30m")],
)
def test_her_value_goes_into_the_policy_in_her_unit(hers: str, spec: str) -> None:
    value = read_value("duration", hers)
    assert toml_value("duration", value) == spec
    text = edited(RIVERA, {"agreement.cancel_notice": toml_value("duration", value)}, datetime(2026, 12, 1).date(), 2)
    assert tomllib.loads(text)["agreement"]["cancel_notice"] == spec


def test_a_written_duration_survives_copies_and_is_a_plain_length_in_sums() -> None:
    value = parse_duration("36h")
    assert say_duration(copy.deepcopy(value)) == "36 hours" == say_duration(pickle.loads(pickle.dumps(value)))
    assert value + timedelta(hours=12) == timedelta(days=2) and say_duration(value * 2) == "3 days"
    loaded = load_policy(ROOT / "policies" / "rivera.toml").policy
    assert loaded.model_dump(mode="json")["agreement"]["agenda_ahead"] == "24h"
