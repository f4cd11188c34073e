"""The fault suite: bounded by default (part of the normal test run), longer with ``pytest tests/faults --soak``.

Each test records its figures (tries, survived, lost, duplicated, and what else it measured) with the
``figures`` fixture; they are printed at the end of the run, and appended as JSON lines to the file named by
``--faults-report`` (docs/faults.md is written from such a file).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.agent_process import agent

__all__ = ["agent"]  # the fixture

_RESULTS: list[dict[str, Any]] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("faults", "mentor-agent fault suite")
    group.addoption("--soak", action="store_true", default=False,
                    help="run the fault suite in its long form (hundreds of messages, dozens of kills)")
    group.addoption("--faults-report", default="", help="append each fault test's figures to this JSON-lines file")


@pytest.fixture
def soak(request: pytest.FixtureRequest) -> bool:
    # getoption with a default: when the suite runs from the project root this conftest is not an initial
    # one, so its option may not be registered; then the bounded form runs.
    return bool(request.config.getoption("--soak", default=False))


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[..., None]:
    def record(**values: Any) -> None:
        entry = {"test": request.node.name, "soak": bool(request.config.getoption("--soak", default=False)),
                 **values}
        _RESULTS.append(entry)
        print("FAULTS " + json.dumps(entry))
        target = request.config.getoption("--faults-report", default="")
        if target:
            with Path(target).open("a") as out:
                out.write(json.dumps(entry) + "\n")

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _RESULTS:
        return
    terminalreporter.section("fault suite figures")
    for entry in _RESULTS:
        terminalreporter.write_line(json.dumps(entry))
