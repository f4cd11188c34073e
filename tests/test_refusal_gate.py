"""The long backoff after a refused login: 1, 5, 15, 30 minutes, then every hour (pure unit)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.errors import LoginRefused, TlsProblem
from agent.rules.refusals import VARIABLE, Gate, waiting_lines

START = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)


def test_the_waits_grow_to_an_hour_and_stay_there(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(VARIABLE, raising=False)
    gate = Gate("SMTP")
    now = START
    waits = []
    for _ in range(7):
        assert gate.may_try(now)
        refusal = gate.refused(now, LoginRefused("smtp: login refused: 535 5.7.8 no"))
        waits.append((refusal.next_try - now).total_seconds() / 60)
        assert not gate.may_try(now + timedelta(seconds=1))
        now = refusal.next_try
    assert waits == [1, 5, 15, 30, 60, 60, 60]
    assert gate.refusal is not None and gate.refusal.since == START and gate.refusal.tries == 7
    ended = gate.worked()
    assert ended is not None and ended.since == START
    assert not gate.closed and gate.may_try(now) and all(v == "" for v in gate.status().values())


@given(st.lists(st.booleans(), min_size=1, max_size=30))
def test_never_sooner_than_a_minute_and_never_later_than_an_hour(postpones: list[bool]) -> None:
    gate = Gate("IMAP")
    now = START
    for postpone in postpones:
        refusal = gate.postpone(now) if postpone and gate.closed else gate.refused(now, TlsProblem("imap: x"))
        assert refusal is not None
        assert timedelta(minutes=1) <= refusal.next_try - now <= timedelta(hours=1)
        now = refusal.next_try


def test_status_lines_name_the_service_what_failed_and_the_times() -> None:
    gate = Gate("IMAP")
    gate.refused(START, LoginRefused("imap: login as 'sam' refused by h:993: [AUTHENTICATIONFAILED] no"))
    daemon: dict[str, str | None] = dict(gate.status())
    lines = waiting_lines(daemon, START)
    assert lines[0] == "waiting: IMAP login refused since Wed 02 Dec 14:00 UTC, next try Wed 02 Dec 14:01 UTC"
    assert "[AUTHENTICATIONFAILED]" in lines[1]


def test_an_expired_sign_in_waits_for_a_new_one_not_for_a_time() -> None:
    from agent.errors import SignInNeeded
    from agent.rules.refusals import SIGN_IN

    gate = Gate("SMTP")
    refusal = gate.refused(START, SignInNeeded("[smtp] the sign-in has expired; sign in again"), grant="v1")
    assert refusal.signed_out and refusal.what == SIGN_IN and refusal.grant == "v1"
    later = gate.postpone(START + timedelta(minutes=1))
    assert later is not None and later.grant == "v1" and later.signed_out
    lines = waiting_lines(dict(gate.status()), START)
    assert lines[0] == (
        "waiting: SMTP sign-in expired since Wed 02 Dec 14:00 UTC; sign in again with: mentor-agent login"
    )
