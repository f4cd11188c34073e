"""The daemon's start, side by side (issue 21): the first pass reads the Outbox on the command connection while
the IDLE connections are still opening, and once the last of them is on the loop looks again, so a message
dropped in between is never missed. Real Dovecot and aiosmtpd; the daemon runs in this process so that the IDLE
connections can be held back."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import datetime

import pytest

from agent.config.settings import load_settings
from agent.daemon import service
from agent.daemon.service import Daemon
from agent.mail.watch import Watcher
from agent.reconcile.context import World
from agent.reconcile.history import Seen
from tests.agent_process import Agent, agent, mail
from tests.servers import PATIENCE

__all__ = ["agent"]  # the fixture
pytestmark = pytest.mark.servers


async def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20 * PATIENCE
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {20 * PATIENCE:.0f} s: {what}")
        await asyncio.sleep(0.02)


def test_a_message_dropped_after_the_first_pass_and_before_idle_is_on_goes_once_idle_is_on(
    agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    opening = threading.Event()  # the IDLE connections may open once this is set (a slow server, say)
    real_start = Watcher.start

    def held_start(self: Watcher) -> None:
        assert opening.wait(60), "the test never let the IDLE connections open"
        real_start(self)

    passes: list[int] = []
    real_pass = Daemon.pass_once

    async def counted(self: Daemon, world: World, seen: Seen) -> datetime | None:
        try:
            return await real_pass(self, world, seen)
        finally:
            passes.append(len(agent.smtp.messages))

    monkeypatch.setattr(Watcher, "start", held_start)
    monkeypatch.setattr(Daemon, "pass_once", counted)
    monkeypatch.setattr(service, "HEARTBEAT", 3600.0)  # no look "at least every minute" to hide a missed one
    agent.drop(mail("waiting at the start"))
    daemon = Daemon(load_settings(agent.config, required=True), agent.config)

    async def drive() -> None:
        running = asyncio.create_task(daemon.run())
        try:
            # The first pass sent what waited, and the one after it found nothing more: all without IDLE.
            await until(lambda: len(passes) >= 2 and passes[-1] == 1, "the first passes, before IDLE is on")
            agent.drop(mail("dropped while IDLE was still opening"))  # nobody can report this one yet
            opening.set()
            await until(lambda: len(agent.smtp.messages) == 2, "the message dropped before IDLE was on")
        finally:
            opening.set()
            daemon.stop()
            await asyncio.wait_for(running, 30)

    asyncio.run(drive())  # the IDLE threads end by themselves within a few seconds (daemon threads)
    assert sorted(agent.subjects("Sent")) == ["dropped while IDLE was still opening", "waiting at the start"]


def test_an_idle_connection_whose_login_ended_is_a_lost_connection_not_a_refusal() -> None:
    """The command connection has just logged in with the same password: an IDLE connection's login that a
    server's drop cut short (`* BYE Connection closed`, read by imaplib as the LOGIN's answer) is no refusal to
    wait out a minute for; the daemon reconnects at once (and the command connection's login says what is true)."""
    from types import SimpleNamespace
    from typing import Any, cast

    from agent.mail.session import ImapLoginRefused, MailboxError

    cut = ImapLoginRefused("imap: login as 'sam' refused by 127.0.0.1:143: command: LOGIN => Connection closed")
    watcher = SimpleNamespace(
        error=cut, failed_to_start=True, watcher=SimpleNamespace(folder="Mentor Outbox"), renew=600.0
    )
    daemon = SimpleNamespace(settings=SimpleNamespace(imap=SimpleNamespace(timeout=30.0)))
    with pytest.raises(MailboxError) as raised:
        Daemon._check_watchers(cast(Any, daemon), [cast(Any, watcher)])
    assert not isinstance(raised.value, ImapLoginRefused), raised.value
    # ... and one that keeps its back-off growing (a limit on connections: not a login every second).
    assert isinstance(raised.value, service.IdleLoginCut)
    assert "Mentor Outbox" in str(raised.value)
