"""Only a person's answer is an answer (issue 23), with the real daemon, Dovecot and aiosmtpd: what the issue
reproduced, item by item (the pass-by-pass detail is in test_answers_on_fake.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from tests.agent_process import MENTOR, SENT, STUDENT, Agent, agent, eventually, mail, parse, policy_text

__all__ = ["agent"]  # the fixture

CORPUS = Path(__file__).parent / "corpus"


def corpus(name: str, answers: str, at: datetime | None = None) -> bytes:
    """A corpus message answering ``answers`` (its Message-ID), dated ``at`` (now by default)."""
    raw = (CORPUS / name).read_bytes().replace(b"<q1.rotation@med.example.edu>", answers.encode())
    date = format_datetime(at or datetime.now().astimezone())
    return re.sub(rb"(?m)^Date:[^\r\n]*", f"Date: {date}".encode(), raw, count=1)


def held_behind(agent: Agent, subject: str) -> str:
    """Start with max_unanswered = 1, send a first question, hold ``subject``; the first one's Message-ID."""
    agent.policy(policy_text(max_unanswered=1))
    agent.start()
    agent.drop(mail("first question"))
    first = str(parse(agent.smtp.wait_for(1)[0].content)["Message-ID"])
    agent.drop(mail(subject))
    eventually(lambda: agent.subjects("Scheduled") == [subject])
    return first


def test_an_out_of_office_or_a_read_receipt_releases_nothing_and_a_bounce_is_told(agent: Agent) -> None:
    first = held_behind(agent, "second question")
    for name in ("auto_replies/exchange_automatic_reply.eml", "read_receipts/outlook_read.eml"):
        agent.dovecot.append(agent.user, "INBOX", corpus(name, first))
    eventually(lambda: agent.log().count("is not her answer") + agent.log().count("reply from") >= 2)
    assert len(agent.smtp.messages) == 1
    assert agent.ledger().history("rivera", datetime.now().astimezone() - timedelta(days=1)).replies == ()
    status = subprocess.run(
        [sys.executable, "-m", "agent", "status", "--json", "--config", str(agent.config)],
        cwd=agent.root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(status.stdout)["mentors"][0]["answer_times"]["mentor"]["answered"] == 0, status.stderr
    # Her server refuses the first question: the student is told in the server's words, and the held one goes.
    agent.dovecot.append(agent.user, "INBOX", corpus("dsn/postfix_user_unknown.eml", first))
    notice = eventually(lambda: [n for n in agent.notices() if "Not delivered" in str(n["Subject"])])[0]
    assert "User unknown in virtual mailbox table" in notice.get_content()
    assert str(notice["Subject"]).endswith("Not delivered to Dr. Ana Rivera: first question")
    assert parse(agent.smtp.wait_for(2)[1].content)["Subject"] == "second question"


def test_her_reply_to_the_phone_and_with_her_clock_behind_counts(agent: Agent) -> None:
    agent.policy(policy_text(max_unanswered=1))
    agent.start()
    phone = mail("from my phone")
    phone_id = str(parse(phone)["Message-ID"])
    agent.dovecot.append(agent.user, SENT, phone)  # Sent is not watched: nothing wakes the agent
    behind = datetime.now().astimezone() - timedelta(minutes=3)
    reply = mail("Re: from my phone", to=STUDENT, From=MENTOR, In_Reply_To=phone_id)
    agent.dovecot.append(
        agent.user, "INBOX", re.sub(rb"(?m)^Date:[^\r\n]*", b"Date: " + format_datetime(behind).encode(), reply)
    )
    eventually(lambda: "reply from Dr. Ana Rivera" in agent.log())
    agent.drop(mail("next question"))
    assert parse(agent.smtp.wait_for(1)[0].content)["Subject"] == "next question"


def test_a_thread_reply_answers_the_newest_and_an_unknown_address_is_told(agent: Agent) -> None:
    first = held_behind(agent, "second question")
    agent.dovecot.append(
        agent.user, "INBOX", mail("Re: first", to=STUDENT, From="ana.md@gmail.example.com", In_Reply_To=first)
    )
    notice = eventually(lambda: [n for n in agent.notices() if "ana.md@gmail.example.com" in str(n["Subject"])])[0]
    assert "rivera.toml" in notice.get_content()
    r1 = mail("Re: first", to=STUDENT, From=MENTOR, In_Reply_To=first)
    agent.dovecot.append(agent.user, "INBOX", r1)
    second = str(parse(agent.smtp.wait_for(2)[1].content)["Message-ID"])
    thread = f"{first} {parse(r1)['Message-ID']} {second}"
    agent.dovecot.append(
        agent.user, "INBOX", mail("Re: second", to=STUDENT, From=MENTOR, In_Reply_To=second, References=thread)
    )
    eventually(lambda: agent.log().count("reply from Dr. Ana Rivera") == 2)
    agent.drop(mail("third question"))
    assert parse(agent.smtp.wait_for(3)[2].content)["Subject"] == "third question"
