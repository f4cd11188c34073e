"""Benchmark: the pacing engine through ``simulate`` over generated events, on two workloads.

    python3 benchmarks/bench_engine.py [--workload busy,rare] [--sizes 10000,30000,100000]
                                       [--rare-sizes 2000,6000,20000]

Events: a student who writes to one mentor a few times a day (some thread answers, some flagged), under the
example agreement (agent/examples/rivera.toml: 1 a day, 3 a week, min gap 4h, at most 2 unanswered, batch).

* ``busy``: the mentor answers about 15 % of the events (a reply to one of the last 20 messages);
* ``rare``: the mentor almost never answers (0.2 % of the events), so thousands of messages wait at once.

Times are wall-clock for one ``simulate`` call; the growth column shows how time scales with size (linear
is the size ratio).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.rules.policy import load_policy
from agent.rules.simulate import Event, simulate

ROOT = Path(__file__).resolve().parent.parent
CHICAGO = ZoneInfo("America/Chicago")
START = datetime(2026, 1, 5, 8, 0, tzinfo=CHICAGO)


@dataclass(frozen=True)
class EngineResult:
    workload: str
    events: int
    sends: int
    seconds: float
    sent: int


WORKLOADS = {"busy": 0.15, "rare": 0.002}  # the share of events that are the mentor's replies


def make_events(count: int, seed: int = 3, replies: float = WORKLOADS["busy"]) -> list[Event]:
    """``count`` events: sends, and a share ``replies`` of replies to an earlier send, a few hours apart."""
    rng = random.Random(seed)
    events: list[Event] = []
    sent_ids: list[str] = []
    at = START
    for index in range(count):
        at += timedelta(minutes=rng.randrange(20, 400))
        if sent_ids and rng.random() < replies:
            events.append(Event(at=at, type="reply", to=rng.choice(sent_ids[-20:])))
            continue
        ident = f"m{index}"
        sent_ids.append(ident)
        events.append(
            Event(
                at=at,
                type="send",
                id=ident,
                subject=f"Message {index}",
                thread=rng.random() < 0.1,
                group=rng.choice(["", "", "research"]),
                flagged=rng.random() < 0.02,
            )
        )
    return events


def run_engine(count: int, budget: float = 600.0, workload: str = "busy") -> EngineResult:
    policy = load_policy(ROOT / "agent" / "examples" / "rivera.toml").policy
    events = make_events(count, replies=WORKLOADS[workload])
    began = time.perf_counter()
    outcomes = simulate(policy, events)
    seconds = time.perf_counter() - began
    if seconds > budget:
        print(f"warning: {count} events took {seconds:.0f} s, over the {budget:.0f} s budget", file=sys.stderr)
    return EngineResult(workload, count, len(outcomes), seconds, sum(1 for o in outcomes if o.sent_at is not None))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workload", default="busy,rare", help="comma-separated subset of busy,rare")
    parser.add_argument("--sizes", default="10000,30000,100000", help="event counts of the busy workload")
    parser.add_argument("--rare-sizes", default="2000,6000,20000", help="event counts of the rare workload")
    args = parser.parse_args()
    for workload in args.workload.split(","):
        sizes = args.sizes if workload == "busy" else args.rare_sizes
        previous: EngineResult | None = None
        for size in (int(s) for s in sizes.split(",")):
            result = run_engine(size, workload=workload)
            print(
                f"{workload:>4}: simulate {result.events:>7} events ({result.sends} sends, {result.sent} sent): "
                f"{result.seconds:8.2f} s  ({result.seconds / result.events * 1e6:.1f} µs/event)"
                f"{growth(previous, result)}",
                flush=True,
            )
            previous = result


def growth(previous: EngineResult | None, result: EngineResult) -> str:
    """``  ×T time for ×N events`` against the previous size, or nothing for the first."""
    if previous is None:
        return ""
    return f"  ×{result.seconds / previous.seconds:.1f} time for ×{result.events / previous.events:.1f} events"


if __name__ == "__main__":
    main()
