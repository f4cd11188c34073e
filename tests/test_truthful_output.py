"""Truthful output: log lines name messages by subject and short id, "sends now" only when it does, a split
digest is the agent's own mail (never "found in Sent"), a message too large for a digest goes alone, and
``--log-level debug`` shows every decision. Daemon tests run against the real Dovecot and aiosmtpd."""

from __future__ import annotations

import re
import time
from datetime import datetime
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import make_msgid
from zoneinfo import ZoneInfo

import pytest

from agent.logs import named, short_id
from agent.rules.pacing import Engine, History, Queued, SentItem
from agent.store.status import short_id as status_short_id
from tests.agent_process import MENTOR, STUDENT, Agent, agent, closed_window, eventually, mail, parse, policy_text
from tests.helpers import policy

__all__ = ["agent"]
CHICAGO = ZoneInfo("America/Chicago")


def test_a_message_that_waits_only_for_the_one_before_it_does_not_say_sends_now() -> None:
    rules = {"send_windows": ["Mon-Fri 08:00-17:00"], "max_per_day": 5, "min_gap": "0", "max_unanswered": 9}
    engine = Engine(policy(rules, "America/Chicago"), History())
    saturday = datetime(2026, 11, 28, 10, 0, tzinfo=CHICAGO)
    queue = [Queued("a", saturday, "first"), Queued("b", saturday, "second")]
    first, second = engine.plan(queue, saturday)
    assert first.at == second.at == datetime(2026, 11, 30, 8, 0, tzinfo=CHICAGO)
    assert "sends now" not in second.reason and "now" not in second.reason.split(";")[-1]
    assert second.reason.endswith("goes Mon 30 Nov 08:00 CST, after the message(s) before it")
    now_queue = [Queued("c", datetime(2026, 11, 30, 9, 0, tzinfo=CHICAGO), "third")]
    (third,) = Engine(policy(rules, "America/Chicago"), History()).plan(now_queue, now_queue[0].arrived)
    assert third.reason.endswith("sends now")


def test_log_names_use_the_short_id_that_status_shows() -> None:
    assert short_id("<a@b>") == status_short_id("<a@b>")
    assert named("<a@b>", "Draft\nof my  statement") == f"[{status_short_id('<a@b>')}] “Draft of my statement”"


def scan(name: str, size: int) -> bytes:
    message = EmailMessage()
    message["From"] = f"Sam Patel <{STUDENT}>"
    message["To"] = MENTOR
    message["Subject"] = name
    message["Message-ID"] = make_msgid(domain="med.example.edu")
    message.set_content("see attached")
    message.add_attachment(
        bytes(range(256)) * (size // 256), maintype="application", subtype="octet-stream", filename=f"{name}.bin"
    )
    return message.as_bytes(policy=email_policy.SMTP)


@pytest.mark.servers
def test_a_message_over_the_digest_limit_goes_alone_and_split_parts_are_never_found_in_sent(agent: Agent) -> None:
    with agent.config.open("a") as config:
        config.write("\n[digest]\nmax_bytes = 10000\n")
    agent.policy(policy_text(min_gap="6s", over_limit="batch"))
    agent.start()
    agent.drop(mail("first"))
    agent.smtp.wait_for(1)
    whole = scan("whole scan", 15_000)  # larger than max_bytes by itself
    agent.drop(scan("scan one", 6_000))
    agent.drop(whole)
    agent.drop(scan("scan two", 6_000))
    received = agent.smtp.wait_for(4, timeout=30)
    later = [parse(r.content) for r in received[1:]]
    alone = [m for m in later if str(m["Subject"]) == "whole scan"]
    assert len(alone) == 1, [str(m["Subject"]) for m in later]
    assert alone[0]["Message-ID"] == parse(whole)["Message-ID"]  # the student's own message, not a wrapper
    assert all(len(r.content) <= 10_000 for r in received[1:] if b"whole scan.bin" not in r.content)
    digests = sorted(str(m["Subject"]) for m in later if m is not alone[0])
    # Each e-mail is one send (issue 20): with 6 s between e-mails the release goes one e-mail at a time, and the
    # one that goes is composed again on its own (a single message as written, no "(1/2)" for parts that wait).
    assert digests == ["scan one", "scan two"], digests
    notice = eventually(lambda: [n for n in agent.notices() if "too large for a digest" in str(n["Subject"])])[0]
    text = notice.get_content()
    assert "“whole scan”" in text and "alone" in text and "scan one" in text
    # Another pass after everything was filed in Sent: the parts are ours, not "sent without the agent".
    eventually(lambda: len(agent.folder("Sent")) >= 4, timeout=20)
    agent.drop(mail("after"))
    eventually(lambda: "after" in agent.subjects("Scheduled") or len(agent.smtp.messages) >= 5, timeout=20)
    time.sleep(1)
    assert "found in Sent" not in agent.log()
    ledger = agent.ledger()
    try:
        assert ledger.db.execute("SELECT count(*) FROM items WHERE source = 'sent-folder'").fetchone()[0] == 0
        assert ledger.db.execute("SELECT count(*) FROM log WHERE event = 'counted'").fetchone()[0] == 0
    finally:
        ledger.close()


@pytest.mark.servers
def test_logs_name_messages_say_sends_now_only_when_sending_and_debug_shows_decisions(agent: Agent) -> None:
    agent.policy(policy_text(windows=closed_window(), min_gap="0"))  # both messages wait for it
    agent.start()
    first, second = mail("Draft of my personal statement"), mail("Question about the elective")
    agent.drop(first)
    agent.drop(second)
    eventually(lambda: len(agent.subjects("Scheduled")) == 2, timeout=20)
    # The decisions are logged (DEBUG) before the messages move and what she is told (INFO) after: wait for the last.
    said = [
        f"[{short_id(str(parse(raw)['Message-ID']))}] “{subject}” → Dr. Ana Rivera:"
        for raw, subject in ((first, "Draft of my personal statement"), (second, "Question about the elective"))
    ]
    eventually(lambda: all(line in agent.log() for line in said))
    log = agent.log()
    for raw, subject in ((first, "Draft of my personal statement"), (second, "Question about the elective")):
        key = str(parse(raw)["Message-ID"])
        assert re.search(
            rf"DEBUG mentor_agent\.intake: decision=delay mentor=rivera id={short_id(key)} "
            rf"subject=\"{subject}\" message_id={re.escape(key)} reason: ",
            log,
        ), log
    assert "sends now" not in log  # neither was sent
    agent.policy(policy_text(min_gap="0"))  # open all day: now they go
    eventually(lambda: len(agent.smtp.messages) == 2, timeout=20)
    eventually(lambda: "sent [" in agent.log())
    log = agent.log()
    assert "decision=send" in log and "sends now" in log
    assert f"sent [{short_id(str(parse(first)['Message-ID']))}] “Draft of my personal statement” to {MENTOR}" in log


def test_the_one_follow_up_over_max_unanswered_is_named_as_the_follow_up() -> None:
    rules = {"send_windows": ["Mon-Sun 00:00-24:00"], "max_per_day": 5, "max_unanswered": 1, "follow_up_after": "2d"}
    monday = datetime(2026, 11, 30, 9, 0, tzinfo=CHICAGO)
    engine = Engine(policy(rules, "America/Chicago"), History(sent=(SentItem(monday, ("m0",)),)))
    thursday = datetime(2026, 12, 3, 10, 0, tzinfo=CHICAGO)
    (decision,) = engine.plan([Queued("m1", thursday, "still there?")], thursday)
    assert decision.at == thursday and decision.follow_up
    assert "within what you agreed" not in decision.reason
    assert decision.reason.startswith("the one follow-up allowed while 1 message to Dr. Ana Rivera awaits a reply")
    assert decision.reason.endswith("sends now")


def test_2nd_message_today_only_when_one_went_that_day() -> None:
    rules = {"send_windows": ["Mon-Fri 08:00-17:00"], "max_per_day": 1, "max_unanswered": 9}
    evening = datetime(2026, 11, 30, 20, 0, tzinfo=CHICAGO)  # Monday, nothing sent today
    engine = Engine(policy(rules, "America/Chicago"), History())
    first, second = engine.plan([Queued("a", evening, "one"), Queued("b", evening, "two")], evening)
    assert first.at == datetime(2026, 12, 1, 8, 0, tzinfo=CHICAGO)
    assert "today" not in second.reason, second.reason
    assert second.reason.startswith("2nd message on Tue 01 Dec, counting the one planned before it; you agreed on 1")
    morning = datetime(2026, 12, 1, 9, 0, tzinfo=CHICAGO)  # one went at 08:00: now "today" is true
    engine = Engine(policy(rules, "America/Chicago"), History(sent=(SentItem(first.at, ("a",)),)))
    (third,) = engine.plan([Queued("c", morning, "three")], morning)
    assert third.reason.startswith("2nd message today; you agreed on 1 a day"), third.reason
