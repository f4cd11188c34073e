"""Providers' sending limits (agent/rules/limits.py): the table, and pacing that never trips a limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import get_args

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config.settings import Smtp
from agent.rules.limits import (
    DAY,
    MINUTE,
    PROVIDERS,
    TABLE,
    Limits,
    limits_for,
    next_slot,
    warning_due,
    with_overrides,
)

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_the_table_knows_the_reported_limits() -> None:
    assert (TABLE["google"].per_day, TABLE["google"].recipients) == (2000, 100)
    assert TABLE["microsoft365"].per_minute == 30
    assert TABLE["outlook.com"].per_day == 300


def test_the_provider_comes_from_the_setting_or_the_smtp_host() -> None:
    assert limits_for("auto", "smtp.gmail.com") is TABLE["google"]
    assert limits_for("auto", "SMTP.Office365.com") is TABLE["microsoft365"]
    assert limits_for("auto", "smtp-mail.outlook.com") is TABLE["outlook.com"]
    assert limits_for("auto", "127.0.0.1") is None
    assert limits_for("microsoft365", "relay.hospital.example.org") is TABLE["microsoft365"]
    assert limits_for("none", "smtp.gmail.com") is None


def test_the_setting_accepts_exactly_the_table() -> None:
    assert set(get_args(Smtp.model_fields["provider"].annotation)) == set(PROVIDERS)


def test_a_backlog_is_paced_to_the_per_minute_limit() -> None:
    limits = TABLE["microsoft365"]
    sent: list[datetime] = []
    now = T0
    for _ in range(100):
        now = next_slot(sent, now, limits)
        sent.append(now)
    assert sent[29] == T0 and sent[30] == T0 + MINUTE and sent[60] == T0 + 2 * MINUTE


def test_the_daily_limit_holds_until_the_oldest_leaves_the_day() -> None:
    limits = Limits("x", "X", (), per_day=3)
    sent = [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)]
    assert next_slot(sent, T0 + timedelta(hours=3), limits) == T0 + DAY
    assert not warning_due(sent[:2], T0 + timedelta(hours=3), Limits("x", "X", (), per_day=10))
    assert warning_due(sent * 3, T0 + timedelta(hours=3), Limits("x", "X", (), per_day=10))


@settings(max_examples=200, deadline=None)
@given(
    per_minute=st.one_of(st.none(), st.integers(1, 5)),
    per_day=st.one_of(st.none(), st.integers(1, 30)),
    gaps=st.lists(st.integers(0, 4000), min_size=1, max_size=60),
)
def test_sending_at_the_slots_never_exceeds_a_limit(
    per_minute: int | None, per_day: int | None, gaps: list[int]
) -> None:
    limits = Limits("x", "X", (), per_day=per_day, per_minute=per_minute)
    sent: list[datetime] = []
    wanted = T0
    for gap in gaps:  # each message wanted some seconds after the previous one was wanted
        wanted += timedelta(seconds=gap)
        slot = next_slot(sent, wanted, limits)
        assert slot >= wanted
        sent.append(slot)
    for moment in sent:
        for count, window in ((per_minute, MINUTE), (per_day, DAY)):
            if count:
                assert sum(1 for t in sent if moment - window < t <= moment) <= count


def test_the_students_own_numbers_override_the_table() -> None:
    assert with_overrides(None, 0, 0) is None
    own = with_overrides(None, 3, 0)
    assert own is not None and (own.per_minute, own.per_day) == (3, None)
    google = with_overrides(TABLE["google"], 5, 0)
    assert google is not None and (google.per_minute, google.per_day, google.recipients) == (5, 2000, 100)
