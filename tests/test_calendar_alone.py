"""A calendar reply or request (a text/calendar part carrying a METHOD: iTIP) is one object per e-mail: it goes alone,
never folded into a digest, whichever door it came by (here the Outbox; the submission door puts it there too)."""

from __future__ import annotations

import re
from email.message import EmailMessage

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.rules.calendar_parts import CALENDAR_TYPES, carries_itip, names_calendar_type
from tests.agent_process import MENTOR, STUDENT, Agent, agent, eventually, mail, parse, policy_text

__all__ = ["agent"]

ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\n"
    "UID:meet-1@hospital.example\r\nDTSTAMP:20261205T120000Z\r\nDTSTART:20261210T150000Z\r\n"
    f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{STUDENT}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def reply(subject: str = "Accepted: Rotation talk") -> bytes:
    message = EmailMessage()
    message["From"] = f"Sam Patel <{STUDENT}>"
    message["To"] = MENTOR
    message["Subject"] = subject
    message["Message-ID"] = "<reply-1@med.example.edu>"
    message.set_content("Sam has accepted.\n")
    message.add_alternative(ICS, subtype="calendar", params={"method": "REPLY"})
    return message.as_bytes()


def test_carries_itip_reads_the_method_of_a_calendar_part() -> None:
    assert carries_itip(reply())
    assert not carries_itip(mail("plain"))
    attached = EmailMessage()
    attached.set_content("see the file")
    attached.add_attachment(ICS.replace("METHOD:REPLY\r\n", "").encode(), "text", "calendar", filename="x.ics")
    assert not carries_itip(attached.as_bytes())  # a calendar file without a method is only a file


def test_carries_itip_finds_a_calendar_part_however_its_type_is_written_and_skips_mail_without_one() -> None:
    shouted = reply().replace(b"text/calendar", b"TEXT/Calendar")
    assert carries_itip(shouted)  # the type's letters in any case (the quick look before parsing is no filter)
    ics = EmailMessage()
    ics.set_content("see the file")
    ics.add_attachment(ICS.encode(), "application", "ics", filename="x.ics")
    assert carries_itip(ics.as_bytes())
    assert not carries_itip(mail("plain", body="METHOD:REQUEST\nas text, in a plain message\n"))


@pytest.mark.servers
def test_a_calendar_reply_goes_alone_never_in_a_digest(agent: Agent) -> None:
    agent.policy(policy_text(min_gap="2s", over_limit="batch"))
    agent.start()
    agent.drop(mail("first"))
    agent.smtp.wait_for(1)
    agent.drop(mail("research question"))
    agent.drop(reply())
    agent.drop(mail("elective"))
    received = agent.smtp.wait_for(3, timeout=20)
    alone = [r for r in received if parse(r.content)["Subject"] == "Accepted: Rotation talk"]
    assert len(alone) == 1 and b"METHOD:REPLY" in alone[0].content
    eventually(lambda: agent.folder_raw("Scheduled") == {} and agent.folder_raw("Sending") == {})
    assert len(agent.smtp.messages) == 3


@given(
    st.lists(
        st.one_of(
            st.binary(max_size=20),
            st.sampled_from([b"text/calendar", b"TEXT/Calendar", b"application/ICS", b"text/calendaR", b"\xc4\xb0cs"]),
        ),
        max_size=6,
    )
)
def test_a_calendar_type_is_found_as_a_case_blind_pattern_finds_it(parts: list[bytes]) -> None:
    raw = b"".join(parts)
    pattern = re.compile(b"|".join(re.escape(t.encode()) for t in CALENDAR_TYPES), re.IGNORECASE)
    assert names_calendar_type(raw) == bool(pattern.search(raw))
