"""A mentor (or the student) whose address has a local part beyond ASCII (RFC 6531): invitations are written
and sent to them like to anyone else, and their address is compared as one spelling (NFC), never as another
mailbox's (KELVIN SIGN is not ``k``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.reconcile import meeting_desk
from agent.rules.addresses import normal_address
from agent.rules.envelope import parse_envelope
from agent.rules.invites import Meeting, Party, build_request, wire_bytes
from agent.rules.slots import Slot
from agent.store.rounds import STALE
from tests.agent_process import MENTOR, OUTBOX, STUDENT, policy_text
from tests.servers.smtp import SmtpServer
from tests.test_meeting_desk import event_of, gmail, ics, meeting_policy, method_of
from tests.test_meetings_on_fake import SENT, Desk
from tests.test_passes_on_fake import Pass, mail

NFC = "jos\u00e9@hospital.example.org"
NFD = "jose\u0301@hospital.example.org"
KIM = "kim@hospital.example.org"
KELVIN = "\u212aim@hospital.example.org"  # KELVIN SIGN: another mailbox than kim@ (RFC 6531 compares it as written)


@pytest.fixture
def smtputf8() -> Iterator[SmtpServer]:
    server = SmtpServer(smtputf8=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_an_invitation_to_and_from_unicode_local_parts_is_written() -> None:
    start = datetime(2030, 3, 4, 15, tzinfo=UTC)
    meeting = Meeting("u1@med.example.edu", 0, Slot(start, start + timedelta(minutes=30)), "Residency")
    zone = ZoneInfo("America/Chicago")
    message = build_request(
        meeting,
        organizer=Party("Sám Patel", "s\u00e1m@med.example.edu"),
        attendee=Party("José Ortiz", NFC),
        mentor_zone=zone,
        student_zone=zone,
        now=start - timedelta(days=3),
    )
    envelope = parse_envelope(wire_bytes(message))
    assert envelope.sender == "s\u00e1m@med.example.edu" and envelope.to == (NFC,), "the addresses as written"
    assert method_of(wire_bytes(message)) == "REQUEST"


def test_a_meeting_request_to_a_unicode_mentor_becomes_an_invitation_that_leaves(
    tmp_path: Path, smtputf8: SmtpServer
) -> None:
    desk = Desk(tmp_path, smtputf8, meeting_policy(strategy="sequential").replace(MENTOR, NFC))
    try:
        desk.server.put(OUTBOX, mail("[meeting] Residency applications", to=NFC))
        desk.settle()
        assert [r.rcpt_tos for r in desk.smtp.messages] == [(NFC,)], "the invitation reached José"
        assert method_of(desk.smtp.messages[0].content) == "REQUEST"
        assert set(desk.statuses().values()) == {"sent"}
        assert "[meeting] Residency applications" in desk.subjects(SENT)
        assert desk.notices("Your meeting request became an invitation")
    finally:
        desk.close()


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        (NFC, NFD, True),  # her mail program writes é decomposed: the same mailbox
        ("JOS\u00c9@Hospital.Example.org", NFC, True),
        (KELVIN, KIM, False),  # KELVIN SIGN lowercases to ASCII k: another mailbox all the same
        ("\u0130nes@hospital.example.org", "ines@hospital.example.org", False),  # dotted capital I is no ASCII i
        ("Kim@Hospital.Example.ORG", KIM, True),
    ],
)
def test_an_address_is_one_spelling_and_never_another_mailbox(one: str, other: str, same: bool) -> None:
    assert (normal_address(one) == normal_address(other)) is same
    assert normal_address(one) == normal_address(normal_address(one)), "normal twice is normal once"


def test_another_mailbox_spelt_with_a_kelvin_sign_is_no_answer(tmp_path: Path, smtp_server: SmtpServer) -> None:
    made = Pass(tmp_path, smtp_server, policy_text(max_unanswered=1).replace(MENTOR, KIM))
    try:
        made.server.put(OUTBOX, mail("question", to=KIM, message_id="<q1@med.example.edu>"))
        made.run()
        made.server.put(OUTBOX, mail("another", to=KIM))
        made.run()
        assert made.received() == ["question"] and made.subjects("Scheduled") == ["another"]
        later = datetime.now(UTC) + timedelta(seconds=2)
        reply = mail(
            "Re: question", to=STUDENT, sender=f"Someone <{KELVIN}>", at=later, In_Reply_To="<q1@med.example.edu>"
        )
        made.server.put("INBOX", reply)
        made.run()
        assert made.received() == ["question"], "another mailbox's mail counted as Dr. Kim's answer"
    finally:
        made.world.ledger.close()


def test_her_answer_in_decomposed_spelling_counts(tmp_path: Path, smtputf8: SmtpServer) -> None:
    made = Pass(tmp_path, smtputf8, policy_text(max_unanswered=1).replace(MENTOR, NFC))
    try:
        made.server.put(OUTBOX, mail("question", to=NFC, message_id="<q1@med.example.edu>"))
        made.run()
        made.server.put(OUTBOX, mail("another", to=NFC))
        made.run()
        assert made.received() == ["question"] and made.subjects("Scheduled") == ["another"]
        later = datetime.now(UTC) + timedelta(seconds=2)
        reply = mail("Re: question", to=STUDENT, sender=f"José <{NFD}>", at=later, In_Reply_To="<q1@med.example.edu>")
        made.server.put("INBOX", reply)
        made.run()
        assert made.received() == ["question", "another"], "her own answer (NFD spelling) not counted"
    finally:
        made.world.ledger.close()


def test_a_meeting_request_whose_invitation_cannot_be_written_is_not_filed_as_sent(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever stops the invitation from being written: the request is not filed in Sent nor said to have become
    an invitation; it waits in Needs attention, she is told why, and no invitation goes later behind her back."""

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("an address the mail library cannot write")

    desk = Desk(tmp_path, smtp_server, meeting_policy(strategy="sequential"))
    try:
        monkeypatch.setattr(meeting_desk, "build_request", broken)
        desk.server.put(OUTBOX, mail("[meeting] Residency applications"))
        desk.settle()
        assert desk.subjects(SENT) == [] and desk.subjects(OUTBOX) == []
        assert desk.subjects("Needs attention") == ["[meeting] Residency applications"]
        assert not desk.notices("became an invitation"), desk.notices()
        assert desk.notices("Meeting request not sent"), desk.notices()
        monkeypatch.undo()
        desk.later(STALE + timedelta(minutes=1))
        desk.settle()
        assert desk.smtp.messages == [], "an invitation went after she was told it would not"
        assert not desk.notices("offered"), desk.notices()
    finally:
        desk.close()


def test_her_calendar_answer_in_decomposed_spelling_is_hers(tmp_path: Path, smtputf8: SmtpServer) -> None:
    desk = Desk(tmp_path, smtputf8, meeting_policy(strategy="sequential").replace(MENTOR, NFC))
    try:
        desk.propose()
        desk.settle()
        uid = str(event_of(desk.smtp.messages[0].content)["UID"])
        desk.server.put("INBOX", gmail(ics(uid, "ACCEPTED", attendee=NFD), sender=f"José <{NFD}>"))
        desk.settle()
        assert desk.statuses()[uid] == "accepted", desk.notices()
    finally:
        desk.close()


def test_a_dry_run_for_a_student_with_a_unicode_local_part_writes_the_invitations(tmp_path: Path) -> None:
    from tests.test_meetings import POLICIES, run

    result = run(
        "propose",
        str(POLICIES / "okafor.toml"),
        "--dry-run",
        "--out",
        str(tmp_path),
        "--now",
        "2026-03-02T09:00+00:00",
        "--student-address",
        "s\u00e1m@med.example.edu",
        "--student-tz",
        "Europe/Berlin",
    )
    assert result.exit_code == 0, result.output
    written = sorted(tmp_path.glob("*.eml"))
    assert written and all(parse_envelope(f.read_bytes()).sender == "s\u00e1m@med.example.edu" for f in written)
