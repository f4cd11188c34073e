"""A mail program's own Sent copy of what it handed to the submission door is left in Sent once, never twice
(hostile round on issue 22): neomutt's real bytes (sent with ``-b``: no Bcc on the wire, its Fcc copy keeps the Bcc
right after To) while held and filed late; at Gmail, the early copy taken out goes to Trash, not only off the Sent
label (it would stay in All Mail, a second copy). Real daemon, Dovecot and the Gmail emulation."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.agent_process import MENTOR, STUDENT, eventually, mail, policy_text
from tests.servers import wait_for_port
from tests.servers.providers.fixtures import provider_dovecots, provider_stack
from tests.test_doors_paced_on_providers import copies, open_door
from tests.test_provider_daemon import ProviderAgent, behind

__all__ = ["behind", "provider_dovecots", "provider_stack"]  # the fixtures
pytestmark = [pytest.mark.servers, pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")]
HERE = Path(__file__).parent / "data" / "neomutt_bcc"
DEAN = "dean@med.example.edu"


def _crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def submitting(agent: ProviderAgent) -> Callable[[bytes, list[str]], None]:
    """The submission door opened (before start); returns how to submit through it (after start)."""
    open_door(agent, "msmtp")
    port = int(agent.config.read_text().split("[submission]\nport = ")[1].split("\n")[0])

    def submit(raw: bytes, rcpt: list[str]) -> None:
        wait_for_port(port)
        secret = (agent.root / "state" / "submission-password").read_text().strip()
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
            client.login("mentor-agent", secret)
            client.sendmail(STUDENT, rcpt, raw)

    return submit


def file_in_sent(agent: ProviderAgent, raw: bytes) -> None:
    with agent.stack.client() as client:
        client.append(agent.stack.profile.sent, raw, flags=("\\Seen",))


@pytest.mark.parametrize("name", ["dovecot", "gmail"])
def test_neomutts_fcc_copy_of_a_bcc_message_filed_late_leaves_one_copy_in_sent(
    behind: Callable[[str], ProviderAgent], name: str
) -> None:
    agent = behind(name)
    submit = submitting(agent)
    agent.start()
    submit(_crlf((HERE / "wire.eml").read_bytes()), [MENTOR, DEAN])
    agent.smtp.wait_for(1)
    eventually(lambda: copies(agent, agent.stack.profile.sent) == ["Bcc test"], timeout=15)
    file_in_sent(agent, _crlf((HERE / "fcc.eml").read_bytes()))
    # Sent is not watched: the daemon looks again on its own in the minute after a submission (nothing else wakes it)
    eventually(lambda: "copy in Sent taken out" in agent.log(), timeout=15)
    assert copies(agent, agent.stack.profile.sent) == ["Bcc test"]


@pytest.mark.parametrize("name", ["dovecot", "gmail"])
def test_neomutts_fcc_copy_of_a_held_bcc_message_leaves_sent_until_it_goes(
    behind: Callable[[str], ProviderAgent], name: str
) -> None:
    agent = behind(name)
    agent.policy(policy_text(min_gap="1h"))
    submit = submitting(agent)
    agent.start()
    submit(mail("Goes now"), [MENTOR])
    agent.smtp.wait_for(1)
    submit(_crlf((HERE / "wire.eml").read_bytes()), [MENTOR, DEAN])
    file_in_sent(agent, _crlf((HERE / "fcc.eml").read_bytes()))
    eventually(lambda: agent.subjects("Scheduled") == ["Bcc test"], timeout=15)
    eventually(lambda: copies(agent, agent.stack.profile.sent) == ["Goes now"], timeout=15)
    if agent.stack.profile.all_mail:
        # The Gmail stand-in carries the copy's MOVE to Trash out in steps (see the next test): read once it is over.
        all_mail = agent.stack.profile.all_mail
        eventually(lambda: copies(agent, all_mail).count("Bcc test") == 1, timeout=15)
        assert copies(agent, all_mail).count("Bcc test") == 1, "the held one only"


def test_an_early_copy_taken_out_of_sent_at_gmail_is_not_left_in_all_mail(
    behind: Callable[[str], ProviderAgent],
) -> None:
    agent = behind("gmail")
    agent.policy(policy_text(min_gap="1h"))
    submit = submitting(agent)
    agent.start()
    submit(mail("Goes now"), [MENTOR])
    agent.smtp.wait_for(1)
    raw = mail("Held")
    submit(raw, [MENTOR])
    file_in_sent(agent, b"X-Mozilla-Status: 0001\r\nX-Mozilla-Status2: 00000000\r\n" + raw)  # the program's copy
    eventually(lambda: agent.subjects("Scheduled") == ["Held"], timeout=15)
    eventually(lambda: "Held" not in copies(agent, agent.stack.profile.sent), timeout=15)
    # The copy leaves Sent for Trash in one MOVE, which the Gmail stand-in carries out in steps: All Mail is read
    # once that is over (two CI runs read it in between and saw both copies)
    eventually(lambda: copies(agent, "[Gmail]/All Mail") == ["Goes now", "Held"], timeout=15)
    assert copies(agent, "[Gmail]/All Mail") == ["Goes now", "Held"], "each once in All Mail"
