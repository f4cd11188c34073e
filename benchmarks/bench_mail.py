"""Server benchmarks: reaction, release precision, backlog and idle cost of the real daemon, each next to its floor.

Called by ``benchmarks/run.py``; every function takes a running :class:`harness.Servers` and returns figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiosmtplib
from floor_process import DAEMON_IMPORTS, STACK_IMPORTS, backlog_floor_process
from harness import (
    MENTOR,
    STUDENT,
    BenchAgent,
    Servers,
    Stats,
    folder_count,
    multiappend,
    open_policy,
    running_agent,
    wait_received,
)

from tests.agent_process import OUTBOX, mail, parse
from tests.servers.dovecot import User
from tests.servers.smtp import SmtpServer

FRIEND = "friend@example.org"
KEPT_LOGS = Path("/tmp/mentor-agent-bench")  # the reaction run's daemon log is kept here, to explain outliers


# -- 1. reaction -------------------------------------------------------------------------------------------------


class FloorWatcher:
    """The minimal alternative: one imapclient IDLE on the Outbox, fetch what is new, one aiosmtplib send."""

    def __init__(self, servers: Servers, user: User, smtp: SmtpServer) -> None:
        self.client = servers.client(user)
        self.smtp = smtp
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="floor", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        client = self.client
        try:
            client.select_folder(OUTBOX)
            last = max(client.search("ALL"), default=0)
            client.idle()
            while not self.stop.is_set():
                responses = client.idle_check(timeout=0.5)
                if not any(r[1] == b"EXISTS" for r in responses if len(r) > 1):
                    continue
                client.idle_done()
                fresh = [uid for uid in client.search(["UID", f"{last + 1}:*"]) if uid > last]
                for uid, item in client.fetch(fresh, ["BODY.PEEK[]"]).items():
                    raw = bytes(item[b"BODY[]"])
                    loop.run_until_complete(
                        aiosmtplib.send(
                            raw, sender=STUDENT, recipients=[MENTOR], hostname=self.smtp.host, port=self.smtp.port
                        )
                    )
                    last = max(last, uid)
                client.idle()
            client.idle_done()
        except BaseException as error:
            self.error = error
        finally:
            loop.close()

    def __enter__(self) -> FloorWatcher:
        self.thread.start()
        time.sleep(0.5)  # IDLE is on
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(10)
        with contextlib.suppress(Exception):  # the connection may already be gone
            self.client.logout()


def _reaction_runs(
    servers: Servers,
    user: User,
    smtp: SmtpServer,
    runs: int,
    label: str,
    rng: random.Random,
    agent: BenchAgent | None = None,
) -> list[float]:
    """APPEND one message at a time, wait for it at the SMTP server; seconds from APPEND to receipt."""
    latencies: list[float] = []
    client = servers.client(user)
    try:
        base = len(smtp.messages)
        for n in range(runs):
            raw = mail(f"{label} {n}")
            began = time.monotonic()
            client.append(OUTBOX, raw)
            received = wait_received(agent, base + n + 1, 30) if agent else smtp.wait_for(base + n + 1, timeout=30)
            latencies.append(received[base + n].received_at - began)
            if latencies[-1] > 2.0:  # an outlier: say when, to find it in the daemon's log
                print(f"{label} {n}: {latencies[-1]:.2f} s, appended at {time.strftime('%H:%M:%S')}", flush=True)
            # Let the agent file it in Sent; then a random phase against Dovecot's 1 s IDLE check.
            time.sleep(0.3 + rng.random())
    finally:
        client.logout()
    return latencies


@dataclass(frozen=True)
class Reaction:
    agent: Stats
    floor: Stats
    agent_times: list[float]


def reaction(servers: Servers, runs: int) -> Reaction:
    rng = random.Random(1)
    with running_agent(servers, open_policy()) as agent:
        time.sleep(2)
        agent_times = _reaction_runs(servers, agent.user, agent.smtp, runs, "reaction", rng, agent)
        KEPT_LOGS.mkdir(exist_ok=True)
        shutil.copy(agent.logs[0], KEPT_LOGS / "reaction-agent.log")
    smtp = servers.smtp()
    try:
        user = servers.user()
        with FloorWatcher(servers, user, smtp) as floor:
            floor_times = _reaction_runs(servers, user, smtp, runs, "floor", rng)
            if floor.error:
                raise floor.error
    finally:
        smtp.stop()
    return Reaction(Stats.of(agent_times), Stats.of(floor_times), agent_times)


# -- 2. release precision ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Release:
    due_error: Stats  # |received at the SMTP server − due in the ledger|, seconds
    gap_error: Stats  # |(receipt − previous receipt) − min_gap|, seconds
    messages: int
    gap: float


def release(servers: Servers, count: int, gap_seconds: int = 3) -> Release:
    with running_agent(servers, open_policy(min_gap=f"{gap_seconds}s")) as agent:
        client = servers.client(agent.user)
        try:
            raws = [mail(f"release {n}") for n in range(count)]
            multiappend(client, OUTBOX, raws)
        finally:
            client.logout()
        received = wait_received(agent, count, count * gap_seconds + 120)
        wall_offset = time.time() - time.monotonic()
        rows = {row.message_id: row for row in agent.ledger().in_states("done", "accepted")}
        due_errors = []
        for message in received:
            row = rows.get(str(parse(message.content)["Message-ID"]).strip())
            if row is None or row.due is None:
                continue  # the first one goes at once: no due time
            sent = datetime.fromtimestamp(message.received_at + wall_offset, tz=UTC)
            due_errors.append(abs((sent - row.due).total_seconds()))
        gaps = [abs(b.received_at - a.received_at - gap_seconds) for a, b in itertools.pairwise(received)]
    return Release(Stats.of(due_errors), Stats.of(gaps), count, gap_seconds)


# -- 3. backlog --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backlog:
    messages: int
    seed_seconds: float
    decided: float  # daemon start → Outbox empty (every message sent, scheduled or refused)
    delivered: float  # daemon start → every pass-through message (and the mentor's first) at the server
    total: float
    floor: float  # the bare steps in this process, timed from the first IMAP command (no start-up at all)
    floor_process: float  # the same bare steps as a script started as a process, timed from its start, as the daemon
    floor_stack: float  # floor_process with the required stack's imports first (pydantic-settings, tenacity)
    floor_imports: float  # floor_process with all the daemon's imports first: no daemon can do its work faster
    finished: bool
    detail: str


def _backlog_messages(count: int) -> list[bytes]:
    return [mail(f"backlog {n}", to=MENTOR if n % 2 else FRIEND) for n in range(count)]


def backlog_floor(servers: Servers, raws: list[bytes]) -> float:
    """Fetch every header with bare imapclient, then send the pass-through ones over one aiosmtplib connection."""
    user = servers.user()
    smtp = servers.smtp()
    client = servers.client(user)
    try:
        multiappend(client, OUTBOX, raws)
        expected = sum(1 for raw in raws if b"To: " + FRIEND.encode() in raw) + 1
        began = time.monotonic()
        client.select_folder(OUTBOX)
        uids = client.search("ALL")
        headers = {}
        for start in range(0, len(uids), 500):
            headers.update(client.fetch(uids[start : start + 500], ["FLAGS", "BODY.PEEK[HEADER]"]))
        to_send = [
            uid
            for uid, item in headers.items()
            if b"\r\nTo: " + FRIEND.encode() in b"\r\n" + bytes(item[b"BODY[HEADER]"])
        ]
        to_send.append(next(uid for uid in uids if uid not in set(to_send)))  # the mentor's first goes at once

        async def send_all() -> None:
            connection = aiosmtplib.SMTP(hostname=smtp.host, port=smtp.port)
            await connection.connect()
            for start in range(0, len(to_send), 500):
                bodies = client.fetch(to_send[start : start + 500], ["BODY.PEEK[]"])
                for item in bodies.values():
                    raw = bytes(item[b"BODY[]"])
                    rcpt = FRIEND if b"\r\nTo: " + FRIEND.encode() in b"\r\n" + raw else MENTOR
                    await connection.sendmail(STUDENT, [rcpt], raw)
            await connection.quit()

        asyncio.run(send_all())
        smtp.wait_for(expected, timeout=60)
        return time.monotonic() - began
    finally:
        client.logout()
        smtp.stop()


def backlog(servers: Servers, count: int, timeout: float, profile: str | None = None) -> Backlog:
    raws = _backlog_messages(count)
    expected = count // 2 + 1  # the pass-through half, plus the first to the mentor (min_gap 1h holds the rest)
    seeded: list[float] = []

    def seed(agent: BenchAgent) -> None:
        client = servers.client(agent.user)
        try:
            seeded.append(multiappend(client, OUTBOX, raws))
        finally:
            client.logout()

    with running_agent(servers, open_policy(min_gap="1h"), start=False, before_start=seed) as agent:
        # The measuring client logs in before the daemon starts, and the Outbox is looked at every 10 ms from the
        # daemon's first instant: the measure has no grain of its own beyond that (waiting for "connected" first
        # added up to 0.1 s). "Delivered" is the SMTP server's own receive time of the last expected message.
        client = servers.client(agent.user)
        decided = delivered = None
        spy = None
        try:
            began = time.monotonic()
            agent.launch()
            if profile:
                import subprocess

                spy = subprocess.Popen(
                    [
                        "py-spy",
                        "record",
                        "--pid",
                        str(agent.pid),
                        "--format",
                        "raw",
                        "--output",
                        profile,
                        "--rate",
                        "50",
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            deadline = began + timeout
            while time.monotonic() < deadline and (decided is None or delivered is None):
                now = time.monotonic()
                if decided is None and folder_count(client, OUTBOX) == 0 and folder_count(client, "Sending") == 0:
                    decided = now - began
                received = agent.smtp.messages
                if delivered is None and len(received) >= expected:
                    delivered = max(message.received_at for message in received[:expected]) - began
                if agent.process_ended():
                    break
                time.sleep(0.01)
            outbox = folder_count(client, OUTBOX)
        finally:
            client.logout()
            if spy is not None:
                spy.send_signal(2)
                spy.wait(30)
        finished = decided is not None and delivered is not None
        detail = (
            f"at the end: {len(agent.smtp.messages)}/{expected} at the SMTP server, {outbox} left in Outbox"
            f", {agent.log().count('ERROR')} ERROR lines"
        )
    floor = backlog_floor(servers, raws)
    floor_process = backlog_floor_process(servers, raws, FRIEND)
    floor_stack = backlog_floor_process(servers, raws, FRIEND, STACK_IMPORTS)
    floor_imports = backlog_floor_process(servers, raws, FRIEND, DAEMON_IMPORTS)
    total = max(decided or timeout, delivered or timeout)
    return Backlog(
        count,
        seeded[0] if seeded else 0.0,
        decided or float("nan"),
        delivered or float("nan"),
        total,
        floor,
        floor_process,
        floor_stack,
        floor_imports,
        finished,
        detail,
    )


# -- 4. idle cost ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Idle:
    seconds: float
    cpu_seconds: float
    cpu_percent: float
    rss_mb_start: float
    rss_mb_max: float
    threads: int
    interpreter_mb: float  # `python3 -c pass` on this machine: the floor under any Python daemon
    interpreter_no_site_mb: float  # the same with -S: without site-packages' .pth files (this machine's, not ours)


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of proc(5))
    return ticks / os.sysconf("SC_CLK_TCK")


def _status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def interpreter_rss(*options: str) -> float:
    """The resident set of a Python that does nothing (MB), as the daemon's interpreter is started."""
    script = "print([line.split()[1] for line in open('/proc/self/status') if line.startswith('VmRSS:')][0])"
    result = subprocess.run([sys.executable, *options, "-c", script], capture_output=True, text=True, check=True)
    return int(result.stdout) / 1024


def idle(servers: Servers, seconds: float) -> Idle:
    with running_agent(servers, open_policy()) as agent:
        time.sleep(5)  # past start-up
        pid = agent.pid
        rss_start = _status(pid, "VmRSS") / 1024
        rss_max = rss_start
        cpu_before, began = _cpu(pid), time.monotonic()
        while time.monotonic() - began < seconds:
            time.sleep(min(5.0, seconds - (time.monotonic() - began)) if seconds > 0 else 0)
            rss_max = max(rss_max, _status(pid, "VmRSS") / 1024)
        elapsed = time.monotonic() - began
        cpu = _cpu(pid) - cpu_before
        threads = _status(pid, "Threads")
    return Idle(
        elapsed, cpu, cpu / elapsed * 100, rss_start, rss_max, threads, interpreter_rss(), interpreter_rss("-S")
    )
