"""Shared test set-up: Hypothesis profiles and the real-server fixtures."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=60, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
from tests.bytecode import use_compiled_agent  # noqa: E402
from tests.servers.fixtures import *  # noqa: E402, F403


@pytest.fixture(autouse=True)
def _secrets_of_this_test_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's logs are redacted of the secrets it registered itself, not of those an earlier test in the same
    worker did: a one-letter client secret ("s", tests/test_setup_answers.py) turned every "s" in later tests' log
    lines into "***" (test_sdnotify failed so, depending on which worker ran what)."""
    from agent import logs

    monkeypatch.setattr(logs, "_secrets", type(logs._secrets)())


def pytest_configure(config: pytest.Config) -> None:
    """Once, before the workers start (they inherit it): the daemons the tests start read compiled bytecode."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        use_compiled_agent()


def pytest_addoption(parser: pytest.Parser) -> None:
    """The fault suite's options, here so that they work from the project root as well as from tests/faults."""
    group = parser.getgroup("faults", "mentor-agent fault suite")
    group.addoption(
        "--soak",
        action="store_true",
        default=False,
        help="run the fault suite in its long form (hundreds of messages, dozens of kills)",
    )
    group.addoption("--faults-report", default="", help="append each fault test's figures to this JSON-lines file")
