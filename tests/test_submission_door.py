"""The submission door, end to end: real mail programs (smtplib, msmtp, s-nail, neomutt) submit to the real daemon,
which puts the message in the Mentor Outbox of the real Dovecot and paces it like any other."""

from __future__ import annotations

import shutil
import signal
import smtplib
import subprocess
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from agent.crashpoints import VARIABLE
from tests.agent_process import MENTOR, SENT, STUDENT, Agent, agent, eventually, mail, parse, policy_text
from tests.servers import free_port, wait_for_port

__all__ = ["agent"]  # the fixture
pytestmark = pytest.mark.servers
USER = "mentor-agent"


def open_door(agent: Agent) -> int:
    port = free_port()
    with agent.config.open("a") as out:
        out.write(f"\n[submission]\nport = {port}\n")
    return port


def password(agent: Agent) -> str:
    return (agent.root / "state" / "submission-password").read_text().strip()


def start(agent: Agent, port: int, **env: str) -> None:
    agent.start(**env)
    wait_for_port(port)  # the door opens before the agent logs in to IMAP; a restart logged "connected" before


def submit(port: int, secret: str, raw: bytes, rcpt: list[str]) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        client.login(USER, secret)
        client.sendmail(STUDENT, rcpt, raw)


def test_send_through_the_agent_is_paced_and_the_envelope_bcc_is_honoured_once(agent: Agent) -> None:
    agent.policy(policy_text(min_gap="1h"))
    port = open_door(agent)
    agent.start()
    submit(port, password(agent), mail("First, via Send"), [MENTOR])
    agent.smtp.wait_for(1)
    # A Bcc the program kept only in the envelope (smtplib, like most, never writes it in the header).
    raw = mail("Second, via Send")
    submit(port, password(agent), raw, [MENTOR, "dean@med.example.edu"])
    eventually(lambda: agent.subjects("Scheduled") == ["Second, via Send"])
    held = agent.folder("Scheduled")[0]
    assert held["Bcc"] == "dean@med.example.edu"  # the student sees whom it goes to
    assert len(agent.smtp.messages) == 1  # paced: an hour's gap
    with agent.dovecot.client(agent.user) as client:
        client.select_folder("Scheduled")
        client.add_flags(client.search(["ALL"]), [b"\\Flagged"])
    received = agent.smtp.wait_for(2)[1]
    assert sorted(received.rcpt_tos) == sorted([MENTOR, "dean@med.example.edu"])
    assert b"Bcc" not in received.content.split(b"\r\n\r\n")[0]
    eventually(lambda: sorted(agent.subjects("Sent")) == ["First, via Send", "Second, via Send"])
    assert agent.folder_raw("Outbox") == {} and agent.folder_raw("Needs attention") == {}
    assert len(agent.smtp.messages) == 2


def test_mail_to_no_mentor_goes_at_once(agent: Agent) -> None:
    port = open_door(agent)
    agent.start()
    submit(port, password(agent), mail("Lunch?", to="friend@example.org"), ["friend@example.org"])
    assert agent.smtp.wait_for(1)[0].rcpt_tos == ("friend@example.org",)
    eventually(lambda: agent.subjects("Sent") == ["Lunch?"])


def test_a_wrong_password_is_refused(agent: Agent) -> None:
    port = open_door(agent)
    agent.start()
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        client.ehlo()
        client.user, client.password = USER, "not-the-password"
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.auth("PLAIN", client.auth_plain)
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:  # and nothing goes without a login
        client.ehlo()
        code, _ = client.mail(STUDENT)
        assert code == 530


def test_kill_9_between_the_outbox_and_the_250_sends_once(agent: Agent) -> None:
    port = open_door(agent)
    agent.start(**{VARIABLE: "submission-appended"})
    raw = mail("Sent again after a crash", message_id=False)  # not even a Message-ID to recognise it by
    with pytest.raises(smtplib.SMTPException):
        submit(port, password(agent), raw, [MENTOR])
    assert agent.wait_exit() == -signal.SIGKILL
    # Durable before the 250 that never came: in the Outbox, or already claimed into Sending by the first life's
    # intake (woken by the door) before the kill.
    assert agent.subjects("Outbox") + agent.subjects("Sending") == ["Sent again after a crash"]
    start(agent, port)
    submit(port, password(agent), raw, [MENTOR])  # the mail program tries again, as it does after no answer
    agent.smtp.wait_for(1)
    eventually(lambda: agent.subjects("Sent") == ["Sent again after a crash"])
    # Settled: the retry and the second life's intake race (the retry can be appended while the first copy is on
    # its way), so the Outbox is looked at once Sent has it, until it is empty.
    eventually(lambda: agent.folder_raw("Outbox") == {})
    assert agent.folder_raw("Needs attention") == {}
    assert len(agent.smtp.messages) == 1
    assert not [n for n in agent.notices() if "Not sent" in str(n["Subject"])]


def _program(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed")
    return found


def msmtprc(agent: Agent, port: int) -> Path:
    rc = agent.root / "msmtprc"
    rc.write_text(
        f"account agent\nhost 127.0.0.1\nport {port}\nauth plain\nuser {USER}\npassword {password(agent)}\n"
        f"tls off\nfrom {STUDENT}\naccount default : agent\n"
    )
    rc.chmod(0o600)
    return rc


def test_msmtp_sends_through_the_agent(agent: Agent) -> None:
    port = open_door(agent)
    agent.start()
    rc = msmtprc(agent, port)
    raw = mail("From msmtp", Bcc="dean@med.example.edu")
    subprocess.run([_program("msmtp"), "-C", str(rc), "-t"], input=raw, check=True, timeout=30)
    received = agent.smtp.wait_for(1)[0]
    assert sorted(received.rcpt_tos) == sorted([MENTOR, "dean@med.example.edu"])
    eventually(lambda: agent.subjects("Sent") == ["From msmtp"])
    assert len(agent.smtp.messages) == 1


def test_s_nail_sends_through_the_agent(agent: Agent) -> None:
    port = open_door(agent)
    agent.start()
    secret = password(agent)
    subprocess.run(
        [
            _program("s-nail"),
            "-:/",
            "-Sv15-compat",
            "-Sttycharset=utf-8",
            "-Snosave",
            f"-Smta=smtp://{USER}:{secret}@127.0.0.1:{port}",
            "-Ssmtp-auth=plain",
            f"-r{STUDENT}",
            "-sFrom s-nail",
            MENTOR,
        ],
        input=b"Hello from s-nail\n",
        check=True,
        timeout=30,
        env={"HOME": str(agent.root), "PATH": "/usr/bin:/bin"},
    )
    received = agent.smtp.wait_for(1)[0]
    assert received.rcpt_tos == (MENTOR,)
    eventually(lambda: agent.subjects("Sent") == ["From s-nail"])


def test_neomutt_sends_through_the_agent(agent: Agent) -> None:
    port = open_door(agent)
    agent.start()
    muttrc = agent.root / "muttrc"
    muttrc.write_text(
        f'set smtp_url = "smtp://{USER}@127.0.0.1:{port}/"\nset smtp_pass = "{password(agent)}"\n'
        f'set from = "{STUDENT}"\nset ssl_starttls = no\nset ssl_force_tls = no\nset record = ""\n'
        "set copy = no\n"
    )
    subprocess.run(
        [
            _program("neomutt"),
            "-n",
            "-F",
            str(muttrc),
            "-s",
            "From neomutt",
            "-b",
            "dean@med.example.edu",
            "--",
            MENTOR,
        ],
        input=b"Hello from neomutt\n",
        check=True,
        timeout=30,
        env={"HOME": str(agent.root), "PATH": "/usr/bin:/bin", "TERM": "dumb"},
    )
    received = agent.smtp.wait_for(1)[0]
    assert sorted(received.rcpt_tos) == sorted([MENTOR, "dean@med.example.edu"])
    sent = eventually(lambda: agent.folder("Sent"))
    assert sent[0]["Bcc"] == "dean@med.example.edu"
    assert parse(received.content)["Bcc"] is None


def test_the_programs_own_sent_copy_of_a_held_message_is_not_a_second_one(agent: Agent) -> None:
    agent.policy(policy_text(min_gap="1h"))
    port = open_door(agent)
    agent.start()
    submit(port, password(agent), mail("Goes now"), [MENTOR])
    agent.smtp.wait_for(1)
    raw = mail("Waits an hour")
    submit(port, password(agent), raw, [MENTOR])
    agent.dovecot.append(agent.user, SENT, raw, ("\\Seen",))  # the program files its copy at once, as most do
    eventually(lambda: agent.subjects("Scheduled") == ["Waits an hour"])
    eventually(lambda: agent.subjects("Sent") == ["Goes now"])  # seen once: in Scheduled, not yet in Sent
    assert "found in Sent, sent without the agent" not in agent.log()  # never counted as received
    with agent.dovecot.client(agent.user) as client:  # send it now anyway
        client.select_folder("Scheduled")
        client.add_flags(client.search(["ALL"]), [b"\\Flagged"])
    agent.smtp.wait_for(2)
    eventually(lambda: sorted(agent.subjects("Sent")) == ["Goes now", "Waits an hour"])
    assert len(agent.smtp.messages) == 2


def test_the_programs_own_sent_copy_without_a_message_id_is_known_by_its_bytes(agent: Agent) -> None:
    """A program that writes no Message-ID: the agent makes one, which the program's Sent copy never has; the copy
    is known by its header block (as submitted) and is never recorded as received, nor shown twice."""
    agent.policy(policy_text(min_gap="1h"))
    port = open_door(agent)
    agent.start()
    submit(port, password(agent), mail("Goes now"), [MENTOR])
    agent.smtp.wait_for(1)
    raw = mail("Held, no Message-ID", message_id=False)
    submit(port, password(agent), raw, [MENTOR])
    eventually(lambda: agent.subjects("Scheduled") == ["Held, no Message-ID"])
    agent.dovecot.append(agent.user, SENT, raw, ("\\Seen",))  # its own copy, without a Message-ID
    eventually(lambda: "early copy" in [r[0] for r in agent.ledger().db.execute("SELECT event FROM log")])
    assert agent.subjects("Sent") == ["Goes now"]
    assert not list(agent.ledger().db.execute("SELECT 1 FROM log WHERE event = 'counted'"))


def test_the_same_bytes_handed_over_again_an_hour_later_are_a_new_message(agent: Agent) -> None:
    """A script that writes no Message-ID nor Date sends the same note again a week later: a second message, not
    a retry (a retry after a lost 250 comes within the hour, and is still taken once)."""
    raw = f"From: Sam Patel <{STUDENT}>\r\nTo: {MENTOR}\r\nSubject: Running late\r\n\r\nSorry, 10 minutes late.\r\n"
    port = open_door(agent)
    agent.start()
    submit(port, password(agent), raw.encode(), [MENTOR])
    agent.smtp.wait_for(1)
    submit(port, password(agent), raw.encode(), [MENTOR])  # at once: a retry, taken once
    with agent.ledger().db as db:  # the first hand-over, a week ago
        db.execute("UPDATE log SET at = '2026-01-01T00:00:00+00:00' WHERE event LIKE 'submitted%'")
    submit(port, password(agent), raw.encode(), [MENTOR])
    agent.smtp.wait_for(2)
    eventually(lambda: agent.subjects("Sent") == ["Running late", "Running late"])
    ids = {parse(m.content)["Message-ID"] for m in agent.smtp.messages}
    assert len(ids) == 2 and len(agent.smtp.messages) == 2


def test_a_message_the_outbox_would_refuse_is_refused_before_the_250(agent: Agent) -> None:
    """Mail to more than 100 people: the program is told at once (550, with the reason), not 250 and later a
    notice; nothing lands in Needs attention."""
    port = open_door(agent)
    agent.start()
    crowd = [f"friend{n}@example.org" for n in range(101)]
    with pytest.raises(smtplib.SMTPDataError) as refused:
        submit(port, password(agent), mail("To everyone", to=", ".join(crowd)), crowd)
    assert refused.value.smtp_code == 550 and b"more than 100 recipients" in refused.value.smtp_error
    assert agent.folder_raw("Outbox") == {} and agent.folder_raw("Needs attention") == {}


def test_the_programs_late_sent_copy_of_a_message_already_filed_is_not_a_second_one(agent: Agent) -> None:
    """The program files its own copy after the agent filed the one that went (a laptop that woke up): one copy."""
    port = open_door(agent)
    agent.start()
    raw = mail("Question for you")
    submit(port, password(agent), raw, [MENTOR])
    agent.smtp.wait_for(1)
    eventually(lambda: agent.subjects("Sent") == ["Question for you"])
    agent.dovecot.append(agent.user, SENT, raw, ("\\Seen",))  # its own copy, late
    agent.drop(mail("Marker", to="friend@example.org"))
    agent.smtp.wait_for(2)
    eventually(lambda: sorted(agent.subjects("Sent")) == ["Marker", "Question for you"])


def test_the_programs_sent_copy_of_a_message_set_aside_leaves_sent(agent: Agent) -> None:
    """A message set aside (Needs attention) was not sent: the program's own copy in Sent must not say it was."""
    port = open_door(agent)
    agent.start()
    raw = mail("[agenda] Topics for Friday")
    submit(port, password(agent), raw, [MENTOR])
    agent.dovecot.append(agent.user, SENT, raw, ("\\Seen",))
    eventually(lambda: agent.subjects("Needs attention") == ["[agenda] Topics for Friday"])
    agent.drop(mail("Marker", to="friend@example.org"))
    agent.smtp.wait_for(1)
    eventually(lambda: agent.subjects("Sent") == ["Marker"])
    assert agent.subjects("Needs attention") == ["[agenda] Topics for Friday"]


def test_another_message_with_a_message_id_already_taken_is_refused_with_why_never_dropped(agent: Agent) -> None:
    """Left by the second hostile round of issue 21: a different message with the Message-ID of one already taken was
    answered 250 and dropped (lost, nobody told). It cannot be told from that message re-encoded by a program that
    rebuilds its MIME on each try (the third round: taking it sent the mentor a second copy), so neither is guessed:
    550 with why, and the program keeps it. A retry of the same bytes is still taken once."""
    port = open_door(agent)
    agent.start()
    secret = password(agent)
    first = mail("Lunch on Friday?", to="friend@example.org", message_id=False, Message_ID="<reused@med.example.edu>")
    second = mail("Notes from rounds", to="friend@example.org", message_id=False, Message_ID="<reused@med.example.edu>")
    submit(port, secret, first, ["friend@example.org"])
    agent.smtp.wait_for(1)
    for _ in range(2):
        with pytest.raises(smtplib.SMTPDataError) as refused:
            submit(port, secret, second, ["friend@example.org"])
        assert refused.value.smtp_code == 550 and b"<reused@med.example.edu>" in refused.value.smtp_error
    submit(port, secret, first, ["friend@example.org"])  # a retry after a lost 250: taken once
    eventually(lambda: agent.subjects("Sent") == ["Lunch on Friday?"])
    assert [parse(m.content)["Subject"] for m in agent.smtp.messages] == ["Lunch on Friday?"]
    assert agent.folder_raw("Outbox") == {} and agent.folder_raw("Needs attention") == {}


def test_a_retry_with_the_envelope_recipients_in_another_order_is_taken_once(agent: Agent) -> None:
    """The third hostile round: the Bcc written back from the envelope followed the RCPT order, so a program that
    names them in another order when it tries again handed over "another" message: the mentor got two copies."""
    agent.policy(policy_text(min_gap="1h"))
    port = open_door(agent)
    agent.start()
    secret = password(agent)
    raw = mail("Second, via Send")
    submit(port, secret, raw, [MENTOR, "dean@med.example.edu", "chair@med.example.edu"])
    agent.smtp.wait_for(1)
    submit(port, secret, raw, ["chair@med.example.edu", MENTOR, "dean@med.example.edu"])
    eventually(lambda: agent.subjects("Sent") == ["Second, via Send"])
    assert len(agent.smtp.messages) == 1
    assert sorted(agent.smtp.messages[0].rcpt_tos) == sorted([MENTOR, "dean@med.example.edu", "chair@med.example.edu"])


def test_a_retry_rebuilt_with_a_new_mime_boundary_after_a_kill_never_goes_twice(agent: Agent) -> None:
    """The third hostile round: killed between the Outbox and the 250; the program tries again with the message
    built anew (the same Message-ID and text, a new MIME boundary). Refused with why; the first copy goes, once."""
    port = open_door(agent)
    agent.start(**{VARIABLE: "submission-appended"})

    def built() -> bytes:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = f"Sam Patel <{STUDENT}>", MENTOR, "Case notes"
        message["Message-ID"] = "<rebuilt@med.example.edu>"
        message.set_content("Dear Dr. Rivera,\n\nmy case notes are attached.\n\nSam\n")
        message.add_attachment(b"case notes\n", maintype="text", subtype="plain", filename="notes.txt")
        return message.as_bytes(policy=email_policy.SMTP)

    first = built()
    with pytest.raises(smtplib.SMTPException):
        submit(port, password(agent), first, [MENTOR])
    assert agent.wait_exit() == -signal.SIGKILL
    start(agent, port)
    agent.smtp.wait_for(1)
    retry = built()
    assert retry != first
    with pytest.raises(smtplib.SMTPDataError) as refused:
        submit(port, password(agent), retry, [MENTOR])
    assert refused.value.smtp_code == 550
    eventually(lambda: agent.subjects("Sent") == ["Case notes"])
    assert len(agent.smtp.messages) == 1


def test_a_look_in_sending_that_fails_is_answered_451_and_nothing_is_put_in_the_outbox(agent: Agent) -> None:
    """Left by the second hostile round of issue 21: any error in the door's look in Sending was taken for "no
    Sending folder yet" (only a folder not listed at all is that now), and the message appended anyway: a retry while the first copy was in Sending then made a
    second copy, set aside with a "Not sent" notice. A failed look is no answer: 451, and the program tries again."""
    port = open_door(agent)
    agent.start()
    secret = password(agent)
    with agent.dovecot.client(agent.user) as client:  # Sending listed (it has a child), but it cannot be opened
        client.create_folder("Sending/kept")
        client.delete_folder("Sending")
        assert "Sending" in [name for _, _, name in client.list_folders()]
    with pytest.raises(smtplib.SMTPResponseException) as refused:
        submit(port, secret, mail("Lunch on Friday?", to="friend@example.org"), ["friend@example.org"])
    assert refused.value.smtp_code == 451
    assert agent.folder_raw("Outbox") == {}
    with agent.dovecot.client(agent.user) as client:
        client.delete_folder("Sending/kept")
        client.create_folder("Sending")
    submit(port, secret, mail("Lunch on Friday?", to="friend@example.org"), ["friend@example.org"])
    eventually(lambda: agent.subjects("Sent") == ["Lunch on Friday?"])
    assert len(agent.smtp.messages) == 1


# -- the fourth hostile round (each failed before its fix) -------------------------------------------------------------


def test_an_msmtp_retry_after_a_lost_250_goes_once_though_msmtp_writes_it_a_new_message_id(agent: Agent) -> None:
    """msmtp writes a Message-ID (and a Date) into a message that has none, anew on each try: killed between the
    Outbox and the 250, the same message sent again arrived as "another" one and the mentor got two. The same text to
    the same people within the hour is a retry, whatever its Message-ID."""
    port = open_door(agent)
    agent.start(**{VARIABLE: "submission-appended"})
    rc = msmtprc(agent, port)
    raw = f"From: Sam Patel <{STUDENT}>\r\nTo: {MENTOR}\r\nSubject: Via msmtp\r\n\r\nA short question.\r\n".encode()
    first = subprocess.run([_program("msmtp"), "-C", str(rc), "-t"], input=raw, timeout=30, capture_output=True)
    assert first.returncode != 0
    assert agent.wait_exit() == -signal.SIGKILL
    start(agent, port)
    subprocess.run([_program("msmtp"), "-C", str(rc), "-t"], input=raw, timeout=30, check=True)
    eventually(lambda: agent.subjects("Sent") == ["Via msmtp"])
    assert len(agent.smtp.messages) == 1


def test_a_script_retry_with_a_new_date_and_no_message_id_goes_once(agent: Agent) -> None:
    """A script writes a Date but no Message-ID and builds the message again when it tries again: the Message-ID made
    for it came from its bytes, Date and all, and the retry went as a second message."""
    port = open_door(agent)
    agent.start(**{VARIABLE: "submission-appended"})

    def built(date: str) -> bytes:
        return (
            f"From: {STUDENT}\r\nTo: {MENTOR}\r\nSubject: Running late\r\nDate: {date}\r\n\r\nTen minutes.\r\n".encode()
        )

    with pytest.raises(smtplib.SMTPException):
        submit(port, password(agent), built("Sun, 06 Dec 2026 17:00:00 +0000"), [MENTOR])
    assert agent.wait_exit() == -signal.SIGKILL
    start(agent, port)
    submit(port, password(agent), built("Sun, 06 Dec 2026 17:00:02 +0000"), [MENTOR])
    eventually(lambda: agent.subjects("Sent") == ["Running late"])
    assert len(agent.smtp.messages) == 1


def test_a_message_she_cancelled_and_sends_again_is_taken_as_a_new_try(agent: Agent) -> None:
    """Held, she deletes it from Scheduled (cancelled), then sends it again from her program: answered 250 "in your
    Mentor Outbox" and put nowhere (the door took the earlier hand-over for this one, set aside)."""
    agent.policy(policy_text(min_gap="1h"))
    port = open_door(agent)
    agent.start()
    secret = password(agent)
    submit(port, secret, mail("First"), [MENTOR])
    agent.smtp.wait_for(1)
    raw = mail("Held then cancelled")
    submit(port, secret, raw, [MENTOR])
    eventually(lambda: agent.subjects("Scheduled") == ["Held then cancelled"])
    with agent.dovecot.client(agent.user) as client:
        client.select_folder("Scheduled")
        client.delete_messages(client.search("ALL"))
        client.expunge()
    eventually(lambda: bool(agent.ledger().in_states("cancelled")))
    submit(port, secret, raw, [MENTOR])
    eventually(lambda: agent.subjects("Scheduled") == ["Held then cancelled"])
    assert len(agent.smtp.messages) == 1


# -- the fifth hostile round -------------------------------------------------------------------------------------------


def test_a_451_then_a_lost_250_then_a_retry_under_new_message_ids_goes_once(agent: Agent) -> None:
    """Try 1 is answered 451 (a look in Sending fails), try 2 (a new Message-ID, as msmtp writes) is put in the
    Outbox and the daemon is killed before its 250, try 3 (another new one) came: the retries were known by try 1's
    Message-ID, which is nowhere, and the mentor got two."""
    port = open_door(agent)
    agent.start(**{VARIABLE: "submission-appended"})
    secret = password(agent)
    with agent.dovecot.client(agent.user) as client:  # Sending listed (it has a child), but it cannot be opened
        client.create_folder("Sending/kept")
        client.delete_folder("Sending")
    with pytest.raises(smtplib.SMTPResponseException) as refused:
        submit(port, secret, mail("Retry me"), [MENTOR])
    assert refused.value.smtp_code == 451
    with agent.dovecot.client(agent.user) as client:
        client.delete_folder("Sending/kept")
        client.create_folder("Sending")
    with pytest.raises(smtplib.SMTPException):
        submit(port, secret, mail("Retry me"), [MENTOR])
    assert agent.wait_exit() == -signal.SIGKILL
    start(agent, port)
    submit(port, secret, mail("Retry me"), [MENTOR])
    eventually(lambda: agent.subjects("Sent") == ["Retry me"])
    assert len(agent.smtp.messages) == 1


def test_two_replies_with_the_same_words_to_two_of_her_emails_both_go(agent: Agent) -> None:
    """Fifth round: "Thanks, will do." to two of the mentor's e-mails, one after the other: the second was taken for
    a retry of the first, answered 250 and put nowhere. Its thread makes it another message."""
    port = open_door(agent)
    agent.start()
    secret = password(agent)
    for thread in ("<m1@hospital.example.org>", "<m2@hospital.example.org>"):
        reply = mail("Re: Clinic", body="Thanks, will do.\n", In_Reply_To=thread, References=thread)
        submit(port, secret, reply, [MENTOR])
    agent.smtp.wait_for(2)
    assert len(agent.smtp.messages) == 2
