"""Only a person's answer is an answer (issue 23), pass by pass on the in-memory mailbox and a real aiosmtpd:
auto-replies and read receipts release nothing, a bounce is told with the server's words and stops counting as
unanswered, a reply in a longer thread answers the message it replies to, a reply that arrives before the
phone's copy is seen in Sent is not lost, the server's arrival time beats her clock, and a reply from an address
not in her policy is told once."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from agent.reconcile.history import Seen
from agent.store.answer_times import answer_times
from tests.agent_process import MENTOR, OUTBOX, STUDENT, parse, policy_text
from tests.servers.smtp import SmtpServer
from tests.test_passes_on_fake import SENT, Pass, mail

CORPUS = Path(__file__).parent / "corpus"
Q1 = "<q1.rotation@med.example.edu>"


def redated(raw: bytes, at: datetime) -> bytes:
    """A corpus message as if written at ``at`` (the corpus is dated in the past)."""
    return re.sub(rb"(?m)^Date:[^\r\n]*", f"Date: {format_datetime(at)}".encode(), raw, count=1)


@pytest.fixture
def held(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Pass]:
    """One question sent (Message-ID ``Q1``) and a second one held until she answers (max_unanswered = 1)."""
    made = Pass(tmp_path, smtp_server, policy_text(max_unanswered=1))
    try:
        made.server.put(OUTBOX, mail("Question about the rotation", message_id=Q1))
        made.run()
        made.server.put(OUTBOX, mail("second question"))
        made.run()
        assert made.received() == ["Question about the rotation"]
        assert made.subjects("Scheduled") == ["second question"]
        yield made
    finally:
        made.world.ledger.close()


def notices(made: Pass) -> list[str]:
    return [s for s in made.subjects("INBOX") if s.startswith("[mentor-agent]")]


def notice_texts(made: Pass) -> list[str]:
    """Subject and text of each notice in INBOX, decoded."""
    found = []
    for raw in made.server.messages("INBOX").values():
        message = parse(raw)
        if message["X-Mentor-Agent"] == "notice":
            body = message.get_body(("plain",))
            found.append(f"{message['Subject']}\n{body.get_content() if body is not None else ''}")
    return found


MACHINES = sorted([*CORPUS.glob("auto_replies/*.eml"), *CORPUS.glob("read_receipts/*.eml")])


@pytest.mark.parametrize("path", MACHINES, ids=lambda p: p.name)
def test_an_auto_reply_or_a_read_receipt_releases_nothing(held: Pass, path: Path) -> None:
    held.server.put("INBOX", redated(path.read_bytes(), datetime.now(UTC) + timedelta(seconds=2)))
    held.run()
    assert held.received() == ["Question about the rotation"]
    assert held.world.ledger.history("rivera", datetime.now(UTC) - timedelta(days=1)).replies == ()
    (loaded,) = list(held.world.book)
    assert answer_times(held.world.ledger, loaded, datetime.now(UTC))["mentor"]["answered"] == 0
    held.seen = Seen()  # a restart reads INBOX again: logged once
    held.run()
    logged = held.world.ledger.db.execute("SELECT detail FROM log WHERE event = 'not-an-answer'").fetchall()
    assert len(logged) == 1 and logged[0][0], "logged once, with the sign it was known by"
    # ... and a person's reply still does.
    person = redated((CORPUS / "people" / "outlook_reply.eml").read_bytes(), datetime.now(UTC) + timedelta(seconds=2))
    held.server.put("INBOX", person)
    held.run()
    assert held.received() == ["Question about the rotation", "second question"]


@pytest.mark.parametrize("name", ["postfix_user_unknown.eml", "exchange_ndr.eml", "gmail_mailbox_full.eml"])
def test_a_bounce_is_told_with_the_server_words_and_no_longer_waits_for_an_answer(held: Pass, name: str) -> None:
    held.server.put("INBOX", (CORPUS / "dsn" / name).read_bytes())
    held.run()
    told = [s for s in notices(held) if "Not delivered" in s]
    assert told == ["[mentor-agent] Not delivered to Dr. Ana Rivera: Question about the rotation"]
    text = next(t for t in notice_texts(held) if "Not delivered" in t)
    words = {"postfix_user_unknown.eml": "User unknown", "exchange_ndr.eml": "RecipientNotFound"}
    assert words.get(name, "over quota") in text
    # She never got it: it no longer counts as unanswered, so the held question goes.
    assert held.received() == ["Question about the rotation", "second question"]
    # Still counted for the day it went.
    sent = held.world.ledger.history("rivera", datetime.now(UTC) - timedelta(days=1)).sent
    assert [item.bounced for item in sent] == [True, False]
    # A restart reads INBOX again: the student is told once.
    held.seen = Seen()
    held.run()
    assert len([s for s in notices(held) if "Not delivered" in s]) == 1


def test_a_delay_warning_changes_nothing(held: Pass) -> None:
    held.server.put("INBOX", (CORPUS / "dsn" / "postfix_delayed.eml").read_bytes())
    held.run()
    assert not [s for s in notices(held) if "Not delivered" in s]
    assert held.received() == ["Question about the rotation"]


def test_a_reply_in_a_longer_thread_answers_the_message_it_replies_to(held: Pass) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=2)
    held.server.put("INBOX", mail("Re: q", to=STUDENT, sender=MENTOR, at=soon, message_id="<r1@h>", In_Reply_To=Q1))
    held.run()
    assert held.received() == ["Question about the rotation", "second question"]
    m2 = held.world.ledger.in_states("done")[-1].message_id
    thread = f"{Q1} <r1@h> {m2}"
    held.server.put("INBOX", mail("Re: q", to=STUDENT, sender=MENTOR, at=soon, In_Reply_To=m2, References=thread))
    held.run()
    held.server.put(OUTBOX, mail("third question"))
    held.run()
    assert held.received() == ["Question about the rotation", "second question", "third question"]


def test_a_reply_to_a_message_from_the_phone_is_not_lost(tmp_path: Path, smtp_server: SmtpServer) -> None:
    made = Pass(tmp_path, smtp_server, policy_text(max_unanswered=1))
    try:
        # The phone's copy reaches Sent and her reply reaches INBOX before the same pass.
        made.server.put(SENT, mail("from my phone", message_id="<phone@med.example.edu>"))
        soon = datetime.now(UTC) + timedelta(seconds=2)
        reply = mail("Re: from my phone", to=STUDENT, sender=MENTOR, at=soon, In_Reply_To="<phone@med.example.edu>")
        made.server.put("INBOX", reply)
        made.run()
        made.server.put(OUTBOX, mail("next question"))
        made.run()
        assert made.received() == ["next question"], "she answered the phone's message: nothing is unanswered"
    finally:
        made.world.ledger.close()


def test_her_clock_minutes_behind_does_not_discard_her_reply(held: Pass) -> None:
    early = datetime.now(UTC) - timedelta(minutes=3)  # her Date:, before the agent sent the question
    held.server.put("INBOX", mail("Re: q", to=STUDENT, sender=MENTOR, at=early, In_Reply_To=Q1))
    held.run()
    assert held.received() == ["Question about the rotation", "second question"]
    (reply,) = held.world.ledger.history("rivera", datetime.now(UTC) - timedelta(days=1)).replies
    assert reply.at >= early + timedelta(minutes=2), "booked at her server's arrival time, not her clock"


@pytest.mark.parametrize(
    ("sender", "hint"), [("ana.rivera.md@gmail.example.com", ""), ("arivera+mentoring@hospital.example.org", "+tag")]
)
def test_a_reply_from_an_address_not_in_her_policy_is_told_once(held: Pass, sender: str, hint: str) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=2)
    held.server.put("INBOX", mail("Re: q", to=STUDENT, sender=sender, at=soon, In_Reply_To=Q1))
    held.server.put("INBOX", mail("Re: q again", to=STUDENT, sender=sender, at=soon, In_Reply_To=Q1))
    held.run()
    assert held.received() == ["Question about the rotation"], "a stranger's mail is no answer"
    about = [text for text in notice_texts(held) if sender in text]
    assert len(about) == 1
    assert "rivera.toml" in about[0]
    assert hint in about[0]
    held.seen = Seen()  # a restart
    held.run()
    assert len([raw for raw in held.server.messages("INBOX").values() if sender.encode() in raw]) == 3


def test_mail_to_her_address_with_a_plus_tag_is_told_once(tmp_path: Path, smtp_server: SmtpServer) -> None:
    made = Pass(tmp_path, smtp_server, policy_text(max_unanswered=1))
    try:
        tagged = "arivera+mentoring@hospital.example.org"
        made.server.put(OUTBOX, mail("to the tag", to=tagged))
        made.server.put(OUTBOX, mail("to the tag again", to=tagged))
        made.run()
        # both go at once, over the sender's parallel connections: in either order
        assert sorted(made.received()) == ["to the tag", "to the tag again"], "mail to no mentor, as before"
        told = [text for text in notice_texts(made) if tagged in text]
        assert len(told) == 1
        assert "rivera.toml" in told[0] and "arivera@hospital.example.org with a +tag" in told[0]
    finally:
        made.world.ledger.close()


@pytest.mark.parametrize("path", sorted(CORPUS.glob("people/*.eml")), ids=lambda p: p.name)
def test_a_persons_reply_releases_what_waits_for_it(held: Pass, path: Path) -> None:
    """Hers, from every client, X-Auto-Response-Suppress (Exchange's request to auto-responders) included."""
    held.server.put("INBOX", redated(path.read_bytes(), datetime.now(UTC) + timedelta(seconds=2)))
    held.run()
    assert held.received() == ["Question about the rotation", "second question"]


@pytest.mark.parametrize("subject", ["Read: your abstract - two comments inside", "Letto: ottimo lavoro, due commenti"])
def test_a_reply_taken_for_automatic_by_its_subject_alone_is_told_once(held: Pass, subject: str) -> None:
    """A hostile round: a subject she typed ("Read: …") passed for a read receipt, and what waited for her answer
    stayed held without a word. Known by no header, it still does not count, and the student is told, once."""
    later = datetime.now(UTC) + timedelta(seconds=2)
    held.server.put("INBOX", mail(subject, to=STUDENT, sender=MENTOR, at=later, In_Reply_To=Q1))
    for _ in range(2):
        held.seen = Seen()  # INBOX read again (a reconnect)
        held.run()
    assert held.subjects("Scheduled") == ["second question"]
    told = [s for s in notices(held) if "Not counted as Dr. Ana Rivera's answer" in s]
    assert len(told) == 1, notices(held)


def test_an_auto_reply_known_by_its_header_is_not_told(held: Pass) -> None:
    later = datetime.now(UTC) + timedelta(seconds=2)
    reply = mail("Re: Question", to=STUDENT, sender=MENTOR, at=later, In_Reply_To=Q1, Auto_Submitted="auto-replied")
    held.server.put("INBOX", reply)
    held.run()
    assert not [s for s in notices(held) if "Not counted" in s]


def test_a_reply_automatic_by_its_subject_is_not_told_when_nothing_waits(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """Nothing of the student's waits for her answer: a read receipt sent as plain mail changes nothing, and the
    student is not told of each one (a fifth hostile round: one notice per message she sent, untrue)."""
    made = Pass(tmp_path, smtp_server, policy_text(max_unanswered=50))
    try:
        made.server.put(OUTBOX, mail("Question about the rotation", message_id=Q1))
        made.run()
        later = datetime.now(UTC) + timedelta(seconds=2)
        made.server.put(
            "INBOX", mail("Read: Question about the rotation", to=STUDENT, sender=MENTOR, at=later, In_Reply_To=Q1)
        )
        made.run()
        assert not [s for s in notices(made) if "Not counted" in s]
    finally:
        made.world.ledger.close()
