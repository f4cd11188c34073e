"""Held questions as a meeting agenda: the pure rules (agent.rules.agenda) and the policy check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from icalendar import Calendar

from agent.errors import UserError
from agent.rules import agenda
from agent.rules.invites import Meeting, Party, build_request, make_uid
from agent.rules.pacing import DAY, GAP, UNANSWERED, WEEK, WINDOW, Decision
from agent.rules.policy import MeetingRules, load_policy
from agent.rules.slots import find_slots
from tests.test_policy import GOOD

NOW = datetime(2026, 3, 9, 15, tzinfo=UTC)
text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=300)


def test_first_line_skips_greetings_quotes_and_blank_lines() -> None:
    assert (
        agenda.first_line("Hello Dr. Rivera,\n\n> old\nShould I take cardiology?\nSam") == "Should I take cardiology?"
    )
    assert agenda.first_line("Dear Ana,\nX") == "X"
    assert agenda.first_line("Hi!\n\nY") == "Y"
    assert agenda.first_line("Hello, I wanted to ask about Friday") == "Hello, I wanted to ask about Friday"
    assert agenda.first_line("\n\n") == ""


@given(text, st.integers(min_value=5, max_value=200))
def test_first_line_is_one_short_line(body: str, limit: int) -> None:
    line = agenda.first_line(body, limit)
    assert len(line) <= limit
    assert "\n" not in line and "\r" not in line


@given(st.lists(st.tuples(st.text(min_size=1, max_size=60), text), min_size=1, max_size=12))
def test_the_description_lists_every_question_in_order(pairs: list[tuple[str, str]]) -> None:
    questions = [agenda.Question(agenda.clean_subject(s), agenda.first_line(b)) for s, b in pairs]
    described = agenda.describe(questions, "Sam Patel")
    numbered = [line for line in described.splitlines() if line[:1].isdigit()]
    assert [n.split(". ", 1)[0] for n in numbered] == [str(i) for i in range(1, len(questions) + 1)]
    position = 0
    for number, question in enumerate(questions, start=1):
        found = described.find(f"{number}. {question.subject}", position)
        assert found >= position
        position = found


def test_subject_tag_is_the_per_message_choice_and_is_taken_off() -> None:
    assert agenda.tagged("[Agenda] Poster feedback") and agenda.tagged("Poster [agenda]")
    assert not agenda.tagged("Agenda for Friday")
    assert agenda.clean_subject("[agenda] Poster feedback") == "Poster feedback"
    assert agenda.clean_subject("[agenda]") == "(no subject)"


def test_question_of_reads_html_only_mail() -> None:
    raw = (
        b"Subject: [agenda] Poster\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b"<p>Dear Dr. Rivera,</p><p>Is the <b>second</b> figure clear?</p>"
    )
    assert agenda.question_of(raw, "[agenda] Poster") == agenda.Question("Poster", "Is the second figure clear?")


@pytest.mark.parametrize(
    ("rule", "at", "held"),
    [
        (DAY, NOW + timedelta(hours=17), True),
        (WEEK, NOW + timedelta(days=3), True),
        (UNANSWERED, None, True),
        (WINDOW, NOW + timedelta(hours=9), False),  # only her hours: it goes by e-mail in the morning
        (GAP, NOW + timedelta(hours=2), False),
        (None, NOW, False),  # due now
        (DAY, NOW, False),
    ],
)
def test_over_the_limit_means_a_count_limit(rule: str | None, at: datetime | None, held: bool) -> None:
    assert agenda.over_limit(Decision("m", at, "why", rule), NOW) is held


@given(st.text(alphabet="0123456789abcdef", min_size=1, max_size=32))
def test_tokens_round_trip(token: str) -> None:
    assert agenda.token_of(agenda.attached(token)) == token
    assert agenda.on_agenda(agenda.attached(token)) and agenda.on_agenda(agenda.PENDING)
    assert agenda.token_of(agenda.PENDING) is None and not agenda.on_agenda(None) and not agenda.on_agenda("digest-x")


def test_agenda_needs_meeting_windows(tmp_path: Path) -> None:
    path = tmp_path / "rivera.toml"
    path.write_text(GOOD.replace('over_limit = "batch"', 'over_limit = "agenda"'), encoding="utf-8")
    assert load_policy(path).policy.email.over_limit == "agenda"
    without = GOOD.replace('over_limit = "batch"', 'over_limit = "agenda"').split("[meetings]")[0]
    path.write_text(without, encoding="utf-8")
    with pytest.raises(UserError) as raised:
        load_policy(path)
    problem = raised.value.problems[0]
    assert (problem.key, problem.line) == ("email.over_limit", 13)
    assert "[meetings] windows" in problem.message and str(path) == problem.file


def test_the_agenda_rides_an_invitation_in_a_dst_week() -> None:
    """Chicago has sprung forward (8 March 2026), Berlin has not (29 March): the first free time is Tuesday
    16:00 CDT = 21:00 UTC = 22:00 CET for the student, and the agenda survives iCalendar escaping."""
    chicago, berlin = ZoneInfo("America/Chicago"), ZoneInfo("Europe/Berlin")
    rules = MeetingRules(windows=("Tue 16:00-17:00", "Thu 07:00-08:00"))  # type: ignore[arg-type]
    slot = find_slots(rules, chicago, datetime(2026, 3, 6, 12, tzinfo=UTC), [], count=1)[0]
    assert slot.utc_start == datetime(2026, 3, 10, 21, tzinfo=UTC)
    questions = [
        agenda.Question("Electives; cardiology, or research?", "Which first, given the block order?"),
        agenda.Question("Poster \\ figure 2", ""),
    ]
    meeting = Meeting(
        make_uid("r-0", "med.example.edu"), 0, slot, "Mentoring: x", "", agenda.describe(questions, "Sam")
    )
    message = build_request(
        meeting,
        organizer=Party("Sam Patel", "sam@med.example.edu"),
        attendee=Party("Dr. Ana Rivera", "arivera@hospital.example.org"),
        mentor_zone=chicago,
        student_zone=berlin,
        now=datetime(2026, 3, 6, 12, tzinfo=UTC),
    )
    calendar = next(p for p in message.walk() if p.get_content_type() == "text/calendar")
    payload = calendar.get_payload(decode=True)
    assert isinstance(payload, bytes)
    event = next(iter(Calendar.from_ical(payload).walk("VEVENT")))
    assert event.decoded("DTSTART") == datetime(2026, 3, 10, 21, tzinfo=UTC)
    assert str(event["DESCRIPTION"]) == agenda.describe(questions, "Sam")
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "1. Electives; cardiology, or research?" in text and "16:00" in text and "22:00" in text


def test_a_question_carrying_a_file_only_goes_as_written() -> None:
    """An invitation's description carries no file: a question with one ("[agenda] My CV" and cv.pdf) went as a
    line with its subject, the file dropped without a word. Now it goes by e-mail, and the reason says why."""
    from email.message import EmailMessage

    message = EmailMessage()
    message["Subject"] = "[agenda] My CV"
    message.set_content("")
    message.add_attachment(b"%PDF-1.4 cv", maintype="application", subtype="pdf", filename="cv.pdf")
    assert agenda.only_as_written(message.as_bytes()) == "it carries cv.pdf, which an agenda cannot"
    plain = EmailMessage()
    plain["Subject"] = "[agenda] Elective"
    plain.set_content("Which elective first?\n")
    assert agenda.only_as_written(plain.as_bytes()) is None
