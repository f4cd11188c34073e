"""The first run after `setup` without a mentor: an empty policies folder. `check` accepts it, `run` starts,
says how to add a policy and leaves the Outbox alone until one is there; then it paces as ever (real daemon)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli.main import main
from tests.agent_process import MENTOR, OUTBOX, Agent, agent, eventually, mail, policy_text

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


CHEN = "chen@clinic.example"


@pytest.mark.servers
def test_mail_that_waited_for_a_first_policy_is_not_sent_unpaced_when_another_mentors_comes(agent: Agent) -> None:
    """Found by the tester (F1): the first policy saved was another mentor's, and what waited for Dr. Rivera's
    went out at once as mail to no mentor. It stays in the Outbox, the student is told once; Rivera's policy
    (or a flag) later lets it go."""
    (agent.root / "policies" / "rivera.toml").unlink()
    agent.start()
    eventually(lambda: "no policy yet in" in agent.log())
    agent.drop(mail("To Rivera, 1"))
    agent.drop(mail("To Rivera, 2"))
    agent.drop(mail("To a friend", to="friend@else.example"))
    status = ["status", "--config", str(agent.config)]
    assert "waiting for a first policy in" in CliRunner().invoke(main, status).output  # F3: status said nothing
    agent.policy(policy_text(max_per_day=1).replace("Dr. Ana Rivera", "Dr. Chen").replace(MENTOR, CHEN), "chen.toml")
    told = eventually(lambda: [m for m in agent.notices() if "before any policy" in str(m["Subject"])], timeout=15)
    assert len(told) == 1 and "To Rivera, 1" in told[0].get_body().get_content()  # type: ignore[union-attr]
    assert not agent.smtp.messages
    assert sorted(agent.subjects("Outbox")) == ["To Rivera, 1", "To Rivera, 2", "To a friend"]

    def shown() -> str | None:  # the daemon writes what status reads after the pass that told her
        output = CliRunner().invoke(main, status).output
        return output if "first policy" not in output else None

    output = eventually(shown, timeout=10)
    assert "arrived before any policy" in output and "To Rivera, 2" in output
    with agent.dovecot.client(agent.user) as client:  # her say: this one is ordinary mail
        client.select_folder(OUTBOX)
        client.add_flags(client.search(["SUBJECT", "friend"]), [b"\\Flagged"])
    assert agent.smtp.wait_for(1)[0].rcpt_tos == ("friend@else.example",)
    agent.policy(policy_text(max_per_day=1))  # now Rivera's: paced by it, one a day
    agent.smtp.wait_for(2)
    eventually(lambda: agent.subjects("Scheduled") != [])
    assert len(agent.smtp.messages) == 2 and agent.smtp.messages[1].rcpt_tos == (MENTOR,)
    assert agent.stop() == 0


@pytest.mark.servers
def test_a_restart_with_history_never_waits_for_a_first_policy(agent: Agent) -> None:
    """Found by the tester (F2): the only policy file removed while a message waits in Scheduled, then a restart:
    the daemon said "no policy yet" and held it with no notice. The wait is for a fresh install only."""
    agent.policy(policy_text(max_per_day=1))
    agent.start()
    agent.drop(mail("s1"))
    agent.drop(mail("s2"))
    agent.smtp.wait_for(1)
    eventually(lambda: agent.subjects("Scheduled") == ["s2"], timeout=15)
    assert agent.stop() == 0
    (agent.root / "policies" / "rivera.toml").unlink()
    agent.start()
    eventually(lambda: [m for m in agent.notices() if "policy file is gone" in str(m["Subject"])], timeout=15)
    assert "no policy yet" not in agent.log()
    assert agent.subjects("Scheduled") == ["s2"] and len(agent.smtp.messages) == 1
    assert agent.stop() == 0


@pytest.mark.servers
def test_a_policies_folder_made_again_while_waiting_is_still_watched(agent: Agent) -> None:
    """Found by the tester (F3): the folder removed and made again while waiting; a policy saved in the new one
    was never taken in (the watch died with the old folder)."""
    (agent.root / "policies" / "rivera.toml").unlink()
    agent.start()
    eventually(lambda: "no policy yet in" in agent.log())
    (agent.root / "policies").rmdir()
    time.sleep(1.5)  # the watch must notice the folder is gone (no event to wait for: it is the bug)
    (agent.root / "policies").mkdir()
    time.sleep(1.5)
    agent.policy(policy_text(max_per_day=1))
    eventually(lambda: "first policy" in agent.log(), timeout=15)
    assert agent.stop() == 0
