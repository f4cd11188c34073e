"""End to end: the real daemon, a real Dovecot, a real aiosmtpd. Nothing lost, nothing sent twice."""

from __future__ import annotations

import signal
import time

import pytest

from agent.store.ledger import QUEUED
from tests.agent_process import MENTOR, SENT, Agent, agent, closed_window, eventually, mail, parse, policy_text

__all__ = ["agent"]  # the fixture
pytestmark = pytest.mark.servers


def test_mail_to_no_mentor_passes_straight_through(agent: Agent) -> None:
    agent.start()
    raw = mail("Lunch on Friday?", to="friend@example.org", Bcc="me@example.org")
    agent.drop(raw)
    received = agent.smtp.wait_for(1)
    assert sorted(received[0].rcpt_tos) == ["friend@example.org", "me@example.org"]
    assert b"Bcc:" not in received[0].content.split(b"\r\n\r\n")[0]
    # The body arrives byte for byte.
    assert received[0].content.split(b"\r\n\r\n", 1)[1] == raw.split(b"\r\n\r\n", 1)[1]
    eventually(lambda: agent.subjects("Sent") == ["Lunch on Friday?"])
    sent = agent.folder("Sent")[0]
    assert sent["Bcc"] == "me@example.org"  # the student's own copy keeps its Bcc
    assert agent.folder_raw("Outbox") == {} and agent.folder_raw("Sending") == {}


def test_a_message_the_policy_allows_goes_now_and_is_filed_once(agent: Agent) -> None:
    agent.start()
    start = time.monotonic()
    agent.drop(mail("Thank you for clinic", Disposition_Notification_To="sam@med.example.edu"))
    received = agent.smtp.wait_for(1)
    elapsed = time.monotonic() - start
    assert received[0].rcpt_tos == (MENTOR,)
    assert parse(received[0].content)["Disposition-Notification-To"] == "sam@med.example.edu"
    assert elapsed < 5, f"seen by IDLE within about a second, took {elapsed:.1f} s"
    eventually(lambda: agent.subjects("Sent") == ["Thank you for clinic"])
    time.sleep(1)
    assert len(agent.smtp.messages) == 1
    assert agent.notices() == []  # nothing held, nothing to tell


def test_a_message_without_message_id_gets_one_and_keeps_it_in_sent(agent: Agent) -> None:
    agent.start()
    agent.drop(mail("No id", message_id=False))
    received = agent.smtp.wait_for(1)
    message_id = parse(received[0].content)["Message-ID"]
    assert message_id and message_id.startswith("<")
    sent = eventually(lambda: agent.folder("Sent"))
    assert sent[0]["Message-ID"] == message_id


def test_min_gap_delays_to_the_second_with_a_notice(agent: Agent) -> None:
    agent.policy(policy_text(min_gap="6s"))
    agent.start()
    agent.drop(mail("first"))
    agent.smtp.wait_for(1)
    agent.drop(mail("second"))
    notice = eventually(lambda: [n for n in agent.notices() if "second" in str(n["Subject"])])[0]
    assert str(notice["Subject"]).strip().startswith("[mentor-agent] Scheduled: second (to Dr. Ana Rivera")
    assert "at least 6s between messages" in notice.get_content()
    assert agent.subjects("Scheduled") == ["second"]
    received = agent.smtp.wait_for(2, timeout=15)
    gap = received[1].received_at - received[0].received_at
    assert 5.5 <= gap <= 8, f"released {gap:.2f} s after the first; the agreed gap is 6 s"
    eventually(lambda: agent.folder_raw("Scheduled") == {})


def test_outside_the_window_it_waits_in_scheduled_and_says_until_when(agent: Agent) -> None:
    window = closed_window()
    agent.policy(policy_text(windows=window))
    agent.start()
    agent.drop(mail("Weekend thought"))
    eventually(lambda: agent.subjects("Scheduled") == ["Weekend thought"])
    notice = eventually(lambda: agent.notices())[0]
    body = notice.get_content()
    day = window.strip('"').split()[0]
    assert f"outside Dr. Ana Rivera's e-mail hours ({day} 03:00-03:01, America/Chicago)" in body
    assert day in str(notice["Subject"]).strip() and "03:00 C" in str(notice["Subject"]).strip()
    assert agent.smtp.messages == []


def test_batch_sends_waiting_messages_as_one_digest(agent: Agent) -> None:
    agent.policy(policy_text(min_gap="5s", over_limit="batch"))
    agent.start()
    agent.drop(mail("first"))
    agent.smtp.wait_for(1)
    agent.drop(mail("research question"))
    agent.drop(mail("elective"))
    received = agent.smtp.wait_for(2, timeout=15)
    digest = parse(received[1].content)
    assert "2 updates from Sam" in str(digest["Subject"])
    text = digest.get_body(("plain",))
    assert text is not None and "research question" in text.get_content() and "elective" in text.get_content()
    time.sleep(1)
    assert len(agent.smtp.messages) == 2
    sent = eventually(lambda: agent.subjects("Sent") if len(agent.subjects("Sent")) == 2 else None)
    assert any("2 updates" in s for s in sent)
    assert agent.folder_raw("Scheduled") == {} and agent.folder_raw("Sending") == {}


def test_deleting_from_scheduled_cancels(agent: Agent) -> None:
    agent.policy(policy_text(min_gap="4s"))
    agent.start()
    agent.drop(mail("first"))
    agent.smtp.wait_for(1)
    agent.drop(mail("never mind"))
    eventually(lambda: agent.subjects("Scheduled") == ["never mind"])
    with agent.dovecot.client(agent.user) as client:
        client.select_folder("Scheduled")
        client.delete_messages(client.search())
        client.expunge()
    time.sleep(6)
    assert len(agent.smtp.messages) == 1
    assert "cancelled" in agent.log()


def test_flagging_in_scheduled_sends_now_and_counts(agent: Agent) -> None:
    agent.policy(policy_text(max_per_day=1))
    agent.start()
    agent.drop(mail("first"))
    agent.smtp.wait_for(1)
    agent.drop(mail("urgent: tomorrow's case"))
    eventually(lambda: agent.subjects("Scheduled") == ["urgent: tomorrow's case"])
    with agent.dovecot.client(agent.user) as client:
        client.select_folder("Scheduled")
        client.add_flags(client.search(), [b"\\Flagged"])
    received = agent.smtp.wait_for(2)
    assert parse(received[1].content)["Subject"] == "urgent: tomorrow's case"
    assert "flagged" in agent.log()


def test_a_temporary_smtp_failure_is_retried(agent: Agent) -> None:
    agent.start()
    agent.smtp.fail_next("451 4.3.0 try again later")
    agent.drop(mail("retry me"))
    received = agent.smtp.wait_for(1, timeout=20)
    assert parse(received[0].content)["Subject"] == "retry me"
    time.sleep(1)
    assert len(agent.smtp.messages) == 1


def test_a_permanent_smtp_failure_goes_to_needs_attention_with_the_servers_words(agent: Agent) -> None:
    agent.start()
    agent.smtp.fail_next("550 5.7.1 mailbox unavailable")
    agent.drop(mail("will bounce"))
    eventually(lambda: agent.subjects("Needs attention") == ["will bounce"])
    notice = eventually(lambda: agent.notices())[0]
    assert "550" in notice.get_content() and "mailbox unavailable" in notice.get_content()
    assert agent.smtp.messages == []


def test_broken_mail_is_quarantined_with_a_notice_and_the_daemon_goes_on(agent: Agent) -> None:
    agent.start()
    agent.drop(b"From: sam@med.example.edu\r\nSubject: nobody\r\n\r\nno recipients\r\n")
    eventually(lambda: agent.subjects("Needs attention") == ["nobody"])
    assert "no recipients" in eventually(lambda: agent.notices())[0].get_content()
    agent.drop(mail("still working"))
    assert agent.smtp.wait_for(1)[0].rcpt_tos == (MENTOR,)


def test_a_mentor_reply_releases_a_held_message(agent: Agent) -> None:
    agent.policy(policy_text(max_unanswered=1))
    agent.start()
    agent.drop(mail("first question"))
    first = parse(agent.smtp.wait_for(1)[0].content)
    agent.drop(mail("second question"))
    eventually(lambda: agent.subjects("Scheduled") == ["second question"])
    assert "1 message to Dr. Ana Rivera awaits a reply" in eventually(lambda: agent.notices())[0].get_content()
    # A stranger's "reply" changes nothing.
    agent.dovecot.append(
        agent.user,
        "INBOX",
        mail(
            "Re: first question", to="sam@med.example.edu", From="someone@else.example", In_Reply_To=first["Message-ID"]
        ),
    )
    time.sleep(2)
    assert len(agent.smtp.messages) == 1
    reply = mail(
        "Re: first question",
        to="sam@med.example.edu",
        In_Reply_To=first["Message-ID"],
        From="Ana Rivera <arivera@hospital.example.org>",
    )
    agent.dovecot.append(agent.user, "INBOX", reply)
    received = agent.smtp.wait_for(2)
    assert parse(received[1].content)["Subject"] == "second question"


def test_mail_sent_without_the_agent_counts(agent: Agent) -> None:
    agent.policy(policy_text(max_per_day=1))
    agent.dovecot.append(agent.user, SENT, mail("sent from my phone"))
    agent.start()
    agent.drop(mail("from the laptop"))
    eventually(lambda: agent.subjects("Scheduled") == ["from the laptop"])
    assert "2nd message today" in eventually(lambda: agent.notices())[0].get_content()
    assert agent.smtp.messages == []


def test_imap_restart_while_idling_is_survived(agent: Agent) -> None:
    agent.start()
    agent.dovecot.restart()
    eventually(lambda: agent.log().count("connected to") >= 2, timeout=30)
    agent.drop(mail("after the restart"))
    assert agent.smtp.wait_for(1, timeout=15)[0].rcpt_tos == (MENTOR,)


def test_sigterm_exits_cleanly(agent: Agent) -> None:
    agent.start()
    assert agent.stop(signal.SIGTERM) == 0
    assert "stopped" in agent.log()


@pytest.mark.parametrize("point", ["claimed", "queued", "accepted"])
def test_kill_9_before_smtp_or_before_filing_loses_nothing_and_sends_once(agent: Agent, point: str) -> None:
    agent.start(MENTOR_AGENT_CRASH_AT=point)
    agent.drop(mail("crash test"))
    assert agent.wait_exit() == -signal.SIGKILL
    agent.start()
    received = agent.smtp.wait_for(1, timeout=15)
    eventually(lambda: agent.subjects("Sent") == ["crash test"])
    time.sleep(1.5)
    assert len(agent.smtp.messages) == 1 == len(received)
    assert agent.folder_raw("Sending") == {} and agent.folder_raw("Outbox") == {}


def test_kill_9_while_sending_puts_the_message_in_doubt_not_twice(agent: Agent) -> None:
    agent.start(MENTOR_AGENT_CRASH_AT="sending")
    agent.drop(mail("in doubt"))
    assert agent.wait_exit() == -signal.SIGKILL
    agent.start()
    eventually(lambda: agent.subjects("Needs attention") == ["in doubt"])
    notice = eventually(lambda: agent.notices())[0]
    assert "IN DOUBT" in notice.get_content()
    assert len(agent.smtp.messages) <= 1


def test_a_send_in_doubt_whose_copy_turns_up_in_sent_went_and_moved_back_is_not_sent_again(agent: Agent) -> None:
    agent.start(MENTOR_AGENT_CRASH_AT="sending")
    agent.drop(mail("in doubt, then found"))
    assert agent.wait_exit() == -signal.SIGKILL
    agent.start()
    ((uid, raw),) = eventually(lambda: agent.folder_raw("Needs attention")).items()
    agent.dovecot.append(agent.user, SENT, raw)  # the provider's copy of what its server took, filed late
    with agent.dovecot.client(agent.user) as client:  # she moves it back to send it anyway: the pass wakes
        client.select_folder("Needs attention")
        client.move([uid], "Mentor Outbox")
    eventually(lambda: agent.subjects("Needs attention") == ["in doubt, then found"])
    titles = eventually(lambda: [n["Subject"] for n in agent.notices() if "Went after all" in n["Subject"]])
    assert titles == ["[mentor-agent] Went after all: in doubt, then found"]
    time.sleep(1.5)
    assert agent.smtp.messages == [], "its copy in Sent says it went: never a second time"
    assert agent.subjects("Sent") == ["in doubt, then found"]


def test_queued_when_the_machine_restarted_is_in_doubt_not_sent(agent: Agent) -> None:
    """``queued`` is flushed to disk, ``sending`` is not: after a reboot a queued message may have gone."""
    agent.start(MENTOR_AGENT_CRASH_AT="queued")
    agent.drop(mail("power cut"))
    assert agent.wait_exit() == -signal.SIGKILL
    ledger = agent.ledger()
    try:
        assert [row.subject for row in ledger.in_states(QUEUED)] == ["power cut"]
        assert not ledger.queued_before_reboot(), "same boot: the daemon alone died"
        with ledger.transaction():  # what a reboot looks like to the ledger: another boot id
            ledger.db.execute("UPDATE meta SET value = 'an-earlier-boot' WHERE key = 'queued_boot'")
    finally:
        ledger.close()
    agent.start()
    eventually(lambda: agent.subjects("Needs attention") == ["power cut"])
    notice = eventually(lambda: agent.notices())[0]
    assert "IN DOUBT" in notice.get_content()
    time.sleep(1)
    assert agent.smtp.messages == [], "the crash came before SMTP, and nothing sends it again by itself"


def test_two_agents_on_one_account_never_send_the_same_message(
    agent: Agent, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = Agent(tmp_path_factory.mktemp("laptop"), agent.dovecot, agent.user, agent.smtp)
    other.write_config()
    other.policy(policy_text())
    agent.start()
    other.start()
    try:
        subjects = [f"message {n}" for n in range(16)]
        for n, subject in enumerate(subjects):
            agent.drop(mail(subject, to=MENTOR if n % 2 else "friend@example.org"))
        received = agent.smtp.wait_for(len(subjects), timeout=30)
        time.sleep(3)
        got = sorted(str(parse(r.content)["Subject"]) for r in agent.smtp.messages)
        assert got == sorted(subjects), f"each exactly once; got {len(received)}: {got}"
        eventually(lambda: sorted(agent.subjects("Sent")) == sorted(subjects))
        assert agent.folder_raw("Outbox") == {} and agent.folder_raw("Sending") == {}
        told = [str(n["Subject"]) for n in agent.notices()]
        assert not [t for t in told if "will not go from" in t.lower()], "what the other agent held is not hers"
    finally:
        other.stop()


def test_two_copies_of_one_message_go_once_and_the_copy_is_set_aside(agent: Agent) -> None:
    raw = mail("Dropped twice", to="friend@example.org")
    agent.drop(raw)
    agent.drop(raw)  # both wait before the agent starts: they are taken in together
    agent.start()
    agent.smtp.wait_for(1)
    eventually(lambda: agent.subjects("Needs attention") == ["Dropped twice"])
    time.sleep(1.5)
    assert len(agent.smtp.messages) == 1
    assert agent.subjects("Sent") == ["Dropped twice"] and agent.folder_raw("Outbox") == {}
    notice = eventually(lambda: [n for n in agent.notices() if "Not sent" in str(n["Subject"])])[0]
    assert "another copy" in notice.get_content()
