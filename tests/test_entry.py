"""Where the command line starts (agent.cli.entry): modules load with the cyclic collector held (agent.cli.collector)."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import __version__
from agent.cli.collector import collector_held

ROOT = Path(__file__).parents[1]


@pytest.fixture
def collector() -> Iterator[None]:
    """The collector as the test found it, whatever the test does to it: on or off as it was, and nothing of the
    test process frozen (the rest of the suite in this worker collects as it always did)."""
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    gc.enable() if enabled else gc.disable()


@pytest.mark.usefixtures("collector")
def test_the_collector_is_held_inside_and_going_again_after() -> None:
    gc.enable()
    frozen = gc.get_freeze_count()
    with collector_held():
        assert not gc.isenabled()
        made = [[n] for n in range(1000)]  # objects the collector tracks, made while it is held
    assert gc.isenabled()
    assert gc.get_freeze_count() >= frozen + len(made), "what was made while held is frozen"


@pytest.mark.usefixtures("collector")
def test_a_failing_import_still_sets_the_collector_going() -> None:
    gc.enable()
    with pytest.raises(ModuleNotFoundError), collector_held():
        import agent.no_such_module  # type: ignore[import-not-found]  # noqa: F401
    assert gc.isenabled()


@pytest.mark.usefixtures("collector")
def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with collector_held():
        pass
    assert not gc.isenabled()


def test_the_declared_entry_point_and_python_m_agent_both_start_the_commands() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    module, function = scripts["mentor-agent"].split(":")
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    for argv in (
        [sys.executable, "-c", f"from {module} import {function}; {function}()", "--version"],
        [sys.executable, "-m", "agent", "--version"],
    ):
        done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        assert __version__ in done.stdout


def test_a_users_own_pydantic_plugin_setting_is_kept() -> None:
    code = (
        "import os, sys\nfrom agent.cli import entry\nsys.argv = ['mentor-agent', '--version']\n"
        "try:\n    entry.main()\nexcept SystemExit:\n    print(os.environ['PYDANTIC_DISABLE_PLUGINS'])"
    )
    for given, seen in ((None, "__all__"), ("some_plugin", "some_plugin")):
        env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
        if given is not None:
            env["PYDANTIC_DISABLE_PLUGINS"] = given
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.split()[-1] == seen
