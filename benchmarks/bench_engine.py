"""Benchmark: the pacing engine through ``simulate`` over 10k, 30k and 100k generated events.

    python3 benchmarks/bench_engine.py [--sizes 10000,30000,100000]

Events: a student who writes to one mentor a few times a day (some replies, some thread answers, some flagged),
under the example agreement (agent/examples/rivera.toml: 1 a day, 3 a week, min gap 4h, batch). Times are
wall-clock for one ``simulate`` call; the growth column shows how time scales with size.
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
    events: int
    sends: int
    seconds: float
    sent: int


def make_events(count: int, seed: int = 3) -> list[Event]:
    """``count`` events: about 85 % sends, 15 % replies to an earlier send, spread a few hours apart."""
    rng = random.Random(seed)
    events: list[Event] = []
    sent_ids: list[str] = []
    at = START
    for index in range(count):
        at += timedelta(minutes=rng.randrange(20, 400))
        if sent_ids and rng.random() < 0.15:
            events.append(Event(at=at, type="reply", to=rng.choice(sent_ids[-20:])))
            continue
        ident = f"m{index}"
        sent_ids.append(ident)
        events.append(Event(at=at, type="send", id=ident, subject=f"Message {index}",
                            thread=rng.random() < 0.1, group=rng.choice(["", "", "research"]),
                            flagged=rng.random() < 0.02))
    return events


def run_engine(count: int, budget: float = 600.0) -> EngineResult:
    policy = load_policy(ROOT / "agent" / "examples" / "rivera.toml").policy
    events = make_events(count)
    began = time.perf_counter()
    outcomes = simulate(policy, events)
    seconds = time.perf_counter() - began
    if seconds > budget:
        print(f"warning: {count} events took {seconds:.0f} s, over the {budget:.0f} s budget", file=sys.stderr)
    return EngineResult(count, len(outcomes), seconds, sum(1 for o in outcomes if o.sent_at is not None))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="10000,30000,100000")
    args = parser.parse_args()
    for size in (int(s) for s in args.sizes.split(",")):
        result = run_engine(size)
        print(f"simulate {result.events:>7} events ({result.sends} sends, {result.sent} sent): "
              f"{result.seconds:8.2f} s  ({result.seconds / result.events * 1e6:.1f} µs/event)")


if __name__ == "__main__":
    main()
