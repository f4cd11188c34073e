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


@pytest.fixture
def soak(request: pytest.FixtureRequest) -> bool:
    # The option is registered in tests/conftest.py, so that it works from the project root too.
    return bool(request.config.getoption("--soak", default=False))


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[..., None]:
    def record(**values: Any) -> None:
        entry = {"test": request.node.name, "soak": bool(request.config.getoption("--soak", default=False)), **values}
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
