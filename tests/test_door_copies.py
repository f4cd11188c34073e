"""The doors never delete a copy that is not the very message the agent holds (found by the second hostile round):
her edit saved in Drafts under the held message's Message-ID stays hers, and a message she sent without the agent
stays in Sent although its header block looks like one handed over without a Message-ID. Real daemon, Dovecot."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, make_msgid

import pytest

from tests.agent_process import MENTOR, SENT, Agent, agent, eventually, mail, policy_text
from tests.test_submission_door import open_door, password, submit

__all__ = ["agent"]  # the fixture
pytestmark = [pytest.mark.servers, pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")]
DRAFTS = "Drafts"


def a_pass_ran(agent: Agent, count: int) -> None:
    """A marker to a stranger goes at once: once it is at the SMTP server, a whole pass has looked at everything."""
    agent.drop(mail(f"Marker {count}", to="friend@example.org"))
    agent.smtp.wait_for(count)


def test_an_edit_in_drafts_under_the_held_messages_message_id_stays_hers(agent: Agent) -> None:
    agent.policy(policy_text(max_per_day=1))
    with agent.config.open("a") as out:
        out.write("\n[drafts]\nsettle = 0.5\n")
    agent.start()
    agent.drop(mail("Filler"))
    agent.smtp.wait_for(1)
    message_id = make_msgid(domain="med.example.edu")
    first = mail("Question on the rotation", message_id=False, Message_ID=message_id, body="Version one.\n")
    agent.dovecot.append(agent.user, DRAFTS, first, ("\\Draft", "\\Seen"))  # the label door: in both folders
    agent.drop(first, ("\\Draft", "\\Seen"))
    eventually(lambda: agent.subjects("Scheduled") == ["Question on the rotation"], timeout=20)
    eventually(lambda: agent.subjects(DRAFTS) == [])  # its Drafts copy left on purpose: the very message
    edit = mail("Question on the rotation", message_id=False, Message_ID=message_id, body="Version TWO, fixed.\n")
    agent.dovecot.append(agent.user, DRAFTS, edit, ("\\Draft", "\\Seen"))  # the compose window saves her edit
    a_pass_ran(agent, 2)
    a_pass_ran(agent, 3)
    assert any(b"Version TWO" in raw for raw in agent.folder_raw(DRAFTS).values()), "her edit was deleted"


def test_a_message_sent_without_the_agent_stays_in_sent(agent: Agent) -> None:
    agent.policy(policy_text(min_gap="1h"))
    port = open_door(agent)
    agent.start()
    submit(port, password(agent), mail("Goes now"), [MENTOR])
    agent.smtp.wait_for(1)
    note = mail("Running late", message_id=False, body="Sorry, 10 minutes late.\n")
    submit(port, password(agent), note, [MENTOR])  # no Message-ID: held by the gap
    eventually(lambda: agent.subjects("Scheduled") == ["Running late"])
    other = mail("Running late", message_id=False, body="Another day: 20 minutes late, sent from my phone.\n")
    agent.dovecot.append(agent.user, SENT, other, ("\\Seen",))  # sent through her provider, filed by her program
    a_pass_ran(agent, 2)
    a_pass_ran(agent, 3)
    assert any(b"20 minutes" in raw for raw in agent.folder_raw(SENT).values()), "deleted from Sent"


def test_two_different_drafts_with_one_subject_moved_to_the_outbox_both_go(agent: Agent) -> None:
    """Moved from Drafts (a MOVE keeps \\Draft), two replies "Re: Rotation" with their own Message-IDs are two
    messages, not an older and a newer save of one draft: both go, neither is set aside."""
    with agent.config.open("a") as out:
        out.write("\n[drafts]\nsettle = 0.5\n")
    agent.start()
    agent.drop(mail("Re: Rotation", body="First: can I start on Monday?\n"), ("\\Draft", "\\Seen"))
    agent.drop(mail("Re: Rotation", body="Second: the reading list, please.\n"), ("\\Draft", "\\Seen"))
    bodies = [received.content for received in agent.smtp.wait_for(2)]
    assert any(b"First" in body for body in bodies) and any(b"Second" in body for body in bodies)
    assert agent.subjects("Needs attention") == []


def test_a_draft_flagged_as_a_reminder_minutes_before_the_star_door_opened_is_not_sent(agent: Agent) -> None:
    """Written and flagged "to finish later" five minutes before setup opened the star door: an old flag, never a
    hand-over (the student is told how to hand it over)."""
    with agent.config.open("a") as out:
        out.write("\n[drafts]\ntake_flagged = true\nsettle = 0.5\n")
    five_minutes_ago = format_datetime(datetime.now(UTC) - timedelta(minutes=5))
    half = re.sub(
        rb"^Date: .*$", f"Date: {five_minutes_ago}\r".encode(), mail("Half written", body="Dear Dr. Rivera, I wan\n"),
        count=1, flags=re.MULTILINE,
    )  # fmt: skip
    agent.dovecot.append(agent.user, DRAFTS, half, ("\\Draft", "\\Seen", "\\Flagged"))
    agent.start()
    eventually(lambda: [n for n in agent.notices() if "flagged" in str(n["Subject"]).lower()], timeout=20)
    a_pass_ran(agent, 1)
    assert agent.subjects(DRAFTS) == ["Half written"]
    assert len(agent.smtp.messages) == 1  # the marker only
