"""The wait before connecting again: it grows while sessions keep ending soon after their login, and starts afresh
after a session that stayed up (agent.daemon.reconnect). A server that logs her in and closes the session at once
is not logged in to every second or two. The daemon runs in this process against the real Dovecot, through a
proxy that ends each session at its first SELECT."""

from __future__ import annotations

import asyncio
import logging
import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.config.settings import load_settings
from agent.daemon.reconnect import MAX_BACKOFF, SHORT, SHORT_IN_A_ROW, Reconnect
from agent.daemon.service import Daemon
from agent.mail.watch import Watcher
from tests.agent_process import Agent, agent, mail
from tests.servers.rewriting_proxy import RewritingProxy
from tests.service_manager import service_manager

__all__ = ["agent"]  # the fixture


def test_sessions_that_end_before_their_first_pass_double_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    waits = Reconnect()
    assert [waits.lost(0.5, False) for _ in range(10)] == [2, 4, 8, 16, 32, 64, 128, 256, MAX_BACKOFF, MAX_BACKOFF]


def test_a_server_restarted_now_and_then_is_tried_again_within_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    waits = Reconnect()
    assert [waits.lost(None, False) for _ in range(3)] == [2, 4, 8]  # down: the logins fail
    assert waits.lost(SHORT + 1, True) == 2  # back for a while, then restarted: a new outage
    assert waits.lost(3.0, True) == 2  # back for 3 s and served a pass: a new outage too
    waits.ended()
    assert waits.lost(1.0, False) == 2


def test_sessions_that_serve_a_pass_and_end_at_once_back_off_after_a_few(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    waits = Reconnect()
    got = [waits.lost(1.0, True) for _ in range(SHORT_IN_A_ROW + 3)]
    assert got == [2] * (SHORT_IN_A_ROW - 1) + [4, 8, 16, 32], got
    assert waits.closing_sessions
    assert waits.lost(SHORT, True) == 2 and not waits.closing_sessions  # one that lasted: afresh


@given(
    st.lists(
        st.tuples(st.one_of(st.none(), st.floats(min_value=0, max_value=3 * SHORT)), st.booleans()),
        min_size=1,
        max_size=40,
    )
)
def test_the_wait_stays_within_its_bounds_and_grows_until_a_session_works(
    sessions: list[tuple[float | None, bool]],
) -> None:
    waits = Reconnect()
    short = 0
    before = 0
    for up_for, served in sessions:
        wait = waits.lost(up_for, served)
        bound = min(MAX_BACKOFF, 2.0 ** min(waits.in_a_row, 9))
        assert bound / 2 <= wait <= bound
        short = 0 if up_for is not None and up_for >= SHORT else short + (up_for is not None)
        worked = (up_for is not None and up_for >= SHORT) or (served and up_for is not None and short < SHORT_IN_A_ROW)
        assert waits.in_a_row == (1 if worked else before + 1)
        before = waits.in_a_row


def _closed_at_select(line: bytes) -> bytes:
    """The server's answer to a SELECT becomes its goodbye: the session ends right after the login."""
    if b" OK [READ-WRITE]" in line:
        return b"* BYE Too many sessions, closing\r\n"
    return line


def test_a_server_that_ends_each_session_after_login_is_tried_less_and_less_often(
    agent: Agent, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mentor_agent")
    proxy = RewritingProxy(agent.dovecot.port, _closed_at_select)
    proxy.start()
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    monkeypatch.setattr(Watcher, "start", lambda self: None)  # never reached: each session ends in its first pass
    agent.drop(mail("waits while the server closes the sessions"))
    settings = load_settings(agent.config, required=True)
    settings = settings.model_copy(update={"imap": settings.imap.model_copy(update={"port": proxy.port})})
    daemon = Daemon(settings, agent.config)
    waits: list[float] = []

    async def counted(seconds: float) -> None:  # the waits, not waited: the test would take minutes
        waits.append(seconds)
        if len(waits) == 6:
            daemon.stop()
        await asyncio.sleep(0)

    monkeypatch.setattr(daemon, "_pause", counted)
    try:
        asyncio.run(asyncio.wait_for(daemon.run(), 60))
    finally:
        proxy.stop()
    assert proxy.rewritten >= 6, "each session was ended by the server"
    assert waits == [2, 4, 8, 16, 32, 64], waits
    assert agent.smtp.messages == [], "nothing was sent while no session lasted"
    said = [r.getMessage() for r in caplog.records if "short sessions in a row" in r.getMessage()]
    assert len(said) == 5 and "6 short sessions in a row" in said[-1], said  # the journal says why it waits longer


def test_systemds_watchdog_hears_from_the_daemon_all_through_its_waits(
    agent: Agent, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Found by the hostile round: the waits between tries (up to 5 minutes, and a refused login's hour) said
    nothing to systemd, whose unit asks for a word every WatchdogSec (120 s): it killed the daemon and started it
    again, and a refused login at that start is a configuration error the unit never restarts after."""
    proxy = RewritingProxy(agent.dovecot.port, _closed_at_select)
    proxy.start()
    monkeypatch.setattr(random, "uniform", lambda low, high: high)  # waits of 2 s, then 4 s
    monkeypatch.setattr(Watcher, "start", lambda self: None)
    settings = load_settings(agent.config, required=True)
    settings = settings.model_copy(update={"imap": settings.imap.model_copy(update={"port": proxy.port})})
    daemon = Daemon(settings, agent.config)
    with service_manager(tmp_path, monkeypatch, watchdog_usec=400_000) as manager:  # a word every 0.2 s
        try:
            manager.run(daemon, 4.5)
        finally:
            proxy.stop()
    assert proxy.rewritten >= 2, "the sessions ended, and the daemon waited between them"
    gaps = manager.watchdog_gaps()
    assert len(gaps) >= 14 and max(gaps) < 0.6, (len(gaps), max(gaps, default=None))
