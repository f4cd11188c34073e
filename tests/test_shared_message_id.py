"""Two different messages that share one Message-ID, through the real daemon and Dovecot (issue 20): each goes
once, with a Message-ID of its own, and each has its one copy in Sent; the same bytes again are still a copy."""

from __future__ import annotations

import pytest

from tests.agent_process import MENTOR, STUDENT, Agent, agent, eventually, parse

__all__ = ["agent"]  # the fixture
pytestmark = pytest.mark.servers


def _raw(subject: str, message_id: str, *, date: bool = True) -> bytes:
    dated = "Date: Tue, 24 Nov 2026 09:00:00 +0000\r\n" if date else ""
    return (
        f"From: Sam Patel <{STUDENT}>\r\nTo: {MENTOR}\r\nSubject: {subject}\r\nMessage-ID: {message_id}\r\n{dated}"
        f"\r\nAbout {subject}.\r\n"
    ).encode()


def test_two_messages_sharing_a_message_id_each_go_once_and_a_copy_does_not(agent: Agent) -> None:
    agent.start()
    agent.drop(_raw("one", "<shared@med.example.edu>"))
    agent.drop(_raw("two", "<shared@med.example.edu>", date=False))
    received = agent.smtp.wait_for(2)
    agent.drop(_raw("one", "<shared@med.example.edu>"))  # a genuine copy of the first
    eventually(lambda: agent.subjects("Needs attention") == ["one"])
    eventually(lambda: sorted(agent.subjects("Sent")) == ["one", "two"])
    assert sorted(str(parse(r.content)["Subject"]) for r in agent.smtp.messages) == ["one", "two"]
    ids = {str(parse(r.content)["Message-ID"]) for r in received}
    assert len(ids) == 2 and "<shared@med.example.edu>" in ids
    assert all(len(parse(r.content).get_all("Date") or []) == 1 for r in received), "a Date added where missing"
    assert agent.folder_raw("Sending") == {} and agent.folder_raw("Outbox") == {}
