"""The suggestion to meet when many messages wait (agent/reconcile/meeting_suggest.py) on the in-memory mailbox
and the real aiosmtpd server: made once per waiting streak, answered by the student from their own calendar
(accept starts a round for the suggested time, decline leaves the queue), answers that are not the student's
ignored, and a connection drop while the suggestion is appended (carried out once, later).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from agent.mail.session import MailboxError
from agent.reconcile import meeting_desk
from agent.reconcile.intake import carry_out, follow_scheduled, take_in_outbox
from agent.reconcile.meeting_suggest import append_suggestion
from agent.rules.invites import agent_address
from agent.rules.policy import PolicyBook, load_policies
from agent.store.rounds import STALE, MeetingStore, Stored
from tests.agent_process import MENTOR, OUTBOX, STUDENT
from tests.servers.smtp import SmtpServer
from tests.test_meeting_desk import event_of, gmail, ics, meeting_policy, method_of
from tests.test_meetings_on_fake import Desk, make
from tests.test_passes_on_fake import mail

ORGANIZER = agent_address(STUDENT)


@pytest.fixture
def waiting(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Desk]:
    yield from make(tmp_path, smtp_server, email="suggest_meeting_after = 2\n", min_gap="1h")


def queue(desk: Desk, *subjects: str, meetings: bool = True) -> None:
    """The student writes to Rivera; with a gap of an hour all but the first wait in Scheduled."""
    for subject in subjects:
        desk.server.put(OUTBOX, mail(subject))
    if meetings:
        desk.settle()
    else:
        asyncio.run(_intake_only(desk))


async def _intake_only(desk: Desk) -> None:
    for _ in range(3):
        await take_in_outbox(desk.world)
        await follow_scheduled(desk.world)
        await carry_out(desk.world)


def suggestions(desk: Desk) -> list[EmailMessage]:
    return desk.inbox("suggestion")


def answer(desk: Desk, suggestion: EmailMessage, partstat: str, **overrides: Any) -> None:
    """The student answers the suggestion in their calendar; the client mails the REPLY to the organizer."""
    event = event_of(suggestion.as_bytes())
    sender = overrides.pop("sender", f"Sam Patel <{STUDENT}>")
    auth = overrides.pop("auth", None)
    text = ics(
        str(event["UID"]),
        partstat,
        **{
            "organizer": ORGANIZER,
            "attendee": STUDENT,
            "start": event.decoded("DTSTART"),
            "end": event.decoded("DTEND"),
            **overrides,
        },
    )
    if sender.endswith(f"<{STUDENT}>"):
        desk.server.put("INBOX", gmail(text, sender=sender, to=ORGANIZER, auth=auth))
        return
    # From a stranger: only a bare calendar message is looked at (a multipart one from an unknown sender is not).
    desk.server.put(
        "INBOX",
        (
            f"From: {sender}\r\nTo: {ORGANIZER}\r\nSubject: Accepted\r\nMessage-ID: <{event['UID']}.x@evil.example>"
            f"\r\nMIME-Version: 1.0\r\nContent-Type: text/calendar; method=REPLY\r\n\r\n{text}"
        ).encode(),
    )


def stored(desk: Desk) -> list[Stored]:
    return MeetingStore(desk.world.ledger).suggestions("rivera")


def requests(desk: Desk) -> list[bytes]:
    """The REQUESTs to Rivera waiting to go or gone (Outbox, Scheduled, Sent)."""
    found = [
        raw
        for folder in (OUTBOX, "Scheduled", "Sent Items")
        for raw in desk.server.messages(folder).values()
        if b"X-Mentor-Agent: invite" in raw
    ]
    return [raw for raw in found if method_of(raw) == "REQUEST"]


# -- made once per waiting streak --------------------------------------------------------------------------------
def test_a_suggestion_is_made_once_when_enough_messages_wait(waiting: Desk) -> None:
    queue(waiting, "one", "two", "three")
    assert len(waiting.subjects("Scheduled")) == 2 and len(waiting.smtp.messages) == 1
    (suggestion,) = suggestions(waiting)
    event = event_of(suggestion.as_bytes())
    assert str(event["ORGANIZER"]).lower() == f"mailto:{ORGANIZER}"
    assert waiting.smtp.messages and all(r.rcpt_tos == (MENTOR,) for r in waiting.smtp.messages)
    assert not any(b"suggestion" in r.content for r in waiting.smtp.messages), "never sent over SMTP"
    queue(waiting, "four")
    assert len(suggestions(waiting)) == 1, "once per waiting streak"
    (live,) = stored(waiting)
    assert live.open and live.extra["waiting"] == 2


def test_no_suggestion_below_the_threshold_or_without_meeting_windows(tmp_path: Path, smtp_server: SmtpServer) -> None:
    policy = meeting_policy(email="suggest_meeting_after = 2\n", min_gap="1h").replace(
        '[meetings]\nwindows = ["Mon-Sun 00:00-24:00"]', "[meetings]\nwindows = []"
    )
    desk = Desk(tmp_path, smtp_server, policy)
    try:
        queue(desk, "one", "two", "three")
        assert suggestions(desk) == [] and stored(desk) == []
    finally:
        desk.close()


def test_the_streak_ends_when_the_queue_shrinks_and_a_new_one_brings_a_new_suggestion(waiting: Desk) -> None:
    queue(waiting, "one", "two", "three")
    assert len(suggestions(waiting)) == 1
    for uid in list(waiting.server.messages("Scheduled")):  # the student deletes what waits
        waiting.server.folders["Scheduled"].messages.pop(uid)
    waiting.settle()
    assert [s.open for s in stored(waiting)] == [False], "the streak is over"
    queue(waiting, "four", "five")
    assert len(suggestions(waiting)) == 2
    assert sorted(s.open for s in stored(waiting)) == [False, True]


def test_no_suggestion_while_a_round_with_the_mentor_is_open(waiting: Desk) -> None:
    waiting.propose()
    queue(waiting, "one", "two", "three")
    assert suggestions(waiting) == []


# -- the student's answer ------------------------------------------------------------------------------------------
def test_accepting_invites_the_mentor_at_the_suggested_time_once(
    waiting: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    queue(waiting, "one", "two", "three")
    (suggestion,) = suggestions(waiting)
    suggested = event_of(suggestion.as_bytes()).decoded("DTSTART")
    answer(waiting, suggestion, "ACCEPTED")
    waiting.settle()
    (request,) = requests(waiting)
    invite = event_of(request)
    assert str(invite["ATTENDEE"]).lower() == f"mailto:{MENTOR}"
    assert invite.decoded("DTSTART") == suggested, "the time the student accepted"
    assert [s.extra.get("answer") for s in stored(waiting)] == ["accepted"]
    caplog.set_level(logging.WARNING, "mentor_agent.meetings")
    answer(waiting, suggestion, "ACCEPTED")  # the calendar sends it again
    waiting.settle()
    assert len(requests(waiting)) == 1, "one round, not two"
    assert "already answered" in caplog.text


def test_an_accepted_time_the_pace_no_longer_reaches_is_withdrawn_from_her_calendar(
    waiting: Desk, tmp_path: Path
) -> None:
    """Invited at the accepted time, then the pace changed before the invitation left: it would leave after the
    start less min_notice, so the offer is withdrawn unsent (the gate) — and her calendar's copy of the suggestion
    is cancelled with a notice saying why, once."""
    queue(waiting, "one", "two", "three")
    (suggestion,) = suggestions(waiting)
    event = event_of(suggestion.as_bytes())
    answer(waiting, suggestion, "ACCEPTED")
    waiting.settle()
    (request,) = requests(waiting)
    assert event_of(request).decoded("DTSTART") == event.decoded("DTSTART")
    assert waiting.inbox("suggestion-withdrawn") == [], "invited in time: nothing to set right"
    (tmp_path / "policies" / "rivera.toml").write_text(
        meeting_policy(email="suggest_meeting_after = 2\n", min_gap="1d")  # at any hour: it leaves days later
    )
    waiting.world.book = PolicyBook(load_policies(waiting.settings.policies_dir))
    waiting.settle()
    (withdrawn,) = waiting.inbox("suggestion-withdrawn")
    cancel = event_of(withdrawn.as_bytes())
    assert method_of(withdrawn.as_bytes()) == "CANCEL" and str(cancel["UID"]) == str(event["UID"])
    assert int(cancel["SEQUENCE"]) == 1 and cancel.decoded("DTSTART") == event.decoded("DTSTART")
    assert str(withdrawn["To"]).endswith(f"<{STUDENT}>") and withdrawn["From"].addresses[0].addr_spec == ORGANIZER
    assert len(waiting.notices("Suggested meeting with Dr. Ana Rivera not invited")) == 1
    (accepted,) = [s for s in stored(waiting) if s.extra.get("answer") == "accepted"]
    assert accepted.extra["settled"] == "late" and not accepted.open
    waiting.later(timedelta(minutes=30))
    waiting.settle()
    assert len(waiting.inbox("suggestion-withdrawn")) == 1 and len(waiting.notices("not invited")) == 1, "once"


def test_declining_leaves_the_queue_and_tells_the_student(waiting: Desk) -> None:
    queue(waiting, "one", "two", "three")
    answer(waiting, suggestions(waiting)[0], "DECLINED")
    waiting.settle()
    assert waiting.notices("No meeting with Dr. Ana Rivera")
    assert requests(waiting) == [] and len(waiting.subjects("Scheduled")) == 2, "the queue as it was"
    (declined,) = stored(waiting)
    assert declined.extra["answer"] == "declined"
    queue(waiting, "four")
    assert len(suggestions(waiting)) == 1, "declined: not suggested again while the same messages wait"
    assert len(stored(waiting)) == 1


def test_a_tentative_answer_waits_for_a_final_one(waiting: Desk) -> None:
    queue(waiting, "one", "two", "three")
    answer(waiting, suggestions(waiting)[0], "TENTATIVE")
    waiting.settle()
    (live,) = stored(waiting)
    assert live.open and "answer" not in live.extra and requests(waiting) == []


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"sender": "Mallory <mallory@evil.example>"}, "not from the student"),
        ({"attendee": "someone@else.example"}, "the replying attendee is not the student"),
        ({"auth": "dkim=fail; dmarc=fail"}, "DKIM or DMARC failure"),
        ({"organizer": "other@med.example.edu"}, "is not mentor-agent"),
    ],
    ids=["sender", "attendee", "dkim", "organizer"],
)
def test_an_answer_that_is_not_the_students_is_ignored(
    waiting: Desk, caplog: pytest.LogCaptureFixture, overrides: dict[str, str], why: str
) -> None:
    queue(waiting, "one", "two", "three")
    caplog.set_level(logging.WARNING, "mentor_agent.meetings")
    answer(waiting, suggestions(waiting)[0], "ACCEPTED", **overrides)
    waiting.settle()
    assert why in caplog.text
    assert requests(waiting) == [] and "answer" not in stored(waiting)[0].extra


# -- when the suggestion cannot be made or appended ----------------------------------------------------------------
@pytest.mark.parametrize("after", [False, True], ids=["refused", "done-then-dropped"])
def test_a_drop_while_the_suggestion_is_appended_appends_it_once_later(waiting: Desk, after: bool) -> None:
    queue(waiting, "one", "two", "three", meetings=False)
    waiting.server.fail("append", "INBOX", after=after)
    with pytest.raises(MailboxError):
        asyncio.run(meeting_desk.pass_once(waiting.world))
    assert len(suggestions(waiting)) == (1 if after else 0)
    waiting.restart()
    wake = waiting.settle()
    assert len(suggestions(waiting)) == (1 if after else 0), "not made a second time meanwhile"
    assert wake is not None and wake <= waiting.now + STALE, "woken to carry out the left-over work"
    waiting.later(STALE + timedelta(seconds=1))
    waiting.settle()
    assert len(suggestions(waiting)) == 1, "appended once"
    assert [s.todo for s in stored(waiting)] == [[]]


def test_a_calendar_that_cannot_be_read_means_no_suggestion_for_now(
    waiting: Desk, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def unreadable(*_: object) -> Any:
        raise OSError("busy.ics: permission denied")

    monkeypatch.setattr("agent.reconcile.meeting_suggest.keep_clear", unreadable)
    queue(waiting, "one", "two", "three")
    assert suggestions(waiting) == [] and "no meeting suggestion for Dr. Ana Rivera" in caplog.text
    monkeypatch.undo()
    waiting.settle()
    assert len(suggestions(waiting)) == 1, "made once the calendar can be read"


def test_no_free_time_means_no_suggestion(
    waiting: Desk, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "mentor_agent.meetings")
    monkeypatch.setattr("agent.reconcile.meeting_suggest.find_slots", lambda *_, **__: [])
    queue(waiting, "one", "two", "three")
    assert suggestions(waiting) == [] and "no meeting time is free to suggest" in caplog.text


def test_a_suggestion_for_a_mentor_no_longer_in_the_policies_is_dropped(waiting: Desk) -> None:
    gone = Stored("suggest-x", "gone", kind="suggestion", extra={"uid": "x", "slot": ["", ""]})
    asyncio.run(append_suggestion(waiting.world, gone, {"message_id": "<x@med.example.edu>"}))
    assert suggestions(waiting) == []
