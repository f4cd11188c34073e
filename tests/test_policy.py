"""Policy files: every kind of mistake is caught, named by file, key and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from agent.errors import UserError
from agent.rules.policy import EmailRules, PolicyBook, load_policies, load_policy

GOOD = """\
[mentor]
name = "Dr. Ana Rivera"
addresses = ["arivera@hospital.example.org"]
timezone = "America/Chicago"

[email]
max_per_day = 1
max_per_week = 3
min_gap = "4h"
send_windows = ["Mon-Fri 08:00-17:00"]
max_unanswered = 2
follow_up_after = "5d"
over_limit = "batch"

[meetings]
windows = ["Tue 16:00-17:00", "Thu 07:00-08:00"]
duration = "30m"
"""


def write(tmp_path: Path, text: str, name: str = "rivera.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(UserError) as caught:
        load_policy(write(tmp_path, text))
    return [str(p) for p in caught.value.problems]


def test_the_good_policy_loads_with_its_values(tmp_path: Path) -> None:
    loaded = load_policy(write(tmp_path, GOOD))
    assert loaded.id == "rivera"
    assert loaded.policy.email.min_gap.total_seconds() == 4 * 3600
    assert loaded.policy.mentor.timezone.key == "America/Chicago"
    assert [w.spec for w in loaded.policy.meetings.windows] == ["Tue 16:00-17:00", "Thu 07:00-08:00"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("max_per_day = 1", "max_per_dya = 1"),
            "rivera.toml:7: email.max_per_dya: unknown key (did you mean 'max_per_day'?)",
        ),
        (('min_gap = "4h"', 'min_gap = "4 hours"'), "rivera.toml:9: email.min_gap: '4 hours' is not a duration"),
        (('min_gap = "4h"', "min_gap = 4"), "rivera.toml:9: email.min_gap: write durations as text with a unit"),
        (
            ('timezone = "America/Chicago"', 'timezone = "Chicago"'),
            "rivera.toml:4: mentor.timezone: unknown time zone 'Chicago'",
        ),
        (
            ("Mon-Fri 08:00-17:00", "Mon-Fri 17:00-08:00"),
            "rivera.toml:10: email.send_windows: 'Mon-Fri 17:00-08:00': the end must be after the start",
        ),
        (("Mon-Fri 08:00-17:00", "Mon-Fry 08:00-17:00"), "rivera.toml:10: email.send_windows: 'Fry' is not a day"),
        (
            ('send_windows = ["Mon-Fri 08:00-17:00"]', "send_windows = []"),
            "rivera.toml:10: email.send_windows: give at least one window",
        ),
        (("max_per_week = 3", "max_per_week = 0"), "rivera.toml:8: email.max_per_week: must be at least 1"),
        (("max_per_week = 3", 'max_per_week = "three"'), "rivera.toml:8: email.max_per_week: not a number"),
        (
            ('over_limit = "batch"', 'over_limit = "queue"'),
            "rivera.toml:13: email.over_limit: must be 'delay', 'batch' or 'agenda'",
        ),
        (
            ('addresses = ["arivera@hospital.example.org"]', 'addresses = ["Ana Rivera"]'),
            "rivera.toml:3: mentor.addresses.0: 'Ana Rivera' is not an e-mail address",
        ),
        (('name = "Dr. Ana Rivera"\n', ""), "rivera.toml:1: mentor.name: required but missing"),
        (('duration = "30m"', 'duration = "2h"'), "meetings: duration 2h is longer than every meeting window"),
        (("[email]", "[emial]"), "rivera.toml:6: unknown section [emial] (did you mean [email]?)"),
        (
            ('follow_up_after = "5d"', 'follow_up_after = "0"'),
            "rivera.toml:12: email.follow_up_after: must be longer than 0",
        ),
    ],
)
def test_each_kind_of_mistake_names_file_line_key_and_problem(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    old, new = change
    assert old in GOOD
    found = problems(tmp_path, GOOD.replace(old, new, 1))
    assert any(expected in p for p in found), found
    assert all(p.startswith(str(tmp_path / "rivera.toml")) for p in found)


def test_toml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("max_per_week = 3", "max_per_week = = 3"))
    assert len(found) == 1 and ":8: not valid TOML" in found[0]


def test_two_policies_cannot_claim_the_same_address(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    write(tmp_path, GOOD.replace("Dr. Ana Rivera", "Dr. A. Rivera (clinic)"), name="rivera-clinic.toml")
    with pytest.raises(UserError) as caught:
        load_policies(tmp_path)
    text = str(caught.value)
    assert (
        "rivera.toml" in text
        and "mentor.addresses" in text
        and "arivera@hospital.example.org is already claimed" in text
    )


def test_one_mentor_however_her_address_is_spelled(tmp_path: Path) -> None:
    write(tmp_path, GOOD.replace("arivera@hospital.example.org", "ARivera@Hospitäl.example.org"))
    book = PolicyBook(load_policies(tmp_path))
    for spelling in (
        "arivera@hospitäl.example.org",
        "ARIVERA@HOSPITÄL.EXAMPLE.ORG",
        "arivera@xn--hospitl-bxa.example.org",
    ):
        assert book.for_address(spelling) is not None, spelling
    assert book.for_address("arivera@xn--hospitl-bxa.example.org.") is not None  # the root's dot
    assert book.for_address("arivera@hospital.example.org") is None
    write(tmp_path, GOOD.replace("arivera@hospital.example.org", "arivera@XN--HOSPITL-BXA.example.org"), "dup.toml")
    with pytest.raises(UserError, match="already claimed"):
        load_policies(tmp_path)


def test_all_problems_of_all_files_are_reported_together(tmp_path: Path) -> None:
    write(tmp_path, GOOD.replace("max_per_day = 1", "max_per_day = 0"), name="a.toml")
    write(tmp_path, GOOD.replace("arivera@", "other@").replace('"4h"', '"4x"'), name="b.toml")
    with pytest.raises(UserError) as caught:
        load_policies(tmp_path)
    files = {Path(p.file).name for p in caught.value.problems}
    assert files == {"a.toml", "b.toml"}


def test_shipped_examples_are_valid_and_the_builtin_copy_matches(tmp_path: Path) -> None:
    root = Path(__file__).parent.parent
    names = {p.id for p in load_policies(root / "policies")}
    assert names == {"rivera", "okafor"}
    assert (root / "agent/examples/rivera.toml").read_text() == (root / "policies/rivera.toml").read_text()


# -- mistakes that used to pass (issue 11) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ('send_windows = ["Mon-Fri 08:00-17:00"]', 'send_windows = ["Mon-Fri 08:00-12:00", "Mon 11:00-13:00"]'),
            "rivera.toml:10: email.send_windows: 'Mon-Fri 08:00-12:00' and 'Mon 11:00-13:00' overlap (Mon 11:00-12:00)",
        ),
        (
            (
                'windows = ["Tue 16:00-17:00", "Thu 07:00-08:00"]',
                'windows = ["Tue-Thu 16:00-17:00", "Thu 16:30-18:00"]',
            ),
            "rivera.toml:16: meetings.windows: 'Tue-Thu 16:00-17:00' and 'Thu 16:30-18:00' overlap (Thu 16:30-17:00)",
        ),
        (
            ("max_per_day = 1", "max_per_day = 5"),
            "rivera.toml:8: email.max_per_week: 3 a week is fewer than max_per_day = 5",
        ),
        (('min_gap = "4h"', 'min_gap = "8d"'), "rivera.toml:9: email.min_gap: 8d is longer than a week"),
        (("[mentor]", "[mentr]"), "rivera.toml:1: unknown section [mentr] (did you mean [mentor]?)"),
    ],
)
def test_mistakes_that_used_to_pass_are_refused_in_plain_words(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    old, new = change
    assert old in GOOD
    found = problems(tmp_path, GOOD.replace(old, new, 1))
    assert any(expected in p for p in found), found


def test_a_misspelt_section_is_said_once_not_also_as_missing(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.replace("[mentor]", "[mentr]"))
    assert len(found) == 1, found


def test_windows_that_only_touch_do_not_overlap(tmp_path: Path) -> None:
    text = GOOD.replace(
        'send_windows = ["Mon-Fri 08:00-17:00"]',
        'send_windows = ["Mon-Fri 08:00-12:00", "Mon-Fri 12:00-17:00", "Sat 08:00-24:00"]',
    )
    assert len(load_policy(write(tmp_path, text)).policy.email.send_windows) == 3


def test_a_week_long_gap_and_equal_caps_are_fine(tmp_path: Path) -> None:
    text = GOOD.replace('min_gap = "4h"', 'min_gap = "7d"').replace("max_per_day = 1", "max_per_day = 3")
    loaded = load_policy(write(tmp_path, text))
    assert loaded.policy.email.max_per_day == loaded.policy.email.max_per_week == 3


# -- overlap, against a minute-by-minute oracle -------------------------------------------------------------------

_DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


@st.composite
def _window(draw: st.DrawFn) -> str:
    days = sorted(draw(st.sets(st.integers(0, 6), min_size=1, max_size=7)))
    start = draw(st.integers(0, 24 * 4 - 1))
    end = draw(st.integers(start + 1, 24 * 4))
    return f"{','.join(_DAYS[d] for d in days)} {start // 4:02}:{start % 4 * 15:02}-{end // 4:02}:{end % 4 * 15:02}"


def _minutes_covered(spec: str) -> set[tuple[int, int]]:
    days, hours = spec.split(" ")
    start, end = ((int(t[:2]) * 60 + int(t[3:])) for t in hours.split("-"))
    return {(_DAYS.index(day), minute) for day in days.split(",") for minute in range(start, end)}


@given(st.lists(_window(), min_size=1, max_size=4))
def test_windows_are_refused_exactly_when_some_minute_is_in_two_of_them(specs: list[str]) -> None:
    covered = [_minutes_covered(spec) for spec in specs]
    overlapping = any(covered[i] & covered[j] for i in range(len(specs)) for j in range(i + 1, len(specs)))
    try:
        EmailRules.model_validate({"send_windows": specs})
    except ValidationError as error:
        assert overlapping, error
        assert "overlap" in str(error)
    else:
        assert not overlapping
