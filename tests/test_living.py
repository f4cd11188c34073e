"""Living with the daemon: status, release/cancel from a terminal, live policy edits, refusing unsafe secrets."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from agent.cli.main import main
from tests.agent_process import MENTOR, Agent, agent, eventually, mail, parse, policy_text

__all__ = ["agent"]
pytestmark = pytest.mark.servers


def cli(agent: Agent, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [*args, "--config", str(agent.config)], env={"NO_COLOR": "1"})
    return result.exit_code, result.stdout, result.stderr


def waiting(agent: Agent) -> list[dict[str, str]]:
    """What status lists as waiting, once the daemon has decided it (a reason is recorded)."""

    def decided() -> list[dict[str, str]] | None:
        code, out, _ = cli(agent, "status", "--json")
        assert code == 0
        rows: list[dict[str, str]] = json.loads(out)["mentors"][0]["waiting"]
        return rows if rows and all(r["reason"] and r["state"] == "scheduled" for r in rows) else None

    return eventually(decided)


def held_id(agent: Agent) -> str:
    rows = waiting(agent)
    assert len(rows) == 1
    return str(rows[0]["id"])


def test_status_shows_limits_and_what_waits_as_json_and_as_a_table(agent: Agent) -> None:
    agent.policy(policy_text(max_per_day=1))
    agent.start()
    agent.drop(mail("first"))
    agent.smtp.wait_for(1)
    agent.drop(mail("second, held"))
    eventually(lambda: agent.subjects("Scheduled") == ["second, held"])
    waiting(agent)
    code, out, _ = cli(agent, "status", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["daemon"]["connected"] == "yes"
    rivera = data["mentors"][0]
    assert rivera["name"] == "Dr. Ana Rivera"
    assert rivera["today"] == {"sent": 1, "limit": 1}
    assert rivera["weeks"][-1]["sent"] == 1 and len(rivera["weeks"]) == 8
    assert [w["subject"] for w in rivera["waiting"]] == ["second, held"]
    assert "1 a day" in rivera["waiting"][0]["reason"]
    code, table, _ = cli(agent, "status")
    assert code == 0
    assert "daemon: connected" in table and "today 1/1" in table and "second, held" in table
    assert "\033[" not in table  # plain when not a terminal


def test_release_from_the_command_line_sends_now(agent: Agent) -> None:
    agent.policy(policy_text(max_per_day=1))
    agent.start()
    agent.drop(mail("first"))
    agent.smtp.wait_for(1)
    agent.drop(mail("please now"))
    eventually(lambda: agent.subjects("Scheduled") == ["please now"])
    code, out, err = cli(agent, "release", held_id(agent))
    assert code == 0, err
    assert "released" in out
    assert parse(agent.smtp.wait_for(2)[1].content)["Subject"] == "please now"


def test_cancel_from_the_command_line(agent: Agent) -> None:
    agent.policy(policy_text(min_gap="5s"))
    agent.start()
    agent.drop(mail("first"))
    agent.smtp.wait_for(1)
    agent.drop(mail("not after all"))
    eventually(lambda: agent.subjects("Scheduled") == ["not after all"])
    code, out, err = cli(agent, "cancel", held_id(agent))
    assert code == 0, err
    assert "cancelled" in out
    time.sleep(6)
    assert len(agent.smtp.messages) == 1
    code, _, err = cli(agent, "cancel", "ffffffff")
    assert code == 1 and "no held message" in err


def test_a_looser_policy_saved_while_running_releases_held_mail(agent: Agent) -> None:
    agent.policy(policy_text(max_per_day=1))
    agent.start()
    agent.drop(mail("first"))
    agent.smtp.wait_for(1)
    agent.drop(mail("second"))
    eventually(lambda: agent.subjects("Scheduled") == ["second"])
    agent.policy(policy_text(max_per_day=2))
    received = agent.smtp.wait_for(2, timeout=15)
    assert parse(received[1].content)["Subject"] == "second"


def test_a_broken_edit_keeps_the_last_good_policy_and_tells_the_student_once(agent: Agent) -> None:
    agent.policy(policy_text(max_per_day=1))
    agent.start()
    agent.policy(policy_text(max_per_day=1).replace("max_per_day", "max_per_dya"))
    notice = eventually(lambda: [n for n in agent.notices() if "Policy not taken in" in str(n["Subject"])])[0]
    body = notice.get_content()
    assert "rivera.toml" in body and "email.max_per_dya: unknown key" in body
    agent.drop(mail("first"))
    agent.smtp.wait_for(1)
    agent.drop(mail("second"))  # the last good policy (1 a day) still holds it
    eventually(lambda: agent.subjects("Scheduled") == ["second"])
    time.sleep(1)
    assert sum("Policy not taken in" in str(n["Subject"]) for n in agent.notices()) == 1
    assert len(agent.smtp.messages) == 1


def test_sighup_reloads_policies(agent: Agent) -> None:
    import signal

    agent.policy(policy_text(max_per_day=1))
    agent.start()
    agent.drop(mail("first"))
    agent.smtp.wait_for(1)
    agent.drop(mail("second"))
    eventually(lambda: agent.subjects("Scheduled") == ["second"])
    agent.policy(policy_text(max_per_day=3))
    assert agent.process is not None
    agent.process.send_signal(signal.SIGHUP)
    assert agent.smtp.wait_for(2, timeout=15)[1].rcpt_tos == (MENTOR,)


def test_a_config_with_a_password_readable_by_others_is_refused(agent: Agent) -> None:
    agent.config.chmod(0o644)
    result = subprocess.run(
        [sys.executable, "-m", "agent", "run", "--config", str(agent.config)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=agent.root,
        check=False,
    )
    assert result.returncode != 0
    assert re.search(r"readable by group or others \(mode 0644\)", result.stderr), result.stderr
    assert agent.user.password not in result.stderr + result.stdout
