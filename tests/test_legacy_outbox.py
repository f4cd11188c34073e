"""A folder named "Outbox" that the student never handed over (issue 20): its mail is never taken, never sent, and
she is told once, across restarts. Only what the ledger itself took in from "Outbox" (a user of the 0.1.0 default)
is brought along.
"""

from __future__ import annotations

import pytest

from agent.rules.envelope import parse_envelope
from tests.agent_process import Agent, agent, eventually, mail, parse
from tests.helpers import ledger_row

__all__ = ["agent"]  # the fixture
pytestmark = pytest.mark.servers

LEGACY = "Outbox"


def _told(agent: Agent) -> list[str]:
    return [str(n["Subject"]) for n in agent.notices() if "not “Outbox”" in str(n["Subject"])]


def _legacy(agent: Agent) -> list[str]:
    return sorted(str(parse(raw)["Subject"]) for raw in agent.dovecot.messages(agent.user, LEGACY).values())


def _sent(agent: Agent) -> list[str]:
    return [str(parse(r.content)["Subject"]) for r in agent.smtp.messages]


def test_a_plain_outbox_is_never_taken_once_the_ledger_holds_a_message(agent: Agent) -> None:
    """Measured before the fix: the second start moved both into the Mentor Outbox and sent them."""
    with agent.dovecot.client(agent.user) as client:
        client.create_folder(LEGACY)
    for n in (1, 2):
        agent.dovecot.append(agent.user, LEGACY, mail(f"unrelated {n}", to=f"someone{n}@example.org"))
    agent.start()
    eventually(lambda: _told(agent))
    agent.drop(mail("mine"))  # the ledger now holds a message
    agent.smtp.wait_for(1)
    agent.stop()
    agent.start()
    agent.drop(mail("mine again"))  # a pass after the start's folder check has certainly run once it is sent
    agent.smtp.wait_for(2)
    eventually(lambda: agent.subjects("Sent") == ["mine", "mine again"])
    assert _sent(agent) == ["mine", "mine again"], "nothing from “Outbox” sent"
    assert _legacy(agent) == ["unrelated 1", "unrelated 2"]
    assert agent.subjects("Outbox") == [] and agent.subjects("Needs attention") == []
    assert len(_told(agent)) == 1, "told once in all"


def _taken_in_from_the_old_default(agent: Agent, raw: bytes, uid: int) -> None:
    """The row a 0.1.0 agent (watching "Outbox") wrote for a message it took in and had not sent yet."""
    envelope = parse_envelope(raw)
    ledger = agent.ledger()
    try:
        ledger.add(ledger_row(envelope, folder=LEGACY, uid=uid))
    finally:
        ledger.close()


def test_what_the_old_default_outbox_took_in_is_brought_along_and_nothing_else(agent: Agent) -> None:
    with agent.dovecot.client(agent.user) as client:
        client.create_folder(LEGACY)
    taken = mail("taken in by 0.1.0")
    _taken_in_from_the_old_default(agent, taken, agent.dovecot.append(agent.user, LEGACY, taken))
    agent.dovecot.append(agent.user, LEGACY, mail("never handed over", to="someone@example.org"))
    agent.start()
    agent.smtp.wait_for(1)
    notice = eventually(lambda: [n for n in agent.notices() if "Mentor Outbox" in str(n["Subject"])])[0]
    assert "were moved there" in notice.get_content()
    assert _sent(agent) == ["taken in by 0.1.0"]
    assert _legacy(agent) == ["never handed over"]
    eventually(lambda: agent.subjects("Sent") == ["taken in by 0.1.0"])
    assert agent.subjects("Needs attention") == []
    assert len(_told(agent)) == 1, "told of the one left there"
