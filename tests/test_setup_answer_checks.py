"""The checks `mentor-agent setup` runs on an answer before it goes on (pure: no terminal, no server)."""

from __future__ import annotations

import pytest

from agent.cli.answer_checks import address_problem, bare_address, zone_problem


@pytest.mark.parametrize(
    "typed",
    ["sam@uni.example", "a.b+c@med.example.edu", "Sam.Patel@Uni-Klinik.de", "sam@müller.de", "Sam <sam@uni.example>"],
)
def test_addresses_a_person_types_or_pastes_are_taken(typed: str) -> None:
    assert address_problem(typed) is None


@pytest.mark.parametrize(
    "typed",
    ["sam@@uni.example", "sam@uni..example", "sam@uni.example,", "sam@uni", "sam.uni.example", "sam @uni.example",
     "sam@.uni.example", "sam@uni.example.", "x@localhost", "Sam <sam@uni>"],
)  # fmt: skip
def test_addresses_with_a_typo_are_refused_with_what_was_typed(typed: str) -> None:
    assert address_problem(typed) == f"{typed!r} is not an e-mail address"


def test_the_address_in_a_pasted_name_and_address() -> None:
    assert bare_address(" Dr. Ana Rivera <arivera@hospital.example.org> ") == "arivera@hospital.example.org"
    assert bare_address("arivera@hospital.example.org") == "arivera@hospital.example.org"


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("America/New York", "America/New_York"),
        ("america/chicago", "America/Chicago"),
        ("europe/berlin", "Europe/Berlin"),
    ],
)
def test_a_time_zone_slip_names_the_zone_meant(typed: str, meant: str) -> None:
    problem = zone_problem(typed)
    assert problem is not None and problem.endswith(f"did you mean {meant}?")


def test_an_unknown_time_zone_suggests_nothing_it_cannot_stand_behind() -> None:
    problem = zone_problem("Mars/Olympus")
    assert problem is not None and "did you mean" not in problem
    assert zone_problem("America/New_York") is None
