"""The Send and star doors behind the Gmail emulation (labels, Sent filed by Google's SMTP, [Gmail]/Drafts): a
message to a mentor reaches her once, with one copy in [Gmail]/Sent Mail."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import pytest

from tests.agent_process import MENTOR, STUDENT, eventually, mail
from tests.servers import free_port, wait_for_port
from tests.servers.providers.fixtures import provider_dovecots, provider_stack
from tests.test_provider_daemon import ProviderAgent, behind

__all__ = ["behind", "provider_dovecots", "provider_stack"]  # the fixtures
pytestmark = pytest.mark.servers


def test_msmtp_through_the_agent_on_gmail(behind: Callable[[str], ProviderAgent]) -> None:
    msmtp = shutil.which("msmtp")
    if msmtp is None:
        pytest.skip("msmtp is not installed")
    agent = behind("gmail")
    port = free_port()
    with agent.config.open("a") as out:
        out.write(f"\n[submission]\nport = {port}\n")
    agent.start()
    wait_for_port(port)
    secret = (agent.root / "state" / "submission-password").read_text().strip()
    rc = agent.root / "msmtprc"
    rc.write_text(
        f"host 127.0.0.1\nport {port}\nauth plain\nuser mentor-agent\npassword {secret}\ntls off\nfrom {STUDENT}\n"
    )
    rc.chmod(0o600)
    subprocess.run([msmtp, "-C", str(rc), "-t"], input=mail("Via msmtp on Gmail"), check=True, timeout=30)
    assert agent.smtp.wait_for(1)[0].rcpt_tos == (MENTOR,)
    eventually(lambda: agent.sent() == ["Via msmtp on Gmail"])
    assert len(agent.smtp.messages) == 1 and agent.folder_raw("Outbox") == {}


def test_a_starred_draft_on_gmail(behind: Callable[[str], ProviderAgent]) -> None:
    agent = behind("gmail")
    with agent.config.open("a") as out:
        out.write("\n[drafts]\ntake_flagged = true\nsettle = 0\n")
    agent.start()
    agent.dovecot.append(agent.user, "[Gmail]/Drafts", mail("Starred on Gmail"), ("\\Draft", "\\Flagged"))
    assert agent.smtp.wait_for(1)[0].rcpt_tos == (MENTOR,)
    eventually(lambda: agent.sent() == ["Starred on Gmail"])
    assert agent.dovecot.messages(agent.user, "[Gmail]/Drafts") == {}
    assert len(agent.smtp.messages) == 1
