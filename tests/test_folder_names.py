"""`agree` and `cancel` name the student's real Outbox folder ("Mentor Outbox" here), never "the Outbox"
(real Dovecot and daemon)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from agent.cli.main import main
from agent.store.status import short_id
from tests.agent_process import OUTBOX, Agent, agent, closed_window, eventually, mail, parse, policy_text

__all__ = ["agent"]
pytestmark = pytest.mark.servers


def cli(agent: Agent, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*args, "--config", str(agent.config)])
    return result.exit_code, result.stdout + result.stderr


def test_agree_and_cancel_name_the_outbox_folder_as_it_is_called(agent: Agent) -> None:
    agent.policy(policy_text(windows=closed_window()))  # a message waits in Scheduled
    agent.start()
    raw = mail("Question about the elective")
    agent.drop(raw)
    eventually(lambda: agent.subjects("Scheduled") == ["Question about the elective"], timeout=20)
    code, out = cli(agent, "cancel", short_id(str(parse(raw)["Message-ID"])))
    assert code == 0, out
    assert f"move it to {OUTBOX} to send it after all" in out and "the Outbox" not in out
    code, out = cli(agent, "agree", "rivera")
    assert code == 0, out
    assert f"then move it to {OUTBOX}:" in out and "the Outbox" not in out
    code, out = cli(agent, "agree", "rivera")
    assert code == 1 and f"(in Drafts, {OUTBOX} or sent)" in out, out
