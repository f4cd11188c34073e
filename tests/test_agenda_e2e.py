"""Held questions as a meeting's agenda, end to end: the real daemon against Dovecot and aiosmtpd."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.agent_process import MENTOR, SENT, STUDENT, Agent, agent, eventually, mail, parse, policy_text
from tests.test_meeting_desk import MEETINGS, event_of, gmail, ics, method_of, propose, statuses

__all__ = ["agent"]  # the fixture
pytestmark = pytest.mark.servers

QUESTIONS = {
    "Which elective first?": "Hello Dr. Rivera,\n\nShould I take cardiology before the research block?\n\nSam\n",
    "[agenda] Poster feedback": "Dear Dr. Rivera,\n\nCould you look at the second figure of my poster?\n\nSam\n",
}


def agenda_policy(**pacing: object) -> str:
    return policy_text(max_unanswered=1, over_limit="agenda", **pacing) + MEETINGS.format(  # type: ignore[arg-type]
        strategy="sequential", proposals=2, timeout="3d"
    )


def reply_to(message_id: str, subject: str = "Re: first question") -> bytes:
    return mail(subject, to=STUDENT, In_Reply_To=message_id, From=f"Ana Rivera <{MENTOR}>")


def held_for_the_agenda(agent: Agent) -> str:
    """q1 goes; two more wait over the limit (one reply outstanding) and become an invitation's agenda."""
    agent.drop(mail("first question"))
    first = parse(agent.smtp.wait_for(1, timeout=15)[0].content)
    agent.stop()  # both taken in by one pass: one invitation lists both (see test_a_question_that_comes_later)
    for subject, body in QUESTIONS.items():
        agent.drop(mail(subject, body=body))
    agent.start()
    eventually(lambda: [n for n in agent.notices() if "On the agenda for" in str(n["Subject"])], timeout=15)

    def scheduled() -> bool:
        subjects = agent.subjects("Scheduled")
        return sorted(s for s in subjects if s in QUESTIONS) == sorted(QUESTIONS) and any(
            s.startswith("Invitation: Mentoring: Which elective first? and 1 more") for s in subjects
        )

    eventually(scheduled, timeout=15)
    assert len(agent.smtp.messages) == 1  # the invitation itself waits for the reply, like any e-mail
    return str(first["Message-ID"])


def agreed_meeting(agent: Agent) -> tuple[Any, Any, str]:
    """A meeting proposed and accepted by her (as Gmail writes it): its REQUEST as received, its event, its UID."""
    propose(agent)
    request = agent.smtp.wait_for(1, timeout=15)[0]
    event = event_of(request.content)
    uid = str(event["UID"])
    answer = ics(uid, "ACCEPTED", start=event.decoded("DTSTART"), end=event.decoded("DTEND"))
    agent.dovecot.append(agent.user, "INBOX", gmail(answer))
    eventually(lambda: statuses(agent).get(uid) == "accepted", timeout=15)
    return request, event, uid


def filed(agent: Agent) -> bool:
    """Each question once in Sent, \\Seen, and no longer in Scheduled."""
    sent = agent.folder_raw("Sent")
    for subject in QUESTIONS:
        copies = [uid for uid, raw in sent.items() if parse(raw)["Subject"] == subject]
        if len(copies) != 1 or "\\Seen" not in agent.dovecot.flags(agent.user, SENT, copies[0]):
            return False
    return not [s for s in agent.subjects("Scheduled") if s in QUESTIONS]


def test_questions_over_the_limit_go_as_the_invitations_agenda(agent: Agent) -> None:
    agent.policy(agenda_policy())
    agent.start()
    first = held_for_the_agenda(agent)
    time.sleep(1.1)  # a Date header counts whole seconds: her reply is later than what the student wrote
    agent.dovecot.append(agent.user, "INBOX", reply_to(first))
    invitation = agent.smtp.wait_for(2, timeout=20)[1]
    event = event_of(invitation.content)
    description = str(event["DESCRIPTION"])
    assert "1. Which elective first?" in description
    assert "Should I take cardiology before the research block?" in description
    assert "2. Poster feedback" in description and "[agenda]" not in description
    assert "Could you look at the second figure" in description
    assert "Hello Dr. Rivera" not in description
    eventually(lambda: filed(agent), timeout=15)
    told = eventually(lambda: [n for n in agent.notices() if "Sent as the agenda" in str(n["Subject"])], timeout=15)
    assert "Poster feedback" in told[0].get_content()
    ledger = agent.ledger()
    try:
        rows = ledger.db.execute("SELECT state, item FROM messages WHERE subject IN (?, ?)", tuple(QUESTIONS))
        invitation_id = str(parse(invitation.content)["Message-ID"])
        assert sorted(tuple(r) for r in rows) == [("done", invitation_id)] * 2
        members = json.loads(
            ledger.db.execute("SELECT members FROM items WHERE message_id = ?", (invitation_id,)).fetchone()[0]
        )
        keys = [k for (k,) in ledger.db.execute("SELECT key FROM messages WHERE subject IN (?, ?)", tuple(QUESTIONS))]
        assert set(keys) <= set(members)
        far = datetime(2000, 1, 1, tzinfo=UTC)
        assert len(ledger.items_between("rivera", far, datetime.now(UTC) + timedelta(days=1))) == 2  # q1, invite
    finally:
        ledger.close()
    time.sleep(2)
    assert len(agent.smtp.messages) == 2  # no digest, nothing twice
    assert all("digest" not in str(parse(m.content)["Subject"]).lower() for m in agent.smtp.messages)
    status = subprocess.run(
        [sys.executable, "-m", "agent", "status", "--json", "--config", str(agent.config)],
        cwd=agent.root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stderr
    times = json.loads(status.stdout)["mentors"][0]["answer_times"]
    assert times["mentor"]["answered"] == 1 and times["mentor"]["median_seconds"] is not None
    assert times["mentor"]["text"].startswith("Dr. Ana Rivera usually answers within under an hour (latest under")
    assert times["mentor"]["text"].endswith("hoped for: within 5 days")  # the invitation still waits for her
    assert "one has waited under an hour so far" in times["mentor"]["text"]
    assert times["student"]["text"].startswith("you answer: no answer measured yet")
    text = subprocess.run(
        [sys.executable, "-m", "agent", "status", "--config", str(agent.config)],
        cwd=agent.root,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "  answers: Dr. Ana Rivera usually answers within under an hour" in text


@pytest.mark.parametrize("point", ["accepted", "agenda-delivered"])
def test_a_crash_between_the_invitation_and_the_filing_loses_and_repeats_nothing(agent: Agent, point: str) -> None:
    agent.policy(agenda_policy())
    agent.start()
    first = held_for_the_agenda(agent)
    agent.stop()
    agent.start(MENTOR_AGENT_CRASH_AT=point)
    agent.dovecot.append(agent.user, "INBOX", reply_to(first))
    agent.wait_exit()
    agent.start()
    eventually(lambda: filed(agent), timeout=20)
    time.sleep(2)
    assert len(agent.smtp.messages) == 2
    assert str(event_of(agent.smtp.messages[1].content)["DESCRIPTION"]).count("Which elective first?") == 1


@pytest.mark.parametrize("crash", [False, True])
def test_a_question_that_comes_later_joins_the_invitation_still_waiting(agent: Agent, crash: bool) -> None:
    """With ``crash``, the daemon is killed right after the join is recorded: the old invitation never goes,
    and the rebuilt one is appended by the meeting desk after a restart (its left-over work, after a minute)."""
    agent.policy(agenda_policy())
    agent.start()
    agent.drop(mail("first question"))
    first = str(parse(agent.smtp.wait_for(1, timeout=15)[0].content)["Message-ID"])
    (one, body_one), (two, body_two) = QUESTIONS.items()
    agent.drop(mail(one, body=body_one))

    def invitations_waiting() -> list[str]:
        return [s for s in agent.subjects("Scheduled") if s.startswith("Invitation:")]

    waiting = eventually(invitations_waiting, timeout=15)
    assert len(waiting) == 1 and "and 1 more" not in waiting[0]
    if crash:
        agent.stop()
        agent.start(MENTOR_AGENT_CRASH_AT="agenda-joined")
    agent.drop(mail(two, body=body_two))
    if crash:
        agent.wait_exit()
        agent.start()
    else:
        eventually(lambda: [n for n in agent.notices() if "1 more question" in str(n["Subject"])], timeout=15)

    def the_longer_one() -> bool:
        waiting = invitations_waiting()
        return len(waiting) == 1 and "and 1 more" in waiting[0]

    eventually(the_longer_one, timeout=100 if crash else 15)
    time.sleep(1.1)
    agent.dovecot.append(agent.user, "INBOX", reply_to(first))
    invitation = agent.smtp.wait_for(2, timeout=20)[1]
    description = str(event_of(invitation.content)["DESCRIPTION"])
    assert "1. Which elective first?" in description and "2. Poster feedback" in description
    eventually(lambda: filed(agent), timeout=15)
    time.sleep(2)
    assert len(agent.smtp.messages) == 2  # the replaced invitation never went
    assert not invitations_waiting()


def test_a_question_deleted_from_scheduled_is_taken_off_the_waiting_invitation(agent: Agent) -> None:
    agent.policy(agenda_policy())
    agent.start()
    first = held_for_the_agenda(agent)
    with agent.dovecot.client(agent.user) as client:
        client.select_folder("Scheduled")
        client.delete_messages(client.search(["SUBJECT", "Poster feedback"]))
        client.expunge()

    def rebuilt() -> bool:
        waiting = [s for s in agent.subjects("Scheduled") if s.startswith("Invitation:")]
        return len(waiting) == 1 and "and 1 more" not in waiting[0]

    eventually(rebuilt, timeout=15)
    told = eventually(lambda: [n for n in agent.notices() if "1 taken off" in str(n["Subject"])], timeout=15)
    assert "Poster feedback" in told[0].get_content()
    time.sleep(1.1)
    agent.dovecot.append(agent.user, "INBOX", reply_to(first))
    description = str(event_of(agent.smtp.wait_for(2, timeout=20)[1].content)["DESCRIPTION"])
    assert "1. Which elective first?" in description and "Poster" not in description
    eventually(lambda: "Which elective first?" in agent.subjects("Sent"), timeout=15)
    time.sleep(2)
    assert len(agent.smtp.messages) == 2
    assert "[agenda] Poster feedback" not in agent.subjects("Sent")


def test_questions_for_an_agreed_meeting_go_with_its_updated_invitation(agent: Agent) -> None:
    """A meeting is agreed and less than ``agenda_ahead`` (24 h) away: a question over the limit goes as an
    update of that invitation (same UID and SEQUENCE, the description listing it), not as a new meeting."""
    agent.policy(agenda_policy())
    agent.start()
    request, event, uid = agreed_meeting(agent)
    (subject, body), _ = QUESTIONS.items()
    agent.drop(mail(subject, body=body))  # one invitation awaits her reply (max_unanswered = 1): over the limit
    told = eventually(lambda: [n for n in agent.notices() if "On the agenda of your meeting" in str(n["Subject"])])
    assert subject in told[0].get_content()
    time.sleep(1.1)
    agent.dovecot.append(agent.user, "INBOX", reply_to(str(parse(request.content)["Message-ID"]), "Re: Invitation"))
    update = agent.smtp.wait_for(2, timeout=20)[1]
    changed = event_of(update.content)
    assert method_of(update.content) == "REQUEST"
    assert (str(changed["UID"]), int(changed["SEQUENCE"])) == (uid, int(event["SEQUENCE"]))
    assert changed.decoded("DTSTART") == event.decoded("DTSTART")
    assert "1. Which elective first?" in str(changed["DESCRIPTION"])
    eventually(lambda: subject in agent.subjects("Sent"), timeout=15)
    assert subject not in agent.subjects("Scheduled")
    time.sleep(2)
    assert len(agent.smtp.messages) == 2  # no second meeting proposed, the question not sent on its own
    assert len(statuses(agent)) == 1


def test_agenda_in_the_subject_to_a_mentor_without_meeting_windows_is_not_sent_but_told(agent: Agent) -> None:
    """A slip: with no [meetings] windows there is no agenda, and the tag must not reach her in the Subject."""
    agent.policy(policy_text())
    agent.start()
    agent.drop(mail("[agenda] Poster feedback"))
    told = eventually(lambda: [n for n in agent.notices() if "Not sent: [agenda] Poster feedback" in str(n["Subject"])])
    text = told[0].get_content()
    assert "no [meetings] windows" in text and "rivera.toml" in text, text
    assert agent.subjects("Needs attention") == ["[agenda] Poster feedback"]
    time.sleep(2)
    assert agent.smtp.messages == []


SIGNED_PART = (
    b'Content-Type: multipart/signed; protocol="application/pgp-signature"; micalg=pgp-sha256; boundary="SS"\r\n\r\n'
    b"--SS\r\nContent-Type: text/plain\r\n\r\nCould we go over my case log?\r\n--SS\r\n"
    b"Content-Type: application/pgp-signature\r\n\r\nSIG\r\n--SS--\r\n"
)


def test_a_message_with_a_signed_part_inside_is_never_an_agenda_question(agent: Agent) -> None:
    """Signed (or encrypted) anywhere inside, it is only valid as written: it goes by e-mail, byte for byte, and
    the student is told, never a line in an invitation (as a message signed as a whole, never held)."""
    agent.policy(agenda_policy())
    head = mail("[agenda] Case log").split(b"\r\n\r\n")[0]
    head = b"\r\n".join(line for line in head.split(b"\r\n") if not line.lower().startswith((b"content-", b"mime-")))
    raw = head + b"\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=OO\r\n\r\n--OO\r\n"
    raw += SIGNED_PART + b"--OO--\r\n"
    agent.drop(raw)
    agent.start()
    [received] = agent.smtp.wait_for(1, timeout=15)
    assert received.content.replace(b"\r\n", b"\n").endswith(raw.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n"))
    told = eventually(lambda: [n for n in agent.notices() if "Back to e-mail" in str(n["Subject"])], timeout=15)
    assert "signed or encrypted" in told[0].get_content()
    assert not [s for s in agent.subjects("Scheduled") if s.startswith("Invitation")]


# -- a hostile round on the agenda ------------------------------------------------------------------------------


def waiting_description(agent: Agent) -> str | None:
    """The DESCRIPTION of the invitation waiting in Scheduled (None: none waits)."""
    for raw in agent.folder_raw("Scheduled").values():
        if str(parse(raw)["Subject"]).startswith("Invitation:"):
            return str(event_of(raw)["DESCRIPTION"])
    return None


def single_offer_policy() -> str:
    return policy_text(over_limit="agenda") + MEETINGS.format(strategy="sequential", proposals=1, timeout="3d")


def test_a_question_whose_invitation_is_in_doubt_is_in_doubt_too_never_e_mailed(agent: Agent) -> None:
    """The invitation carrying the agenda was handed over and the connection broke: it may have reached her, with
    the question. The question went by e-mail after it (twice), told 'the invitation did not go out'."""
    agent.policy(single_offer_policy())
    agent.smtp.drop_after_data()
    agent.start()
    agent.drop(mail("[agenda] Poster feedback", body="Dear Dr. Rivera,\n\nCould you look at figure 2?\n\nSam\n"))
    eventually(lambda: "[agenda] Poster feedback" in agent.subjects("Needs attention"), timeout=20)
    time.sleep(2)  # passes after: nothing more goes
    assert len([m for m in agent.smtp.messages if b"figure 2" in m.content]) == 1, "the invitation only"
    told = [str(n["Subject"]) for n in agent.notices()]
    assert "[mentor-agent] In doubt: [agenda] Poster feedback" in told, told
    assert not [subject for subject in told if "Back to e-mail" in subject], told


def test_a_question_flagged_while_its_invitation_waits_is_taken_off_the_invitation(agent: Agent) -> None:
    """Flagged, it goes by e-mail at once; the invitation waiting in Scheduled still listed it (twice to her)."""
    agent.policy(agenda_policy())
    agent.start()
    held_for_the_agenda(agent)
    with agent.dovecot.client(agent.user) as client:
        client.select_folder("Scheduled")
        client.add_flags(client.search(["SUBJECT", "Poster feedback"]), ["\\Flagged"])
    agent.smtp.wait_for(2, timeout=20)  # the flagged question, by e-mail at once

    rebuilt = eventually(lambda: (found := waiting_description(agent)) is not None and "Poster feedback" not in found)
    assert rebuilt and "Which elective first?" in str(waiting_description(agent))
    assert len([m for m in agent.smtp.messages if b"second figure" in m.content]) == 1


def test_an_agenda_question_also_to_someone_else_is_not_put_on_an_agenda(agent: Agent) -> None:
    """The agenda reaches only the mentor: a colleague in Cc never got the question, and she was told it went."""
    agent.policy(single_offer_policy())
    agent.start()
    agent.drop(mail("[agenda] Poster feedback", Cc=f"Jo Friend <jo@med.example.edu>, Sam <{STUDENT}>"))
    eventually(lambda: "[agenda] Poster feedback" in agent.subjects("Needs attention"), timeout=20)
    (notice,) = [n for n in agent.notices() if "Not sent" in str(n["Subject"])]
    assert "also to jo@med.example.edu" in notice.get_content()
    assert STUDENT not in notice.get_content().split("also to", 1)[1].split(";")[0], "her own Cc is no reason"
    assert agent.smtp.messages == []


def test_a_question_edited_while_its_invitation_waits_goes_with_its_new_text(agent: Agent) -> None:
    """Her program saves the edit as a new copy with the same Message-ID: the invitation went with the old text, and
    the notice named the edited subject."""
    agent.policy(agenda_policy())
    agent.start()
    held_for_the_agenda(agent)
    with agent.dovecot.client(agent.user) as client:
        client.select_folder("Scheduled")
        [uid] = client.search(["SUBJECT", "Poster feedback"])
        old = parse(client.fetch([uid], ["RFC822"])[uid][b"RFC822"])
        edited = mail("[agenda] Poster feedback v2", body="Dear Dr. Rivera,\n\nPlease check the abstract instead.\n")
        client.append(
            "Scheduled", edited.replace(str(parse(edited)["Message-ID"]).encode(), str(old["Message-ID"]).encode())
        )
        client.delete_messages([uid])
        client.expunge()

    assert eventually(lambda: "check the abstract instead" in (waiting_description(agent) or ""))
    assert "second figure" not in (waiting_description(agent) or "") and "Poster feedback v2" in (
        waiting_description(agent) or ""
    )


def test_a_counter_to_the_agreed_meeting_lists_no_question_of_an_update_not_gone(agent: Agent) -> None:
    """A question waits to go with the agreed meeting's updated invitation; she proposes another time before it
    left. The update is taken back and the question goes by e-mail; the invitation for her time listed it too."""
    from zoneinfo import ZoneInfo

    agent.policy(agenda_policy())
    agent.start()
    _, _, uid = agreed_meeting(agent)
    subject, body = next(iter(QUESTIONS.items()))
    agent.drop(mail(subject, body=body))
    eventually(lambda: [n for n in agent.notices() if "On the agenda of your meeting" in str(n["Subject"])])
    noon = (datetime.now(UTC) + timedelta(days=2)).astimezone(ZoneInfo("America/New_York"))
    wanted = noon.replace(hour=12, minute=0, second=0, microsecond=0).astimezone(UTC)
    counter = ics(uid, "NEEDS-ACTION", method="COUNTER", start=wanted, end=wanted + timedelta(minutes=30))
    agent.dovecot.append(agent.user, "INBOX", gmail(counter, method="COUNTER"))

    def countered() -> list[str]:
        return [
            str(event_of(raw).get("DESCRIPTION"))
            for raw in agent.folder_raw("Scheduled").values()
            if b"text/calendar" in raw and event_of(raw).decoded("DTSTART") == wanted
        ]

    assert eventually(lambda: countered(), timeout=20)
    assert not any("cardiology" in description for description in countered())


@pytest.mark.parametrize("change", ["cc", "file"])
def test_a_question_edited_so_an_agenda_cannot_carry_it_is_taken_off(agent: Agent, change: str) -> None:
    """Edited in Scheduled to copy a colleague, or to carry a file, while its invitation waits: it rejoined the
    agenda, the colleague never got it, the file was dropped, and it was filed as delivered (second agenda round)."""
    from email.message import EmailMessage

    agent.policy(agenda_policy())
    agent.start()
    held_for_the_agenda(agent)
    with agent.dovecot.client(agent.user) as client:
        client.select_folder("Scheduled")
        found = client.fetch(client.search(["SUBJECT", "Which elective first?"]), ["RFC822"])
        [(uid, old)] = [
            (uid, parse(item[b"RFC822"]))
            for uid, item in found.items()
            if str(parse(item[b"RFC822"])["Subject"]) == "Which elective first?"
        ]
        edited = EmailMessage()
        for name in ("From", "To", "Subject", "Message-ID", "Date"):
            edited[name] = str(old[name])
        if change == "cc":
            edited["Cc"] = "Jo Friend <jo@med.example.edu>"
        edited.set_content("Hello Dr. Rivera,\n\nCardiology first, JOINTLY with Jo?\n\nSam\n")
        if change == "file":
            edited.add_attachment(b"%PDF-1.4 plan", maintype="application", subtype="pdf", filename="plan.pdf")
        client.append("Scheduled", edited.as_bytes())
        client.delete_messages([uid])
        client.expunge()

    assert eventually(
        lambda: (
            "Poster feedback" in (waiting_description(agent) or "")
            and "Which elective" not in (waiting_description(agent) or "")
        )
    )
    assert "JOINTLY" not in (waiting_description(agent) or "")
