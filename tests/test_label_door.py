"""The label door, end to end: a draft labelled "Mentor Outbox" in Gmail's compose window stands in Drafts and in
the Mentor Outbox at once; the real daemon, behind the provider emulation, takes it once and takes it out of Drafts
on purpose (the Drafts label removed, not Trash), so that it reaches the mentor once with one copy in Sent."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.agent_process import MENTOR, OUTBOX, eventually, mail
from tests.servers.providers.fixtures import provider_dovecots, provider_stack
from tests.test_provider_daemon import ProviderAgent, behind

__all__ = ["behind", "provider_dovecots", "provider_stack"]  # the fixtures
pytestmark = pytest.mark.servers


@pytest.mark.parametrize("name", ["gmail", "fastmail"])
def test_a_draft_labelled_mentor_outbox_is_taken_once_and_leaves_drafts(
    behind: Callable[[str], ProviderAgent], name: str
) -> None:
    agent = behind(name)
    drafts = next(folder for folder, use in agent.stack.profile.folders.items() if use == "\\Drafts")
    with agent.config.open("a") as out:
        out.write("\n[drafts]\nsettle = 0.5\n")  # a labelled draft waits to settle in the Outbox too
    agent.start()
    raw = mail("Labelled in the compose window")
    for folder in (drafts, OUTBOX):  # one message, two labels: what Gmail shows over IMAP
        agent.dovecot.append(agent.user, folder, raw, ("\\Draft",))
    received = agent.smtp.wait_for(1)[0]
    assert received.rcpt_tos == (MENTOR,)
    eventually(lambda: agent.dovecot.messages(agent.user, drafts) == {})
    eventually(lambda: agent.sent() == ["Labelled in the compose window"])
    assert agent.folder_raw("Outbox") == {} and agent.folder_raw("Needs attention") == {}
    assert len(agent.smtp.messages) == 1
    removed = [e for e in agent.stack.proxy.events if e[0] == "label removed"]
    assert bool(removed) == (name == "gmail")  # Gmail: the label; elsewhere the copy in Drafts is deleted
    assert all(detail.startswith(f"{drafts}:") for _, detail in removed)  # on purpose, from Drafts, not by Trash
