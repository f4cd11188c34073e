"""Two different meeting requests that share one Message-ID are two requests (issue 20): each becomes an invitation
of its own, and the student is never told a request became an invitation when it did not."""

from __future__ import annotations

from tests.agent_process import OUTBOX
from tests.test_meeting_desk import event_of
from tests.test_meetings_on_fake import Desk, sequential
from tests.test_passes_on_fake import mail

__all__ = ["sequential"]


def test_a_second_meeting_request_with_the_same_message_id_becomes_an_invitation_of_its_own(sequential: Desk) -> None:
    first = mail("[meeting] Residency applications", message_id="<m@med.example.edu>")
    sequential.server.put(OUTBOX, first.replace(b"Hello.", b"Residency?"))
    sequential.settle()
    second = mail("[meeting] Research project", message_id="<m@med.example.edu>")
    sequential.server.put(OUTBOX, second.replace(b"Hello.", b"Research?"))
    sequential.settle()
    summaries = sorted(str(event_of(r.content)["SUMMARY"]) for r in sequential.smtp.messages)
    assert summaries == ["Mentoring: Research project", "Mentoring: Residency applications"]
    assert not sequential.server.messages("Needs attention")


def test_the_same_meeting_request_again_is_not_proposed_twice(sequential: Desk) -> None:
    request = mail("[meeting] Residency applications", message_id="<m@med.example.edu>")
    sequential.server.put(OUTBOX, request)
    sequential.settle()
    sequential.server.put(OUTBOX, request)
    sequential.settle()
    assert len(sequential.smtp.messages) == 1
