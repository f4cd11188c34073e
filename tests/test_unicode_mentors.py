"""A mentor (or the student) whose address has a local part beyond ASCII (RFC 6531): invitations are written
and sent to them like to anyone else, and their address is compared as one spelling (NFC), never as another
mailbox's (KELVIN SIGN is not ``k``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.rules.envelope import parse_envelope
from agent.rules.invites import Meeting, Party, build_request
from agent.rules.slots import Slot
from tests.agent_process import MENTOR, OUTBOX
from tests.servers.smtp import SmtpServer
from tests.test_meeting_desk import meeting_policy, method_of
from tests.test_meetings_on_fake import SENT, Desk
from tests.test_passes_on_fake import mail

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
    from agent.rules.invites import wire_bytes

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
