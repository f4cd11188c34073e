"""Run every benchmark and write docs/benchmarks.md.

    python3 benchmarks/run.py            # full: 200 reactions, 50 releases, backlogs of 100/500/5,000 (5/5/3 runs)
    python3 benchmarks/run.py --quick    # the same figures, smaller: a few minutes
    python3 benchmarks/run.py --only engine,slots --profile-backlog /tmp/backlog.txt

Needs root and Dovecot (as the server tests do); everything runs on 127.0.0.1. Each figure is measured in the
same run as its floor, and reported as median and worst with the ratio to the floor.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

import bench_engine  # noqa: E402
import bench_mail  # noqa: E402
import harness  # noqa: E402

ROOT = HERE.parent
ALL = ("reaction", "release", "backlog", "idle", "engine", "slots")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts, a few minutes in all")
    parser.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--profile-backlog", metavar="FILE", help="record the daemon with py-spy during the backlog")
    args = parser.parse_args()
    only = set(args.only.split(","))
    unknown = only - set(ALL)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    quick = args.quick
    reactions = 20 if quick else 200
    releases = 10 if quick else 50
    backlog_sizes = (100, 500) if quick else (100, 500, 5000)
    # Several runs a size, the daemon and its floor alternated: one run is no verdict on a shared machine.
    backlog_runs = {100: 3, 500: 3} if quick else {100: 5, 500: 5, 5000: 3}
    idle_seconds = 60.0 if quick else 600.0
    engine_sizes = (10_000, 30_000) if quick else (10_000, 30_000, 100_000)

    rows: list[str] = []
    notes: list[str] = []
    started = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - started:7.1f} s] {text}", flush=True)

    def failed(name: str, error: Exception) -> None:
        say(f"{name}: FAILED: {error}")
        rows.append(f"| {name} | failed: {str(error).splitlines()[0][:200]} | — | — | — | — |")
        notes.append(f"{name} failed:\n\n```\n{str(error)[-1500:]}\n```")

    # The pure benchmarks first: they are the most sensitive to anything else running on the machine.
    if "engine" in only:
        rare_sizes = (2_000, 6_000) if quick else (2_000, 6_000, 20_000)
        for workload, sizes in (("busy", engine_sizes), ("rare", rare_sizes)):
            previous: bench_engine.EngineResult | None = None
            label = "" if workload == "busy" else ", mentor rarely answers"
            for size in sizes:
                say(f"engine: simulate {size} events ({workload})")
                e = bench_engine.run_engine(size, workload=workload)
                growth = (
                    ""
                    if previous is None
                    else (f"×{e.seconds / previous.seconds:.1f} time for ×{e.events / previous.events:.1f} events")
                )
                rows.append(
                    f"| Engine: `simulate` over {e.events:,} events ({e.sends:,} sends{label}), one run "
                    f"| {e.seconds:.2f} s | {e.seconds / e.events * 1e6:.0f} µs/event | — "
                    f"| {growth or '—'} | — |"
                )
                previous = e
    if "slots" in only:
        say("slots: benchmarks/bench_slots.py")
        runs = "10" if quick else "50"
        out = subprocess.run(
            [sys.executable, str(HERE / "bench_slots.py"), "--events", "5000", "--runs", runs],
            capture_output=True,
            text=True,
            check=True,
            timeout=1800,
        ).stdout
        notes.append(
            "Slot finder (`python3 benchmarks/bench_slots.py --events 5000 --runs "
            + runs
            + "`):\n\n```\n"
            + out.strip()
            + "\n```"
        )
        for line in out.splitlines():
            if "median" in line:
                label, rest = line.split(" median ", 1)
                median, worst = rest.split(" worst ")
                rows.append(
                    f"| Slots, 90-day horizon, 5,000 calendar events: {label.strip()} | {median.strip()} "
                    f"| {worst.split('(')[0].strip()} | — | — | — |"
                )

    if only & {"reaction", "release", "backlog", "idle"}:
        with harness.servers() as servers:
            if "reaction" in only:
                try:
                    say(f"reaction: {reactions} runs, agent then floor")
                    r = bench_mail.reaction(servers, reactions)
                    ratio = r.agent.median / r.floor.median
                    rows.append(
                        f"| Reaction: APPEND to Outbox → at the SMTP server ({r.agent.count} runs) "
                        f"| {_ms(r.agent.median)} | {_ms(r.agent.worst)} "
                        f"| bare imapclient IDLE + one aiosmtplib send: {_ms(r.floor.median)} / {_ms(r.floor.worst)} "
                        f"| {ratio:.2f} (worst {r.agent.worst / r.floor.worst:.2f}) "
                        f"| ratio ≤ 1.3: {_verdict(ratio <= 1.3)} |"
                    )
                    say(f"reaction: agent {r.agent}, floor {r.floor}")
                    slow = [f"run {n}: {t:.2f} s" for n, t in enumerate(r.agent_times) if t > 2 * r.floor.worst]
                    notes.append(
                        f"Reaction: {len(slow)} of {r.agent.count} agent runs took more than twice the "
                        f"floor's worst{': ' + ', '.join(slow) if slow else ''}."
                    )
                except Exception as error:  # one broken benchmark must not lose the others
                    failed("reaction", error)
            if "release" in only:
                try:
                    say(f"release: {releases} messages, min_gap 3s")
                    p = bench_mail.release(servers, releases)
                    rows.append(
                        f"| Release precision: \\|received − ledger due\\| ({p.due_error.count} scheduled of "
                        f"{p.messages}, min_gap {p.gap:.0f}s) | {_ms(p.due_error.median)} | {_ms(p.due_error.worst)} "
                        f"| — (gap between receipts − {p.gap:.0f} s: median {_ms(p.gap_error.median)}, "
                        f"worst {_ms(p.gap_error.worst)}) | — "
                        f"| median ≤ 200 ms: {_verdict(p.due_error.median <= 0.2)} |"
                    )
                    say(f"release: {p}")
                except Exception as error:  # one broken benchmark must not lose the others
                    failed("release", error)
            if "backlog" in only:
                for size in backlog_sizes:
                    try:
                        repeats = backlog_runs[size]
                        say(f"backlog: {size} messages, {repeats} runs (the daemon, then its floors, each run)")
                        limit = 600 if quick else 2400
                        each = [
                            bench_mail.backlog(
                                servers, size, timeout=limit, profile=args.profile_backlog if n == 0 else None
                            )
                            for n in range(repeats)
                        ]
                        total = harness.Stats.of([b.total for b in each])
                        floor = harness.Stats.of([b.floor_process for b in each])
                        bare = harness.Stats.of([b.floor for b in each])
                        ratio = total.median / floor.median
                        finished = all(b.finished for b in each)
                        decided = harness.Stats.of([b.decided for b in each]).median
                        delivered = harness.Stats.of([b.delivered for b in each]).median
                        rows.append(
                            f"| Backlog: {size} in the Outbox at start → all decided and the "
                            f"{size // 2 + 1} sendable at the server ({repeats} runs) | {total.median:.2f} s "
                            f"(decided {decided:.2f} s, delivered {delivered:.2f} s) | {total.worst:.2f} s "
                            f"| a bare imapclient header fetch + one aiosmtplib connection, started as a process like "
                            f"the daemon: {floor.median:.2f} s / {floor.worst:.2f} s (in this process, without "
                            f"start-up: {bare.median:.2f} s) | {ratio:.1f} "
                            f"| ratio ≤ 2: {_verdict(ratio <= 2 and finished)} |"
                        )
                        stack = harness.Stats.of([b.floor_stack for b in each]).median
                        imports = harness.Stats.of([b.floor_imports for b in each]).median
                        rows.append(
                            f"| Backlog {size}, bound: the floor's process with only imports added, the daemon's work "
                            f"left out | the required stack's (pydantic-settings, tenacity): {stack:.2f} s; all the "
                            f"daemon's: {imports:.2f} s | — | {floor.median:.2f} s | {stack / floor.median:.2f}; "
                            f"{imports / floor.median:.2f} | — (what ×2 leaves the daemon's own work: "
                            f"{2 * floor.median - imports:.2f} s) |"
                        )
                        pairs = ", ".join(f"{b.total:.2f}/{b.floor_process:.2f}" for b in each)
                        notes.append(
                            f"Backlog {size}, each run daemon/floor in s: {pairs}; seeded with MULTIAPPEND in "
                            f"{max(b.seed_seconds for b in each):.1f} s at most; last run {each[-1].detail}."
                        )
                        for b in each:
                            say(f"backlog: {b}")
                    except Exception as error:  # one broken benchmark must not lose the others
                        failed(f"backlog {size}", error)
            if "idle" in only:
                try:
                    say(f"idle: {idle_seconds:.0f} s")
                    i = bench_mail.idle(servers, idle_seconds)
                    rows.append(
                        f"| Idle cost over {i.seconds / 60:.1f} min (CPU from /proc/PID/stat) | {i.cpu_percent:.3f} % "
                        f"of a core ({i.cpu_seconds:.2f} s CPU) | RSS {i.rss_mb_max:.1f} MB (at start "
                        f"{i.rss_mb_start:.1f}; {i.threads} threads) | an idle `python3 -c pass`: "
                        f"{i.interpreter_mb:.1f} MB ({i.interpreter_no_site_mb:.1f} MB with `-S`: this machine's "
                        f"site-packages .pth files add the rest) | — | < 0.1 %: {_verdict(i.cpu_percent < 0.1)}, "
                        f"≤ 45 MB: {_verdict(i.rss_mb_max <= 45)} |"
                    )
                    say(f"idle: {i}")
                except Exception as error:  # one broken benchmark must not lose the others
                    failed("idle", error)
    command = "python3 benchmarks/run.py" + (" --quick" if quick else "")
    if args.only != ",".join(ALL):
        command += f" --only {args.only}"
    text = [
        "# Benchmarks",
        "",
        f"Measured with `{command}` on {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, "
        f"{platform.machine()}, Python {platform.python_version()}, {_cpu_name()}.",
        "Everything on 127.0.0.1 against the real Dovecot (test config: `mailbox_idle_check_interval = 1 secs`) "
        "and aiosmtpd from `tests/servers/`; the daemon is `python -m agent run` at log level INFO.",
        "",
        "| figure | median | worst | floor (same run) | ratio to floor | target |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        *[f"{note}\n" for note in notes],
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    existing = args.output.read_text() if args.output.exists() else ""
    marker = "\n## Findings"  # hand-written analysis below the generated table is kept
    tail = existing[existing.index(marker) :] if marker in existing else ""
    args.output.write_text("\n".join(text).rstrip() + "\n" + tail)
    say(f"wrote {args.output}")
    return 0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    raise SystemExit(main())
