"""The profile x case suite: fixtures, and a JSON-lines record of each outcome for docs/providers.md.

MENTOR_AGENT_PROVIDERS_REPORT=/tmp/providers.jsonl python3 -m pytest tests/providers
python3 -m tests.providers.report /tmp/providers.jsonl
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent_process import policy_text
from tests.providers.harness import ProviderAgent
from tests.servers.providers import PROFILES, Profile
from tests.servers.providers.fixtures import Stack, provider_dovecots, provider_stack

__all__ = ["provider_dovecots", "provider_stack"]  # the fixtures
REPORT = "MENTOR_AGENT_PROVIDERS_REPORT"


@pytest.fixture
def make_agent(tmp_path: Path, provider_stack: Callable[[Profile], Stack]) -> Iterator[Callable[..., ProviderAgent]]:
    made: list[ProviderAgent] = []

    def make(profile: Profile | str, **smtp: Any) -> ProviderAgent:
        chosen = PROFILES[profile] if isinstance(profile, str) else profile
        stack = provider_stack(chosen)
        root = tmp_path / f"agent{len(made)}"
        root.mkdir()
        agent = ProviderAgent(root, stack.dovecot, stack.user, stack.smtp, stack=stack)
        agent.write_config(**smtp)
        agent.policy(policy_text())
        made.append(agent)
        return agent

    yield make
    for agent in made:
        if agent.process is not None and agent.process.poll() is None:
            agent.stop(signal.SIGKILL)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome: Any = yield
    report: pytest.TestReport = outcome.get_result()
    target = os.environ.get(REPORT)
    callspec = getattr(item, "callspec", None)
    if not target or callspec is None or "profile" not in callspec.params:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        detail = ""
        if (report.longrepr is not None and report.outcome != "passed") or hasattr(report, "wasxfail"):
            text = str(report.longrepr) if report.longrepr is not None else ""
            errors = [line[2:].strip() for line in text.splitlines() if line.startswith("E ")]
            detail = errors[0] if errors else text.splitlines()[-1] if text else ""
        result = (
            "xfail"
            if hasattr(report, "wasxfail") and report.skipped
            else ("XPASS" if hasattr(report, "wasxfail") else report.outcome)
        )
        entry = {
            "case": getattr(item, "originalname", item.name),
            "profile": callspec.params["profile"],
            "outcome": result,
            "detail": detail[:300],
            "seconds": round(report.duration, 1),
        }
        with Path(target).open("a") as out:
            out.write(json.dumps(entry) + "\n")
