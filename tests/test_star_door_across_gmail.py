"""Across the doors at Gmail (issue 22, fourth hostile round, finding 3): a draft taken by the star door whose
still open compose window saves it again with the label "Mentor Outbox" added (a new Message-ID: one message in
Drafts and in the Mentor Outbox) is known by its text, set aside in Needs attention, and never sent a second time.
The logic pass by pass: tests/test_star_door_doubt.py."""

from __future__ import annotations

from collections.abc import Callable

from tests.agent_process import MENTOR, OUTBOX, eventually, mail, policy_text
from tests.servers.providers.compose import ComposeWindow
from tests.servers.providers.fixtures import provider_dovecots, provider_stack
from tests.test_doors_paced_on_providers import copies, open_door
from tests.test_provider_daemon import ProviderAgent, behind

__all__ = ["behind", "provider_dovecots", "provider_stack"]  # the fixtures
BODY = (
    "Dear Dr. Rivera,\n\nThank you for Tuesday. I read the two papers you sent on sepsis bundles and I have a "
    "question about the second one: the lactate threshold they used seems lower than the guideline.\n\nSam\n"
)


def test_a_starred_draft_saved_again_with_the_label_is_set_aside_not_sent_twice(
    behind: Callable[[str], ProviderAgent],
) -> None:
    agent = behind("gmail")
    agent.policy(policy_text())
    star = open_door(agent, "star", settle=0.5)
    agent.start()
    star(mail("Sepsis papers", body=BODY))
    assert MENTOR in agent.smtp.wait_for(1, timeout=20)[0].rcpt_tos
    ComposeWindow(agent.stack, labels=(OUTBOX,)).save(mail("Sepsis papers", body=BODY + "P.S. notes\n"))
    eventually(lambda: copies(agent, "Needs attention") == ["Sepsis papers"], timeout=20)
    assert len(agent.smtp.messages) == 1
