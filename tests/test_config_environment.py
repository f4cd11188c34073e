"""Settings from the environment (agent.config.environment): read by pydantic-settings, loaded only when a
``MENTOR_AGENT_*`` variable is set: nested by ``__``, any case, JSON for sections and lists, the file's values
below."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent.config.environment import from_environment, merged
from agent.config.settings import Settings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith("MENTOR_AGENT_"):
            monkeypatch.delenv(name)


def test_nested_keys_in_any_case_over_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MENTOR_AGENT_IMAP__PORT", "993")
    monkeypatch.setenv("mentor_agent_imap__folders__outbox", "To mentors")
    monkeypatch.setenv("MENTOR_AGENT_PASS_THROUGH", "false")
    settings = Settings(imap={"host": "imap.example.edu", "port": 143}, student={"name": "Sam"})
    assert (settings.imap.host, settings.imap.port, settings.imap.folders.outbox) == (
        "imap.example.edu",
        993,
        "To mentors",
    )
    assert settings.pass_through is False
    assert settings.student.name == "Sam"


def test_sections_and_lists_are_json_and_a_deeper_key_wins() -> None:
    environ = {
        "MENTOR_AGENT_CALENDAR__BUSY_ICS": '["/home/sam/busy.ics"]',
        "MENTOR_AGENT_IMAP__FOLDERS": '{"outbox": "X", "scheduled": "Later"}',
        "MENTOR_AGENT_IMAP__FOLDERS__OUTBOX": "Y",
        "MENTOR_AGENT_STATE_DIR": "/var/lib/sam",
    }
    assert from_environment(Settings, environ) == {
        "calendar": {"busy_ics": ["/home/sam/busy.ics"]},
        "imap": {"folders": {"outbox": "Y", "scheduled": "Later"}},
        "state_dir": "/var/lib/sam",
    }


def test_a_variable_that_names_no_setting_is_left_alone_below_it_a_typo_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MENTOR_AGENT_CRASH_AT", "sending")  # the tests' own switch, not a setting
    Settings()
    monkeypatch.setenv("MENTOR_AGENT_IMAP__PROT", "993")
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert [(error["loc"], error["type"]) for error in caught.value.errors()] == [(("imap", "prot"), "extra_forbidden")]


def test_a_list_not_written_as_json_is_a_validation_error_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MENTOR_AGENT_STUDENT__HOURS", "Mon-Fri 09:00-17:00")
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert caught.value.errors()[0]["loc"] == ("student", "hours")


def test_merged_lays_sections_over_each_other_key_by_key() -> None:
    assert merged({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"c": 4}, "e": 5}) == {"a": {"b": 1, "c": 4}, "d": 3, "e": 5}


def test_an_environment_given_replaces_the_process_s(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MENTOR_AGENT_IMAP__HOST", "the-users-own.example")
    assert Settings(environ={}).imap.host == "127.0.0.1"  # the demo's way: the user's settings stay out
    assert Settings(environ={"MENTOR_AGENT_IMAP__PORT": "1993"}).imap.port == 1993


def test_pydantic_settings_is_loaded_only_when_the_environment_sets_something() -> None:
    import os
    import subprocess
    import sys

    probe = (
        "import sys; from agent.config.settings import Settings; Settings(); print('pydantic_settings' in sys.modules)"
    )
    quiet = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    ran = subprocess.run([sys.executable, "-c", probe], env=quiet, capture_output=True, text=True, check=True)
    assert ran.stdout.strip() == "False"
    given = {**quiet, "MENTOR_AGENT_STUDENT__NAME": "Sam"}
    ran = subprocess.run([sys.executable, "-c", probe], env=given, capture_output=True, text=True, check=True)
    assert ran.stdout.strip() == "True"
