"""The first run after `setup` without a mentor: an empty policies folder. `check` accepts it, `run` starts,
says how to add a policy and leaves the Outbox alone until one is there; then it paces as ever (real daemon)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli.main import main
from tests.agent_process import MENTOR, Agent, agent, eventually, mail, policy_text

__all__ = ["agent"]  # the fixture


@pytest.mark.servers
def test_run_waits_for_a_first_policy_then_paces_by_it(agent: Agent) -> None:
    (agent.root / "policies" / "rivera.toml").unlink()
    agent.start()
    said = eventually(lambda: agent.log() if "no policy yet in" in agent.log() else None)
    assert str(agent.root / "policies") in said and "mentor-agent setup --mentor-name" in said
    agent.drop(mail("Before the policy"))  # to the mentor whose policy is not written yet: it waits
    agent.policy(policy_text(max_per_day=1))
    eventually(lambda: "first policy" in agent.log(), timeout=15)
    received = agent.smtp.wait_for(1)
    assert received[0].rcpt_tos == (MENTOR,)
    agent.drop(mail("After the policy"))
    eventually(lambda: agent.subjects("Scheduled") == ["After the policy"])  # 1 a day: the second is held
    assert len(agent.smtp.messages) == 1
    assert agent.stop() == 0


def test_check_accepts_an_empty_policies_folder_and_says_run_waits(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        'policies_dir = "policies"\nstate_dir = "state"\n[student]\nname = "Sam"\naddress = "sam@uni.example"\n'
        'timezone = "Europe/Berlin"\n[imap]\nhost = "127.0.0.1"\nusername = "sam"\npassword_command = "cat pw"\n'
        '[smtp]\nhost = "127.0.0.1"\nusername = "sam"\npassword_command = "cat pw"\n'
    )
    config.chmod(0o600)
    (tmp_path / "policies").mkdir()
    result = CliRunner().invoke(main, ["check", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "0 policies" in result.output
    assert f"no policy yet in {tmp_path / 'policies'}: `run` waits for one" in result.output
