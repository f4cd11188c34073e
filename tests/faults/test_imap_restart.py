"""Dovecot killed (SIGKILL) or stopped, then started again, while the daemon idles or sends: it reconnects,
and nothing is missed — mail dropped before, during the outage's aftermath and after all goes out once."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest

from agent.daemon.reconnect import SHORT, SHORT_IN_A_ROW
from tests.agent_process import MENTOR, Agent, mail
from tests.faults.accounting import UNLIMITED_POLICY, account, settle

pytestmark = pytest.mark.servers

# Dovecot is back within a second or two; the daemon's reconnect backoff is 1-2 s after a first failure. A
# reconnect slower than this means the backoff kept growing across outages it had already recovered from.
RECONNECT_LIMIT = 60.0
# Sessions that each end within a minute, SHORT_IN_A_ROW times in a row, make the waits grow (a server that closes
# every session: agent.daemon.reconnect): the soak lets every fourth session last a minute, as a server restarted
# now and then does, and each restart after it is reconnected within seconds again.
LASTING_EVERY = SHORT_IN_A_ROW - 1


def test_imap_server_killed_and_restarted_reconnects_and_misses_nothing(
    agent: Agent, soak: bool, figures: Callable[..., None]
) -> None:
    cycles = 20 if soak else 3
    rng = random.Random(4242)
    agent.policy(UNLIMITED_POLICY)
    agent.start()
    subjects: list[str] = []
    reconnects: list[float] = []
    gave_up: int | None = None
    for cycle in range(cycles):
        sending = cycle % 2 == 0  # even cycles: mail in flight when the server goes; odd: the daemon idles
        if sending:
            batch = [f"imap-{cycle}-{n}" for n in range(4)]
            for subject in batch:
                agent.drop(mail(subject, to=MENTOR if rng.random() < 0.5 else "friend@example.org"))
            subjects += batch
            time.sleep(rng.uniform(0.0, 1.0))
        else:
            time.sleep(rng.uniform(0.5, 2.0))
        if (cycle + 1) % LASTING_EVERY == 0:
            time.sleep(SHORT)  # this session lasts
        before = agent.log().count("connected to")
        if rng.random() < 0.5:
            agent.dovecot.kill()
        else:
            agent.dovecot.stop()
        time.sleep(rng.uniform(0.0, 2.0))  # down for a while: the daemon's reconnects fail meanwhile
        agent.dovecot.start()
        up = time.monotonic()
        # Dropped before the daemon is back: only its first full pass after reconnecting can see this one.
        late = f"imap-{cycle}-late"
        agent.drop(mail(late))
        subjects.append(late)
        deadline = up + RECONNECT_LIMIT
        while agent.log().count("connected to") <= before and time.monotonic() < deadline:
            time.sleep(0.05)
        reconnects.append(time.monotonic() - up)
        if agent.log().count("connected to") <= before:
            gave_up = cycle
            break
    waited = settle(agent, subjects, timeout=90) if gave_up is None else 0.0
    tally = account(agent, subjects, notice_must_say="")
    figures(
        tries=cycles,
        messages=len(subjects),
        survived=len(subjects) - len(tally.lost) - len(tally.duplicated),
        **tally.figures(),
        reconnect_median_s=round(sorted(reconnects)[len(reconnects) // 2], 2),
        reconnect_worst_s=round(max(reconnects), 2),
        reconnects_s=[round(r, 1) for r in reconnects],
        no_reconnect_within_limit_at_cycle=gave_up,
        settle_seconds=round(waited, 1),
    )
    assert gave_up is None, (
        f"no reconnect within {RECONNECT_LIMIT} s after outage {gave_up + 1}; reconnect times "
        f"so far {[round(r, 1) for r in reconnects]}:\n{agent.log()[-3000:]}"
    )
    assert not agent.process_ended(), agent.log()[-3000:]
    assert tally.lost == [], f"lost: {tally.lost}"
    assert tally.duplicated == [], f"sent twice: {tally.duplicated}"
    assert tally.sent_twice_in_sent == [], f"filed twice: {tally.sent_twice_in_sent}"
    # An IMAP outage alone is no reason for doubt: the SMTP side was never interrupted.
    assert tally.reported == 0 and tally.delivered == len(subjects)
