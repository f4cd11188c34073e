"""The text setup writes: the config reads back as the values it was rendered from, whatever they are."""

from __future__ import annotations

import tomllib
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agent.config.writer import MentorAnswers, diff, merged, policy_file_name, render_config, render_policy
from agent.rules.policy import Policy

keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
# Any text UTF-8 can hold (no lone surrogates), control characters and DEL included.
text = st.one_of(st.text(st.characters(exclude_categories=["Cs"]), max_size=20), st.sampled_from(["\x7f", "a\x00b"]))
scalars = st.one_of(text, st.integers(-(2**63), 2**63 - 1), st.booleans(), st.lists(text, max_size=3))
tables = st.recursive(
    st.dictionaries(keys, scalars, max_size=4),
    lambda inner: st.dictionaries(keys, inner, min_size=1, max_size=3),
    max_leaves=8,
)


@given(st.dictionaries(keys, st.one_of(scalars, tables), max_size=6))
def test_a_rendered_config_reads_back_as_its_values(data: dict[str, Any]) -> None:
    assert tomllib.loads(render_config(data)) == data  # an empty table too: its header is written


@given(st.dictionaries(keys, scalars), st.dictionaries(keys, st.one_of(scalars, st.none())))
def test_merged_keeps_what_is_not_changed_and_drops_what_is_set_to_none(
    base: dict[str, Any], changes: dict[str, Any]
) -> None:
    out = merged(base, changes)
    for key, value in base.items():
        if key not in changes:
            assert out[key] == value
    for key, value in changes.items():
        assert out.get(key) == value


def test_the_first_policy_is_a_valid_policy_with_its_answers() -> None:
    answers = MentorAnswers(
        "Dr. Zoë O'Brien",
        ("zob@hospital.example.org", "z@x.example"),
        "Europe/Dublin",
        2,
        5,
        ("Mon-Fri 09:00-12:00", "Sat 10:00-11:00"),
    )
    data = tomllib.loads(render_policy(answers, today="2026-12-02"))
    policy = Policy.model_validate(data)
    assert policy.mentor.name == "Dr. Zoë O'Brien" and len(policy.mentor.addresses) == 2
    assert (policy.email.max_per_day, policy.email.max_per_week) == (2, 5)
    assert [w.spec for w in policy.email.send_windows] == ["Mon-Fri 09:00-12:00", "Sat 10:00-11:00"]
    assert policy_file_name(answers.name) == "o-brien.toml"


def test_diff_is_empty_when_nothing_changes() -> None:
    assert diff("a = 1\n", "a = 1\n", "config.toml") == ""
    assert "+a = 2" in diff("a = 1\n", "a = 2\n", "config.toml")
