"""The agreement in words: the numbered standards, the proposal, reading the mentor's answer, applying it."""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.config.policy_edit import apply_agreement, edited, problems_with
from agent.errors import UserError
from agent.rules.agreement import (
    Standard,
    draft_body,
    proposal_message,
    read_value,
    standards,
    standards_from_json,
    standards_json,
    toml_value,
)
from agent.rules.agreement_answer import quotes_proposal, read_answer, side_by_side
from agent.rules.agreement_review import latest_review, review_due, review_notice
from agent.rules.durations import say_duration
from agent.rules.policy import Policy, load_policy
from agent.rules.windows import WeeklyWindow

ROOT = Path(__file__).resolve().parent.parent
RIVERA = load_policy(ROOT / "policies" / "rivera.toml").policy
PROPOSED = standards(RIVERA)


def number_of(path: str) -> int:
    return next(s.number for s in PROPOSED if s.path == path)


def quoted(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines())


def test_each_standard_is_a_numbered_line_with_its_value() -> None:
    body = draft_body(RIVERA, "Sam Patel")
    for standard in PROPOSED:
        assert standard.line in body
    assert "  1. E-mails from me in a week, at most: 3" in body
    assert "  3. When my e-mails arrive, your time: Mon-Fri 08:00-17:00" in body
    assert " 10. Your answer, when you can, within: 5 days" in body
    assert body.startswith("Dear Dr. Rivera,\n")
    assert "Several small questions arrive as one e-mail" in body  # over_limit = "batch"
    assert all(len(line) <= 76 for line in body.splitlines())


def test_a_delaying_policy_says_so_and_the_message_is_marked() -> None:
    okafor = load_policy(ROOT / "policies" / "okafor.toml").policy
    body = draft_body(okafor, "Sam Patel")
    assert "Several small questions" not in body and "waits for the next day" in body
    message = proposal_message(
        okafor,
        student_name="Sam Patel",
        student_address="sam@med.example.edu",
        now=datetime.now(UTC),
        message_id="<p@x>",
    )
    assert (
        message["X-Mentor-Agent"] == "agreement" and message["To"].addresses[0].addr_spec == "c.okafor@nhs.example.uk"
    )


@pytest.mark.parametrize(
    "reply",
    [
        "Fine!",
        "That all sounds good to me, Sam.",
        "Agreed.\n\nAna",
        "ok\n\nOn Mon, 23 Nov 2026 at 08:00, Sam Patel <sam@med.example.edu> wrote:\n> 1. E-mails from me in a week, at most: 3",
    ],
)
def test_fine_is_accepted_as_proposed(reply: str) -> None:
    # hers and the student's names, as the daemon passes them: "Ana" under her words is her signature
    answer = read_answer(
        reply + "\n\n" + quoted(draft_body(RIVERA, "Sam")), PROPOSED, names=(RIVERA.mentor.name, "Sam Patel")
    )
    assert (answer.outcome, answer.changes) == ("accepted", ())


def test_changed_values_in_her_own_lines_are_read_and_the_quote_is_not() -> None:
    reply = (
        "Happy with this, two changes:\n"
        "1. 2\n"
        "3. When my e-mails arrive, your time: Mon-Thu 09:00-16:00\n"
        "7: 45 minutes\n"
        "10. Your answer, when you can, within: 5 days\n"  # quoted unchanged in her own text: no change
    )
    answer = read_answer(reply + "\n" + quoted(draft_body(RIVERA, "Sam")), PROPOSED)
    assert answer.outcome == "changed"
    assert {c.standard.path: c.toml for c in answer.changes} == {
        "email.max_per_week": 2,
        "email.send_windows": ["Mon-Thu 09:00-16:00"],
        "meetings.duration": "45m",
    }
    lines = side_by_side(answer.changes)
    assert lines[0].startswith("  1. E-mails from me in a week, at most:") and lines[0].endswith(
        "3                    →  2"
    )
    assert lines[1].endswith("Mon-Fri 08:00-17:00  →  Mon-Thu 09:00-16:00")


def test_outlook_style_top_posting_stops_at_the_original() -> None:
    reply = "Fine.\n\nFrom: Sam Patel <sam@med.example.edu>\nSent: Monday\n\n" + draft_body(RIVERA, "Sam")
    assert read_answer(reply, PROPOSED).outcome == "accepted"


def test_a_reply_quoting_the_proposal_is_known_even_rewrapped() -> None:
    body = draft_body(RIVERA, "Sam")
    assert quotes_proposal("Fine.\n\n" + quoted(body), PROPOSED)
    rewrapped = quoted(" ".join(body.split()))  # one long quoted line: a client that re-flows quotes
    assert quotes_proposal(rewrapped, PROPOSED)
    assert not quotes_proposal("Fine, see you Tuesday.\n> 1. E-mails from me in a week, at most: 3", PROPOSED)


def test_an_unreadable_value_makes_the_answer_unclear_and_says_which() -> None:
    answer = read_answer("3. whenever suits\n", PROPOSED)
    assert answer.outcome == "unclear"
    assert answer.problems and answer.problems[0].startswith("3. When my e-mails arrive")
    assert read_answer("Let me think about it.", PROPOSED).outcome == "unclear"


@pytest.mark.parametrize(
    ("kind", "text", "value"),
    [
        ("count", "two", 2),
        ("count", "4 please", 4),
        ("count_or_never", "never", 0),
        ("duration", "3 days", timedelta(days=3)),
        ("duration", "a week", timedelta(days=7)),
        ("duration", "1 hour 30 minutes", timedelta(minutes=90)),
        ("duration", "48h", timedelta(hours=48)),
        ("windows", "by arrangement", ()),
    ],
)
def test_values_as_people_write_them(kind: str, text: str, value: object) -> None:
    assert read_value(kind, text) == value  # type: ignore[arg-type]


def test_the_proposal_round_trips_through_the_ledger_form() -> None:
    again = standards_from_json(standards_json(PROPOSED))
    assert [(s.number, s.path, s.text) for s in again] == [(s.number, s.path, s.text) for s in PROPOSED]


# -- the property: a reply that changes values is read as those values -----------------------------------------

COUNTS = st.integers(min_value=1, max_value=60)
DURATIONS = st.builds(
    timedelta,
    days=st.integers(min_value=0, max_value=30),
    hours=st.integers(min_value=0, max_value=23),
    minutes=st.sampled_from([0, 15, 30, 45]),
).filter(lambda d: d > timedelta(0))
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
WINDOWS = st.lists(
    st.builds(
        lambda day, start, length: WeeklyWindow.parse(f"{day} {start:02}:00-{start + length:02}:00"),
        st.sampled_from(DAYS),
        st.integers(min_value=6, max_value=12),
        st.integers(min_value=1, max_value=6),
    ),
    min_size=1,
    max_size=3,
    unique_by=lambda w: tuple(sorted(w.days)),
)


def new_value(standard: Standard) -> st.SearchStrategy[object]:
    return {
        "count": COUNTS,
        "count_or_never": st.integers(min_value=0, max_value=20),
        "duration": DURATIONS,
        "windows": WINDOWS.map(tuple),
    }[standard.kind]


@st.composite
def replies(draw: st.DrawFn) -> tuple[str, dict[int, object]]:
    chosen = draw(st.lists(st.sampled_from(PROPOSED), unique_by=lambda s: s.number, max_size=len(PROPOSED)))
    changed = {s.number: draw(new_value(s)) for s in chosen}
    style = draw(st.sampled_from(["full", "short", "colon"]))
    lines = []
    for number, value in changed.items():
        standard = PROPOSED[number - 1]
        text = Standard(number, standard.section, standard.key, standard.label, standard.kind, value).text
        lines.append(
            {"full": f"{number}. {standard.label}: {text}", "short": f"{number}. {text}", "colon": f"{number}: {text}"}[
                style
            ]
        )
    opening = draw(st.sampled_from(["Fine, with these changes:", "Thanks Sam, mostly fine.", "Sure."]))
    return opening + "\n" + "\n".join(lines) + "\n\n" + quoted(draft_body(RIVERA, "Sam")), changed


@given(replies())
def test_a_reply_that_changes_values_reads_as_exactly_those_values(case: tuple[str, dict[int, object]]) -> None:
    text, changed = case
    answer = read_answer(text, PROPOSED, names=("Sam Patel",))  # the daemon passes her name and the student's
    expected = {n: v for n, v in changed.items() if PROPOSED[n - 1].text != say(PROPOSED[n - 1], v)}
    assert {c.standard.number: c.text for c in answer.changes} == {
        n: say(PROPOSED[n - 1], v) for n, v in expected.items()
    }
    if expected:
        assert (answer.outcome, answer.problems) == ("changed", ())
    else:  # no value differs: "as proposed" only from a plain yes ("mostly fine", "with these changes" are not)
        assert answer.outcome == ("accepted" if text.startswith("Sure.") else "unclear")


def say(standard: Standard, value: object) -> str:
    return Standard(standard.number, standard.section, standard.key, standard.label, standard.kind, value).text


@given(DURATIONS)
def test_a_duration_said_in_words_reads_back_as_itself(value: timedelta) -> None:
    assert read_value("duration", say_duration(value)) == value


# -- applying it to the file ------------------------------------------------------------------------------------


def test_applying_keeps_every_comment_and_records_date_and_version(tmp_path: Path) -> None:
    path = tmp_path / "rivera.toml"
    original = (ROOT / "policies" / "rivera.toml").read_text(encoding="utf-8")
    path.write_text(original, encoding="utf-8")
    policy = apply_agreement(
        path, {"email.max_per_week": 2, "email.send_windows": ["Mon-Thu 09:00-16:00"]}, date(2026, 11, 24), 1
    )
    text = path.read_text(encoding="utf-8")
    assert "max_per_week = 2                             # per ISO week, Monday to Sunday, her zone" in text
    assert 'send_windows = ["Mon-Thu 09:00-16:00"]       # when mail may arrive, her local time; end exclusive' in text
    old_comments = [line.split("#", 1)[1] for line in original.splitlines() if "#" in line]
    assert all(comment in text for comment in old_comments)
    assert policy.agreement.agreed_on == date(2026, 11, 24) and policy.agreement.version == 1
    agreed = tomllib.loads(text)["agreement"]
    assert (agreed["agreed_on"], agreed["version"], agreed["review_every"]) == (date(2026, 11, 24), 1, "26w")
    assert text.endswith("once she has answered\nagreed_on = 2026-11-24\nversion = 1\n")
    # once more: the table is updated in place, not added twice
    apply_agreement(path, {}, date(2027, 5, 1), 2)
    assert path.read_text(encoding="utf-8").count("[agreement]") == 1
    assert load_policy(path).policy.agreement.version == 2


@given(st.data())
def test_editing_writes_exactly_the_changes_and_keeps_every_comment(data: st.DataObject) -> None:
    original = (ROOT / "policies" / "rivera.toml").read_text(encoding="utf-8")
    chosen = data.draw(st.lists(st.sampled_from(PROPOSED), unique_by=lambda s: s.number))
    changes = {s.path: toml_value(s.kind, data.draw(new_value(s))) for s in chosen}
    text = edited(original, changes, date(2026, 11, 24), 3)
    parsed, before = tomllib.loads(text), tomllib.loads(original)
    for path, value in changes.items():
        section, key = path.split(".")
        assert parsed[section][key] == value
        before[section][key] = value
    before["agreement"] |= {"agreed_on": date(2026, 11, 24), "version": 3}
    assert parsed == before  # nothing else changed
    for line in original.splitlines():
        if "#" in line:
            assert line.split("#", 1)[1] in text
    assert len(text.splitlines()) == len(original.splitlines()) + 2


def test_a_value_that_breaks_the_policy_is_refused_and_the_file_stays(tmp_path: Path) -> None:
    path = tmp_path / "rivera.toml"
    original = (ROOT / "policies" / "rivera.toml").read_text(encoding="utf-8")
    path.write_text(original, encoding="utf-8")
    with pytest.raises(UserError) as caught:
        apply_agreement(path, {"email.max_per_week": 0}, date(2026, 11, 24), 1)
    problem = caught.value.problems[0]
    assert (problem.file, problem.key, problem.line) == (str(path), "email.max_per_week", 13)
    assert path.read_text(encoding="utf-8") == original


def test_a_review_period_under_a_week_is_refused_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "rivera.toml"
    path.write_text((ROOT / "policies" / "rivera.toml").read_text(encoding="utf-8").replace('"26w"', '"2d"'))
    with pytest.raises(UserError) as caught:
        load_policy(path)
    assert str(caught.value.problems[0]).endswith(
        'agreement.review_every: must be at least a week ("26w" is about six months)'
    )


def test_edited_adds_a_missing_table() -> None:
    text = '[mentor]\nname = "X"  # who\n'
    assert edited(text, {"email.max_per_day": 2}, date(2026, 1, 2), 1).endswith(
        "[email]\nmax_per_day = 2\n\n[agreement]\nagreed_on = 2026-01-02\nversion = 1\n"
    )


# -- the review -------------------------------------------------------------------------------------------------

NEW_YORK = ZoneInfo("America/New_York")


def test_the_review_is_due_at_nine_on_its_day_across_dst() -> None:
    due = review_due(date(2026, 6, 1), timedelta(days=182), NEW_YORK)
    assert due == datetime(2026, 11, 30, 9, tzinfo=NEW_YORK)
    assert review_due(date(2026, 6, 1), timedelta(days=1, hours=1), NEW_YORK).date() == date(2026, 6, 3)


def test_reviews_come_every_period_until_agreed_again() -> None:
    agreed, every = date(2026, 6, 1), timedelta(days=182)
    before = latest_review(agreed, every, NEW_YORK, datetime(2026, 11, 30, 8, 59, tzinfo=NEW_YORK))
    assert (before.number, before.due) == (0, datetime(2026, 11, 30, 9, tzinfo=NEW_YORK))
    first = latest_review(agreed, every, NEW_YORK, datetime(2026, 11, 30, 9, tzinfo=NEW_YORK))
    assert (first.number, first.start, first.due) == (1, datetime(2026, 6, 1, tzinfo=NEW_YORK), before.due)
    assert first.next_due == datetime(2027, 5, 31, 9, tzinfo=NEW_YORK)
    later = latest_review(agreed, every, NEW_YORK, datetime(2028, 1, 1, tzinfo=NEW_YORK))
    assert (later.number, later.start, later.due) == (3, first.next_due, datetime(2027, 11, 29, 9, tzinfo=NEW_YORK))
    assert latest_review(agreed, timedelta(0), NEW_YORK, datetime(2026, 6, 3, tzinfo=NEW_YORK)).number == 1


@given(st.integers(min_value=1, max_value=400), st.integers(min_value=0, max_value=2000))
def test_the_latest_review_is_due_by_now_and_the_next_is_not(days: int, hours_later: int) -> None:
    agreed, every = date(2026, 3, 1), timedelta(days=days)
    now = datetime(2026, 3, 1, tzinfo=NEW_YORK) + timedelta(hours=hours_later * 7)
    review = latest_review(agreed, every, NEW_YORK, now)
    assert review.next_due > now
    assert review.number == 0 or review.due <= now
    assert review.start < review.due <= review.next_due


def test_the_review_notice_says_what_happened_beside_what_was_agreed() -> None:
    data = tomllib.loads((ROOT / "policies" / "rivera.toml").read_text(encoding="utf-8"))
    data["agreement"] = {"agreed_on": date(2026, 6, 1), "version": 1}
    policy = Policy.model_validate(data)
    start = datetime(2026, 6, 1, tzinfo=NEW_YORK)
    end = review_due(date(2026, 6, 1), timedelta(days=182), NEW_YORK)
    sent = [start + timedelta(days=3 * i) for i in range(52)]
    title, lines = review_notice(
        policy, "rivera", start=start, end=end, sent=sent, answer_hours=[2, 20, 30, 150], meetings_held=5
    )
    text = "\n".join(lines)
    assert title == "Time to look at your agreement with Dr. Ana Rivera again"
    assert "E-mails to Dr. Ana Rivera: 52, 2.0 a week on average (agreed: at most 3 a week, 1 a day)" in text
    assert "half came within 30 hours, the slowest took 6 days 6 hours" in text
    assert "(hoped for: within 5 days; 1 took longer)" in text
    assert "Meetings held: 5" in text and "`mentor-agent agree rivera`" in text


INLINE = """email = { max_per_day = 1, max_per_week = 3, send_windows = ["Mon-Fri 08:00-17:00"] }
[mentor]
name = "Dr. Ana Rivera"
addresses = ["arivera@hospital.example.org"]
timezone = "America/Chicago"
"""
DOTTED = """mentor.name = "Dr. Ana Rivera"
mentor.addresses = ["arivera@hospital.example.org"]
mentor.timezone = "America/Chicago"
email.max_per_day = 1
email.max_per_week = 3
"""


def test_her_changes_go_into_a_policy_written_with_an_inline_table(tmp_path: Path) -> None:
    """A hostile round: a valid policy in another TOML form crashed the reading of her answer (never told)."""
    path = tmp_path / "rivera.toml"
    path.write_text(INLINE)
    assert problems_with(path, {"email.max_per_week": 2}) == []
    assert apply_agreement(path, {"email.max_per_week": 2}, date(2026, 12, 7), 2).email.max_per_week == 2


def test_a_policy_in_a_form_that_cannot_be_edited_is_a_clear_problem_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "rivera.toml"
    path.write_text(DOTTED)
    (problem,) = problems_with(path, {"email.max_per_week": 2})
    assert "rivera.toml" in problem and "cannot edit" in problem
    with pytest.raises(UserError):
        apply_agreement(path, {"email.max_per_week": 2}, date(2026, 12, 7), 2)
    assert path.read_text() == DOTTED
