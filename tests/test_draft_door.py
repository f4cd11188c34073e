"""The star door, end to end: a flagged draft to a mentor in the real Dovecot's Drafts is taken by the real daemon,
paced, and reaches her once; a flagged draft to a stranger is left alone; a draft saved again is not sent again."""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import pytest

from agent.crashpoints import VARIABLE
from tests.agent_process import MENTOR, STUDENT, Agent, agent, eventually, mail, policy_text

__all__ = ["agent"]  # the fixture
pytestmark = pytest.mark.servers
DRAFTS = "Drafts"


def settle_in(agent: Agent, seconds: float) -> None:
    with agent.config.open("a") as out:
        out.write(f"\n[drafts]\ntake_flagged = true\nsettle = {seconds}\n")


def save_draft(agent: Agent, raw: bytes, *, flagged: bool) -> int:
    return agent.dovecot.append(agent.user, DRAFTS, raw, ("\\Draft", "\\Seen", *(["\\Flagged"] if flagged else [])))


def test_a_flagged_draft_to_a_mentor_is_taken_after_it_settles_and_sent_once(agent: Agent) -> None:
    settle_in(agent, 1.5)
    agent.start()
    raw = mail("Starred in Drafts")
    save_draft(agent, raw, flagged=True)
    started = time.monotonic()
    received = agent.smtp.wait_for(1, timeout=15)[0]
    assert time.monotonic() - started >= 1.5  # not before it stood unchanged for the settle time
    assert received.rcpt_tos == (MENTOR,)
    assert agent.folder_raw(DRAFTS) == {}  # left Drafts: it cannot also be sent from there
    eventually(lambda: agent.subjects("Sent") == ["Starred in Drafts"])
    sent = agent.dovecot.client(agent.user)
    with sent as client:
        client.select_folder("Sent Items")
        flags = client.get_flags(client.search(["ALL"]))
    assert all(b"\\Draft" not in f and b"\\Flagged" not in f for f in flags.values())
    notice = eventually(lambda: [n for n in agent.notices() if "Taken from Drafts" in str(n["Subject"])])
    assert "Starred in Drafts" in str(notice[0]["Subject"])
    assert len(agent.smtp.messages) == 1


def test_without_the_star_door_a_flagged_draft_is_only_a_flag(agent: Agent) -> None:
    """A flag set as a reminder on a half-written draft never sends it: the door is opened by setup or by hand."""
    agent.start()
    save_draft(agent, mail("Half written, flagged to finish later"), flagged=True)
    agent.drop(mail("Marker"))  # something the agent does take, to know a pass has run
    agent.smtp.wait_for(1)
    assert agent.subjects(DRAFTS) == ["Half written, flagged to finish later"]
    assert len(agent.smtp.messages) == 1


def test_a_flagged_draft_to_a_stranger_and_an_unflagged_one_are_left_alone(agent: Agent) -> None:
    settle_in(agent, 0)
    agent.start()
    save_draft(agent, mail("To a friend", to="friend@example.org"), flagged=True)
    save_draft(agent, mail("Not yet"), flagged=False)
    agent.drop(mail("Marker"))  # something the agent does take, to know a pass has run
    agent.smtp.wait_for(1)
    # The pass that took the marker looked at Drafts first (settle 0): had it meant to take them, it had.
    assert sorted(agent.subjects(DRAFTS)) == ["Not yet", "To a friend"]
    assert len(agent.smtp.messages) == 1


@pytest.mark.parametrize("same_id", [True, False], ids=["same Message-ID", "new Message-ID"])
def test_a_draft_saved_again_after_it_was_taken_is_not_sent_twice(agent: Agent, same_id: bool) -> None:
    agent.policy(policy_text(min_gap="1h"))
    settle_in(agent, 0)
    agent.start()
    agent.drop(mail("Earlier today"))
    agent.smtp.wait_for(1)
    raw = mail("Still open in the compose window")
    save_draft(agent, raw, flagged=True)
    eventually(lambda: agent.subjects("Scheduled") == ["Still open in the compose window"])
    # The compose window saves again, edited, and still starred (Gmail keeps the star); some programs give each
    # save a new Message-ID: then it is known by its recipients and subject.
    edited = b"A short question, edited."
    again = (
        raw.replace(b"A short question.", edited)
        if same_id
        else mail("Still open in the compose window", body=edited.decode())
    )
    save_draft(agent, again, flagged=True)
    notice = eventually(lambda: [n for n in agent.notices() if "Not taken again" in str(n["Subject"])])
    assert "scheduled, in Scheduled" in notice[0].get_content()
    assert agent.subjects(DRAFTS) == ["Still open in the compose window"]  # left for the student to delete
    assert agent.subjects("Scheduled") == ["Still open in the compose window"]
    assert agent.folder_raw("Needs attention") == {}
    assert len(agent.smtp.messages) == 1


def test_killed_between_taking_the_flag_off_and_the_move_it_is_still_taken(agent: Agent) -> None:
    settle_in(agent, 0)
    agent.start(**{VARIABLE: "draft-unflagged"})
    save_draft(agent, mail("Flag off, then killed"), flagged=True)
    assert agent.wait_exit() == -signal.SIGKILL
    with agent.dovecot.client(agent.user) as client:
        client.select_folder(DRAFTS)
        assert all(b"\\Flagged" not in f for f in client.get_flags(client.search(["ALL"])).values())
    agent.start()
    assert agent.smtp.wait_for(1)[0].rcpt_tos == (MENTOR,)
    eventually(lambda: agent.subjects("Sent") == ["Flag off, then killed"])
    assert agent.folder_raw(DRAFTS) == {} and len(agent.smtp.messages) == 1


def test_killed_once_the_move_was_done_it_counts_as_taken_and_its_resave_is_not_sent_twice(agent: Agent) -> None:
    """Dovecot did the MOVE, the daemon died before it read the answer (kill -9; a cut connection alike): what was
    taken is kept before the MOVE, so the next run finds it in the Outbox, tells her, and knows the re-save."""
    settle_in(agent, 0)
    agent.start(**{VARIABLE: "draft-moved"})
    save_draft(agent, mail("Moved, then killed"), flagged=True)
    assert agent.wait_exit() == -signal.SIGKILL
    assert agent.subjects("Mentor Outbox") == ["Moved, then killed"] and agent.subjects(DRAFTS) == []
    agent.start()
    assert agent.smtp.wait_for(1)[0].rcpt_tos == (MENTOR,)
    eventually(
        lambda: [n for n in agent.notices() if str(n["Subject"]).endswith("Taken from Drafts: Moved, then killed")]
    )
    save_draft(agent, mail("Moved, then killed"), flagged=True)  # the compose window's re-save: a new Message-ID
    eventually(lambda: [n for n in agent.notices() if "Not taken again" in str(n["Subject"])])
    assert agent.subjects(DRAFTS) == ["Moved, then killed"]
    assert len(agent.smtp.messages) == 1


def test_a_draft_saved_again_after_a_restart_is_still_known_and_not_sent_twice(agent: Agent) -> None:
    """What was taken is kept in the ledger: a restart (or an IMAP reconnect: a new session) forgets nothing."""
    settle_in(agent, 0)
    agent.start()
    save_draft(agent, mail("Still open in the compose window"), flagged=True)
    agent.smtp.wait_for(1)
    eventually(lambda: agent.subjects("Sent") == ["Still open in the compose window"])
    agent.stop()
    agent.start()
    # The compose window saves again, still starred, with a new Message-ID and a line edited
    edited = "Hello,\n\nA short question, edited after it went.\n\nSam\n"
    save_draft(agent, mail("Still open in the compose window", body=edited), flagged=True)
    notice = eventually(lambda: [n for n in agent.notices() if "Not taken again" in str(n["Subject"])])
    assert "already sent" in notice[0].get_content()
    assert agent.subjects(DRAFTS) == ["Still open in the compose window"]
    assert len(agent.smtp.messages) == 1


def test_drafts_flagged_before_the_door_opened_are_not_taken_until_flagged_again(agent: Agent) -> None:
    """A flag set months ago as a reminder is not a hand-over: the door takes a baseline when it first opens."""
    with agent.dovecot.client(agent.user) as client:  # saved and starred in June, as a reminder
        client.append(
            DRAFTS,
            mail("(unfinished) thoughts on the residency match"),
            flags=(b"\\Draft", b"\\Seen", b"\\Flagged"),
            msg_time=datetime(2026, 6, 2, 22, 10, tzinfo=UTC),
        )
        client.select_folder(DRAFTS)
        (old,) = client.search(["ALL"])
    settle_in(agent, 0)
    agent.start()
    notice = eventually(lambda: [n for n in agent.notices() if "flagged draft left" in str(n["Subject"])])
    assert "flag one again to hand it over" in notice[0].get_content()
    agent.drop(mail("Marker"))  # a later pass
    agent.smtp.wait_for(1)
    save_draft(agent, mail("Starred after the door opened"), flagged=True)
    agent.smtp.wait_for(2)
    agent.stop()
    agent.start()  # still left alone after a restart
    agent.drop(mail("Marker 2"))
    agent.smtp.wait_for(3)
    assert agent.subjects(DRAFTS) == ["(unfinished) thoughts on the residency match"]
    assert sorted(m.content.split(b"Subject: ")[1].split(b"\r\n")[0].decode() for m in agent.smtp.messages) == [
        "Marker",
        "Marker 2",
        "Starred after the door opened",
    ]
    with agent.dovecot.client(agent.user) as client:  # she flags it again: now it is handed over
        client.select_folder(DRAFTS)
        client.remove_flags([old], [b"\\Flagged"])
    agent.drop(mail("Marker 3"))
    agent.smtp.wait_for(4)
    with agent.dovecot.client(agent.user) as client:
        client.select_folder(DRAFTS)
        client.add_flags([old], [b"\\Flagged"])
    agent.smtp.wait_for(5)
    eventually(lambda: agent.subjects(DRAFTS) == [])
    assert len([n for n in agent.notices() if "flagged draft left" in str(n["Subject"])]) == 1


def test_a_taken_draft_goes_without_the_draft_headers_and_with_the_date_it_was_handed_over(agent: Agent) -> None:
    """A draft started days ago and flagged today: its client's draft-only headers stay home, its Date is today."""
    draft = (
        f"From: Sam Patel <{STUDENT}>\r\nTo: Dr. Ana Rivera <{MENTOR}>\r\nSubject: Started on Monday\r\n"
        "Message-ID: <tb-draft-1@med.example.edu>\r\nDate: Mon, 30 Nov 2026 09:00:00 -0500\r\n"
        "X-Mozilla-Draft-Info: internal/draft; vcard=0; receipt=0; DSN=0; uuencode=0\r\n"
        "X-Identity-Key: id1\r\nX-Account-Key: account1\r\nFcc: imap://sam@imap.med.example.edu/Sent\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nDear Dr. Rivera,\r\n\r\nA question.\r\n"
    ).encode()
    settle_in(agent, 0)
    agent.start()
    # The door open first (a pass ran): flagged before it, a draft begun on Monday would be an old flag (it raced)
    agent.drop(mail("Marker", to="friend@example.org"))
    agent.smtp.wait_for(1)
    save_draft(agent, draft, flagged=True)
    head = agent.smtp.wait_for(2)[1].content.split(b"\r\n\r\n")[0].decode()
    for field in ("X-Mozilla-Draft-Info", "X-Identity-Key", "X-Account-Key", "Fcc", "30 Nov 2026"):
        assert field not in head
    sent_at = parsedate_to_datetime(next(line for line in head.splitlines() if line.startswith("Date:"))[5:].strip())
    assert abs((datetime.now(UTC) - sent_at).total_seconds()) < 120
    eventually(lambda: sorted(agent.subjects("Sent")) == ["Marker", "Started on Monday"])
    filed = next(raw for raw in agent.folder_raw("Sent").values() if b"Started on Monday" in raw)
    assert b"X-Mozilla-Draft-Info" not in filed and b"30 Nov 2026" not in filed  # the Sent copy is what went


def test_a_draft_that_keeps_coming_back_is_told_once(agent: Agent) -> None:
    """The compose window still open saves again and again after the draft was taken: one notice, not one a save."""
    settle_in(agent, 0)
    agent.start()
    raw = mail("Still open in the compose window")
    save_draft(agent, raw, flagged=True)
    agent.smtp.wait_for(1)
    eventually(lambda: agent.subjects("Sent") == ["Still open in the compose window"])
    save_draft(agent, raw, flagged=False)  # autosave
    eventually(lambda: [n for n in agent.notices() if "Not taken again" in str(n["Subject"])])
    save_draft(agent, raw, flagged=False)  # and again
    agent.drop(mail("Marker", to="friend@example.org"))  # a later pass has looked at Drafts
    agent.smtp.wait_for(2)
    eventually(lambda: sorted(agent.subjects("Sent")) == ["Marker", "Still open in the compose window"])
    assert len([n for n in agent.notices() if "Not taken again" in str(n["Subject"])]) == 1
    assert len(agent.smtp.messages) == 2


def test_an_old_starred_draft_that_changed_while_the_agent_was_stopped_is_not_taken_and_she_is_told_once(
    agent: Agent,
) -> None:
    """Third hostile round: a baseline draft re-starred while the daemon is down was never seen. Its MODSEQ moved
    (CONDSTORE), which a \\Seen or label change does too: not sent on that alone, she is told once what to do."""
    with agent.dovecot.client(agent.user) as client:  # starred in June as a reminder
        client.append(DRAFTS, mail("(unfinished) residency thoughts"), flags=(b"\\Draft", b"\\Flagged"),
                      msg_time=datetime(2026, 6, 2, 22, 10, tzinfo=UTC))  # fmt: skip
        client.select_folder(DRAFTS)
        (old,) = client.search(["ALL"])
    settle_in(agent, 0)
    agent.start()
    eventually(lambda: [n for n in agent.notices() if "flagged draft left" in str(n["Subject"])])
    agent.drop(mail("Marker 1", to="friend@example.org"))  # a later pass has looked at Drafts
    agent.smtp.wait_for(1)
    agent.stop()
    with agent.dovecot.client(agent.user) as client:  # while it is stopped, she un-stars and stars it again
        client.select_folder(DRAFTS)
        client.remove_flags([old], [b"\\Flagged"])
        client.add_flags([old], [b"\\Flagged"])
    agent.start()
    told = "changed while mentor-agent was stopped"
    notice = eventually(lambda: [n for n in agent.notices() if told in str(n["Subject"])])
    assert "remove the star and star it again" in notice[0].get_content()
    agent.stop()
    agent.start()  # told once, not at every start
    agent.drop(mail("Marker 2", to="friend@example.org"))
    agent.smtp.wait_for(2)
    assert agent.subjects(DRAFTS) == ["(unfinished) residency thoughts"]
    assert len([n for n in agent.notices() if told in str(n["Subject"])]) == 1
    assert len(agent.smtp.messages) == 2


def test_an_old_star_taken_off_and_set_again_between_two_passes_is_told(agent: Agent) -> None:
    """Hostile finding 9: the star of a baseline reminder taken off and set again while the daemon looks elsewhere
    (here: the daemon paused by SIGSTOP meanwhile) is seen only as its MODSEQ moved: not taken on that, told once."""
    with agent.dovecot.client(agent.user) as client:  # starred in June as a reminder
        client.append(DRAFTS, mail("(unfinished) residency thoughts"), flags=(b"\\Draft", b"\\Flagged"),
                      msg_time=datetime(2026, 6, 2, 22, 10, tzinfo=UTC))  # fmt: skip
        client.select_folder(DRAFTS)
        (old,) = client.search(["ALL"])
    settle_in(agent, 0)
    agent.start()
    eventually(lambda: [n for n in agent.notices() if "flagged draft left" in str(n["Subject"])])
    agent.drop(mail("Marker 1", to="friend@example.org"))  # a later pass has looked at Drafts
    agent.smtp.wait_for(1)
    process = agent.process
    assert process is not None
    process.send_signal(signal.SIGSTOP)
    try:
        with agent.dovecot.client(agent.user) as client:
            client.select_folder(DRAFTS)
            client.remove_flags([old], [b"\\Flagged"])
            client.add_flags([old], [b"\\Flagged"])
    finally:
        process.send_signal(signal.SIGCONT)
    notice = eventually(lambda: [n for n in agent.notices() if "changed and kept its star" in str(n["Subject"])])
    assert "remove the star and star it again a few seconds later" in " ".join(notice[0].get_content().split())
    agent.drop(mail("Marker 2", to="friend@example.org"))
    agent.smtp.wait_for(2)
    assert agent.subjects(DRAFTS) == ["(unfinished) residency thoughts"] and len(agent.smtp.messages) == 2
