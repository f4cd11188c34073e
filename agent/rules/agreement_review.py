"""The review of an agreement after its period (``[agreement] review_every``, six months by default): what
actually happened beside what was agreed, so both can adjust the standards to reality. Pure: counts in,
the notice's words out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from agent.rules.durations import say_duration
from agent.rules.localtime import at_wall, elapsed, shift_days, start_of_day
from agent.rules.notices import pronouns
from agent.rules.policy import Policy

REVIEW_HOUR = 9  # the review notice comes at 09:00 in the student's zone on its day


def review_due(agreed_on: date, every: timedelta, zone: tzinfo) -> datetime:
    """When the review of an agreement made on ``agreed_on`` is due: 09:00 in the student's zone on the day
    the period ends (a part of a day counts as a whole one)."""
    days = every.days + (1 if every.seconds or every.microseconds else 0)
    return at_wall(shift_days(agreed_on, days), time(REVIEW_HOUR), zone)


@dataclass(frozen=True)
class Review:
    number: int  # 1, 2, …: the latest review due by now; 0 when none is due yet
    start: datetime  # the period it looks back on: from the previous review, or the day of the agreement
    due: datetime  # when it is due (for number 0: when the first one will be)
    next_due: datetime  # when the one after it is due


def latest_review(agreed_on: date, every: timedelta, zone: tzinfo, now: datetime) -> Review:
    """The latest review of an agreement made on ``agreed_on`` that is due at ``now``: one comes every
    ``every`` (at 09:00 in ``zone``) until the agreement is made again."""
    first = start_of_day(agreed_on, zone)
    every = max(every, timedelta(days=1))  # a review a minute would be noise, and a zero one a loop

    def due(number: int) -> datetime:
        return review_due(agreed_on, every * number, zone)

    count = max(0, int(elapsed(first, now) / every) - 1)
    while due(count + 1) <= now:
        count += 1
    if count == 0:
        return Review(0, first, due(1), due(1))
    return Review(count, first if count == 1 else due(count - 1), due(count), due(count + 1))


def _hours(value: float) -> str:
    return say_duration(timedelta(hours=round(value))) if value >= 1 else "under an hour"


def review_notice(
    policy: Policy,
    policy_id: str,
    *,
    start: datetime,
    end: datetime,
    sent: Sequence[datetime],
    answer_hours: Sequence[float],
    meetings_held: int,
) -> tuple[str, list[str]]:
    """(title, lines) of the notice that offers to agree again, with what happened from ``start`` to ``end``."""
    name, rules, agreement = policy.mentor.name, policy.email, policy.agreement
    her = pronouns(policy.mentor.pronoun)[1]
    weeks = max(1.0, elapsed(start, end).total_seconds() / (7 * 86400))
    per_week = len(sent) / weeks
    agreed_on = agreement.agreed_on.isoformat() if agreement.agreed_on else "?"
    lines = [
        f"You agreed the standards with {name} on {agreed_on} (version {agreement.version}); "
        f"the review you agreed on, after {say_duration(agreement.review_every)}, is due. "
        "What actually happened since then:",
    ]
    facts = [
        f"  • E-mails to {name}: {len(sent)}, {per_week:.1f} a week on average "
        f"(agreed: at most {rules.max_per_week} a week, {rules.max_per_day} a day).",
    ]
    if answer_hours:
        ordered = sorted(answer_hours)
        middle = ordered[len(ordered) // 2]
        hoped = agreement.mentor_answers_within.total_seconds() / 3600
        late = sum(1 for h in ordered if h > hoped)
        facts.append(
            f"  • {her.title()} answers: {len(ordered)}; half came within {_hours(middle)}, the slowest took "
            f"{_hours(ordered[-1])} (hoped for: within {say_duration(agreement.mentor_answers_within)}; "
            f"{late} took longer)."
        )
    else:
        facts.append(
            f"  • {her.title()} answers: none recorded "
            f"(hoped for: within {say_duration(agreement.mentor_answers_within)})."
        )
    facts.append(
        f"  • Meetings held: {meetings_held} (agreed: at most {policy.meetings.max_per_month} a month, "
        f"{say_duration(policy.meetings.duration)} each)."
    )
    lines.append("\n".join(facts))
    lines.append(
        f"If the standards no longer fit, change them in the policy file first. Then `mentor-agent agree "
        f"{policy_id}` drafts the proposal again (it lands in your Drafts folder), so that you and {name} can "
        "agree on the next version."
    )
    return f"Time to look at your agreement with {name} again", lines
