"""The real daemon behind each provider emulation (tests/servers/providers): the daemon-side cases of issue 12.

The profile × case suite with the table in docs/providers.md is tests/test_provider_suite.py (another file);
these are the cases that needed a change in the daemon, run on every profile.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.agent_process import MENTOR, OUTBOX, Agent, eventually, mail, parse, policy_text
from tests.servers.providers import PROFILES, Limits
from tests.servers.providers.fixtures import Stack, provider_dovecots, provider_stack

__all__ = ["provider_dovecots", "provider_stack"]  # the fixtures
pytestmark = pytest.mark.servers
NAMES = ["gmail", "microsoft365", "icloud", "yahoo", "fastmail"]


class ProviderAgent(Agent):
    stack: Stack

    def sent(self) -> list[str]:
        raws = self.dovecot.messages(self.user, self.stack.profile.sent)
        return sorted(str(parse(raw)["Subject"]) for raw in raws.values())


@pytest.fixture
def behind(tmp_path: Path, provider_stack: Callable[..., Stack]) -> Iterator[Callable[[str], ProviderAgent]]:
    made: list[ProviderAgent] = []

    def make(name: str) -> ProviderAgent:
        stack = provider_stack(PROFILES[name])
        agent = ProviderAgent(tmp_path / name, stack.dovecot, stack.user, stack.smtp)
        agent.stack = stack
        agent.root.mkdir()
        agent.write_config()
        text = agent.config.read_text()
        text = text.replace(f"port = {stack.dovecot.port}\n", f"port = {stack.proxy.port}\n", 1)
        agent.config.write_text(text.replace('file_in_sent = "always"', 'file_in_sent = "auto"'))
        agent.policy(policy_text())
        made.append(agent)
        return agent

    yield make
    for agent in made:
        agent.end()


@pytest.mark.parametrize("name", NAMES)
def test_messages_dropped_together_go_once_each_with_their_own_envelope_and_one_copy_in_sent(
    behind: Callable[[str], ProviderAgent],
    name: str,
) -> None:
    agent = behind(name)
    subjects = [f"{name} {n}" for n in range(4)]
    for n, subject in enumerate(subjects):
        agent.drop(mail(subject, to=MENTOR if n == 0 else f"friend{n}@example.org"))
    agent.start()
    agent.smtp.wait_for(4, timeout=30)
    eventually(lambda: agent.sent() == sorted(subjects), timeout=30)
    eventually(lambda: agent.folder_raw("Outbox") == {} and agent.folder_raw("Sending") == {}, timeout=20)
    time.sleep(1)
    got = sorted(str(parse(r.content)["Subject"]) for r in agent.smtp.messages)
    assert got == sorted(subjects), "each exactly once"
    for received in agent.smtp.messages:
        assert list(received.rcpt_tos) == [str(parse(received.content)["To"])], "another message's envelope"
    assert agent.sent() == sorted(subjects), "one copy each in Sent, never two, never none"
    if agent.stack.profile.builtin_outbox:
        assert agent.stack.profile.builtin_outbox != OUTBOX


@pytest.mark.parametrize("name", NAMES)
def test_a_token_expiry_bye_is_answered_by_a_fresh_login_and_nothing_is_missed(
    behind: Callable[[str], ProviderAgent],
    name: str,
) -> None:
    """imapsync #250: `* BYE ... AccessTokenExpired` in the middle of a session (every session at once here)."""
    agent = behind(name)
    counter = agent.root / "token-runs"
    text = agent.config.read_text()
    password = agent.user.password
    agent.config.write_text(
        text.replace(
            f'password = "{password}"\n', f"password_command = \"sh -c 'echo run >> {counter}; echo {password}'\"\n", 1
        )
    )
    agent.start()
    runs = len(counter.read_text().splitlines())
    assert agent.stack.proxy.expire_token() >= 1
    agent.drop(mail("while the token ran out", to="friend@example.org"))  # dropped during the reconnect
    received = agent.smtp.wait_for(1, timeout=20)
    assert str(parse(received[0].content)["Subject"]) == "while the token ran out"
    assert len(counter.read_text().splitlines()) > runs, "a fresh secret was fetched for the new session"
    assert "AccessTokenExpired" in agent.log()


# -- Gmail's labels ------------------------------------------------------------------------------------------------
def _through_proxy(agent: ProviderAgent, folder: str, raw: bytes) -> None:
    """APPEND as the student's mail program does, through the provider (at Gmail it also shows in All Mail)."""
    with agent.stack.client() as client:
        client.append(folder, raw)


def test_gmail_a_message_removed_from_scheduled_is_cancelled_though_it_stays_in_all_mail(
    behind: Callable[[str], ProviderAgent],
) -> None:
    agent = behind("gmail")
    agent.policy(policy_text(min_gap="30s"))
    agent.start()
    _through_proxy(agent, OUTBOX, mail("first"))
    agent.smtp.wait_for(1)
    _through_proxy(agent, OUTBOX, mail("changed my mind"))
    eventually(lambda: agent.subjects("Scheduled") == ["changed my mind"], timeout=15)
    with agent.stack.client() as client:  # the student removes it from Scheduled: the label goes
        client.select_folder("Scheduled")
        client.delete_messages(client.search())
        client.expunge()
    all_mail = [str(parse(raw)["Subject"]) for raw in agent.dovecot.messages(agent.user, "[Gmail]/All Mail").values()]
    assert "changed my mind" in all_mail, "still in All Mail, as at Gmail"
    eventually(lambda: "cancelled" in agent.log(), timeout=15)
    time.sleep(1)
    assert [str(parse(r.content)["Subject"]) for r in agent.smtp.messages] == ["first"]


def test_gmail_the_agents_own_copy_goes_to_trash_not_to_an_unlabelled_all_mail_copy(
    behind: Callable[[str], ProviderAgent],
) -> None:
    """Gmail files the submission in Sent itself; the agent's copy in Sending must then really go: an EXPUNGE in
    a label folder would leave it in All Mail with no label. Elsewhere it is simply expunged."""
    agent = behind("gmail")
    agent.drop(mail("labels", to="friend@example.org"))
    agent.start()
    agent.smtp.wait_for(1)
    eventually(lambda: agent.folder_raw("Sending") == {}, timeout=15)
    trash = [str(parse(raw)["Subject"]) for raw in agent.dovecot.messages(agent.user, "[Gmail]/Trash").values()]
    assert trash == ["labels"]
    assert agent.sent() == ["labels"]


def test_a_backlog_never_trips_the_providers_per_minute_limit(behind: Callable[[str], ProviderAgent]) -> None:
    """Exchange Online refuses the 31st message in a minute (here the 3rd: the emulation's limit scaled down,
    and the agent told the same number with ``max_per_minute``)."""
    agent = behind("microsoft365")
    agent.stack.smtp.profile = agent.stack.profile.but(limits=Limits(per_minute=2))
    agent.config.write_text(agent.config.read_text().replace("[smtp]\n", "[smtp]\nmax_per_minute = 2\n", 1))
    subjects = [f"backlog {n}" for n in range(3)]
    for n, subject in enumerate(subjects):
        agent.drop(mail(subject, to=f"friend{n}@example.org"))
    agent.start()
    received = agent.smtp.wait_for(3, timeout=90)
    assert agent.stack.smtp.refused == [], "no message refused for the limit"
    assert received[2].received_at - received[0].received_at >= 60
    assert agent.subjects("Needs attention") == []
