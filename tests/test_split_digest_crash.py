"""The daemon killed (SIGKILL, agent/crashpoints.py) while a digest split into several e-mails goes out, with
Dovecot and aiosmtpd: after the restart every e-mail the server accepted is in Sent exactly once, and every
message reached the mentor exactly once. The same paths in detail, on the in-memory mailbox, are in
tests/test_split_digest_recovery.py.
"""

from __future__ import annotations

import signal
import time
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from tests.agent_process import MENTOR, STUDENT, Agent, agent, eventually, mail, parse, policy_text

__all__ = ["agent"]
pytestmark = pytest.mark.servers

SCANS = ("scan one", "scan two")


def scan(name: str) -> bytes:
    """About 6 kB once encoded: with [digest] max_bytes = 10 000, two of them make two digest parts."""
    message = EmailMessage()
    message["From"] = f"Sam Patel <{STUDENT}>"
    message["To"] = MENTOR
    message["Subject"] = name
    message["Message-ID"] = make_msgid(domain="med.example.edu")
    message.set_content("see attached")
    message.add_attachment(
        bytes(range(256)) * 24, maintype="application", subtype="octet-stream", filename=f"{name}.bin"
    )
    return message.as_bytes(policy=email_policy.SMTP)


def carries(raw: bytes) -> list[str]:
    """Which scans one e-mail carries: a digest part names its attachments, a message sent alone is the scan."""
    parsed = parse(raw)
    names = {part.get_filename() for part in parsed.walk()}
    return [name for name in SCANS if f"{name}.bin" in names or str(parsed["Subject"]).strip() == name]


@pytest.mark.parametrize("point", ["accepted", "part_accepted"])
def test_kill_9_during_a_split_digest_files_each_accepted_part_once_and_sends_nothing_twice(
    agent: Agent, point: str
) -> None:
    with agent.config.open("a") as config:
        config.write("\n[digest]\nmax_bytes = 10000\n")
    agent.policy(policy_text(over_limit="batch"))
    agent.start()
    agent.drop(mail("first"))
    agent.smtp.wait_for(1)
    eventually(lambda: agent.subjects("Sent") == ["first"])
    agent.stop()
    for name in SCANS:  # both waiting when the daemon starts: they go together as two parts (no min_gap)
        agent.drop(scan(name))
    agent.start(MENTOR_AGENT_CRASH_AT=point)
    assert agent.wait_exit(timeout=60) == -signal.SIGKILL
    crashed_with = len(agent.smtp.messages)
    assert crashed_with == (3 if point == "accepted" else 2), agent.log()
    agent.start()
    # After "part_accepted" the scan never started is back in Scheduled and is decided again under the
    # mentor's rules, as any release.
    eventually(
        lambda: sorted(s for raw in agent.folder_raw("Sent").values() for s in carries(raw)) == list(SCANS),
        timeout=45,
    )
    time.sleep(1.5)  # anything sent or filed twice would show by now
    received = [s for r in agent.smtp.messages for s in carries(r.content)]
    assert sorted(received) == list(SCANS), "each message reached the mentor once"
    filed = [s for raw in agent.folder_raw("Sent").values() for s in carries(raw)]
    assert sorted(filed) == list(SCANS), "each in Sent once"
    assert len(agent.folder_raw("Sent")) == len(agent.smtp.messages), "one copy in Sent of every e-mail sent"
    assert agent.folder_raw("Sending") == {} and agent.folder_raw("Outbox") == {}
    assert agent.folder_raw("Needs attention") == {}
    assert not list((agent.root / "state" / "digests").glob("*")), "the kept copies let go once filed"


def question(n: int) -> bytes:
    """About 3.5 kB once encoded: with [digest] max_bytes = 10 000, two of them fill one digest part."""
    message = EmailMessage()
    message["From"] = f"Sam Patel <{STUDENT}>"
    message["To"] = MENTOR
    message["Subject"] = f"question {n}"
    message["Message-ID"] = make_msgid(domain="med.example.edu")
    message.set_content("".join(f"Line {i} of question {n}, long enough to fill the part.\n" for i in range(60)))
    return message.as_bytes(policy=email_policy.SMTP)


def asked(raw: bytes) -> list[str]:
    """Which questions one e-mail carries."""
    text = parse(raw).as_string()
    return [f"question {n}" for n in range(6) if f"of question {n}," in text]


def test_kill_9_between_parts_the_rest_goes_as_the_remaining_parts_not_one_e_mail_each(agent: Agent) -> None:
    """Six messages due together go as three e-mails of two; killed after the first: the mentor gets three
    e-mails in all, not one plus four (one for each message left)."""
    with agent.config.open("a") as config:
        config.write("\n[digest]\nmax_bytes = 10000\n")
    agent.policy(policy_text(over_limit="batch"))
    for n in range(6):  # all waiting when the daemon starts: one release
        agent.drop(question(n))
    agent.start(MENTOR_AGENT_CRASH_AT="part_accepted")
    assert agent.wait_exit(timeout=60) == -signal.SIGKILL
    assert [asked(r.content) for r in agent.smtp.messages] == [["question 0", "question 1"]], agent.log()
    agent.start()
    everything = [f"question {n}" for n in range(6)]
    eventually(lambda: sorted(q for raw in agent.folder_raw("Sent").values() for q in asked(raw)) == everything)
    time.sleep(1.5)  # anything sent twice, or a straggler sent alone, would show by now
    got = [asked(r.content) for r in agent.smtp.messages]
    assert got == [everything[0:2], everything[2:4], everything[4:6]], f"three e-mails as planned: {got}"
    assert len(agent.folder_raw("Sent")) == 3, "one copy in Sent of each"
    assert agent.folder_raw("Sending") == {} and agent.folder_raw("Scheduled") == {}
    assert agent.folder_raw("Needs attention") == {}
