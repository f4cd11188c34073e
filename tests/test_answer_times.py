"""Answer times both ways (agent.rules.answer_times): pairing, summary and wording, by properties."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from agent.rules.answer_times import (
    Answered,
    Asked,
    Summary,
    mentor_waits,
    roughly,
    student_waits,
    summarize,
    wording,
)

BLAME = re.compile(r"\b(late|slow|only|fail\w*|overdue|too|should|must)\b", re.IGNORECASE)
START = datetime(2026, 1, 5, 9, tzinfo=UTC)
offsets = st.integers(min_value=0, max_value=60 * 24 * 30)  # minutes within a month
NOW = START + timedelta(days=31)


def at(minutes: int) -> datetime:
    return START + timedelta(minutes=minutes)


@st.composite
def exchanges(draw: st.DrawFn) -> tuple[list[Asked], list[Answered]]:
    times = sorted(draw(st.lists(offsets, min_size=0, max_size=15)))
    items = [Asked(at(t), (f"m{i}",)) for i, t in enumerate(times)]
    replies = []
    for _ in range(draw(st.integers(0, 8))):
        if items:
            replies.append(Answered(at(draw(offsets)), draw(st.sampled_from([f"m{i}" for i in range(len(items))]))))
    return items, replies


def test_a_reply_answers_its_message_and_every_earlier_one() -> None:
    items = [Asked(at(0), ("a",)), Asked(at(60), ("b",)), Asked(at(120), ("c",))]
    waits = mentor_waits(items, [Answered(at(180), "b")])
    assert [w.took for w in waits] == [timedelta(hours=3), timedelta(hours=2), None]


@given(exchanges())
def test_mentor_waits_are_never_negative_and_answer_only_what_came_before(
    drawn: tuple[list[Asked], list[Answered]],
) -> None:
    items, replies = drawn
    waits = mentor_waits(items, replies)
    assert len(waits) == len(items)
    for wait in waits:
        assert wait.took is None or wait.took >= timedelta(0)
    # An answer is the earliest reply, after the item, to it or to a later item.
    for index, (item, wait) in enumerate(zip(sorted(items, key=lambda i: i.at), waits, strict=True)):
        later_ids = {i for it in sorted(items, key=lambda i: i.at)[index:] for i in it.ids}
        candidates = [r.at for r in replies if r.at >= item.at and r.to in later_ids]
        assert wait.answered == min(candidates, default=None)


@given(exchanges(), st.lists(offsets, max_size=5))
def test_more_replies_never_unanswer_a_message(drawn: tuple[list[Asked], list[Answered]], more: list[int]) -> None:
    items, replies = drawn
    extra = [Answered(at(m), items[-1].ids[0]) for m in more] if items else []
    before = mentor_waits(items, replies)
    after = mentor_waits(items, replies + extra)
    for old, new in zip(before, after, strict=True):
        if old.answered is not None:
            assert new.answered is not None and new.answered <= old.answered


@given(st.lists(offsets, max_size=12), st.lists(offsets, max_size=12))
def test_student_waits_end_at_the_next_message_written(received: list[int], written: list[int]) -> None:
    waits = student_waits([at(m) for m in received], [at(m) for m in written])
    for wait in waits:
        later = [at(m) for m in written if at(m) >= wait.asked]
        assert wait.answered == min(later, default=None)


@given(exchanges(), st.integers(min_value=1, max_value=30))
def test_the_summary_is_inside_what_was_measured(drawn: tuple[list[Asked], list[Answered]], days: int) -> None:
    items, replies = drawn
    waits = mentor_waits(items, replies)
    summary = summarize(waits, NOW, timedelta(days=days))
    took = [w.took for w in waits if w.took is not None]
    assert summary.answered == len(took)
    if took:
        assert summary.median is not None and min(took) <= summary.median <= max(took)
        assert summary.latest in took
    else:
        assert summary.median is None and summary.latest is None
    assert (summary.open_for is None) == all(w.answered is not None for w in waits)
    for who in ("Dr. Ana Rivera", "you"):
        for agreed in (True, False):
            said = wording(who, summary, agreed=agreed)
            assert ("agreed: within" if agreed else "hoped for: within") in said
            assert not BLAME.search(said)


def test_the_words_state_figures_side_by_side() -> None:
    summary = Summary(5, timedelta(days=2), timedelta(hours=20), None, timedelta(days=5))
    assert wording("Dr. Ana Rivera", summary, agreed=False) == (
        "Dr. Ana Rivera usually answers within 2 days (latest 20 hours, 5 answers in 90 days); hoped for: within 5 days"
    )
    assert roughly(timedelta(minutes=20)) == "under an hour" and roughly(timedelta(hours=1)) == "1 hour"
    assert roughly(timedelta(hours=36)) == "2 days"
