"""Turn the fault suite's JSON-lines figures into the markdown table of docs/faults.md.

python3 -m pytest tests/faults --faults-report /tmp/bounded.jsonl
python3 -m pytest tests/faults --soak --faults-report /tmp/soak.jsonl
python3 -m tests.faults.report /tmp/bounded.jsonl /tmp/soak.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SKIP = {"test", "soak", "tries", "survived", "lost", "duplicated"}


def table(entries: list[dict[str, Any]]) -> str:
    lines = ["| test | form | tries | survived | lost | duplicated | other figures |", "|---|---|---|---|---|---|---|"]
    for e in entries:
        other = "; ".join(
            f"{k}: {json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v}"
            for k, v in e.items()
            if k not in SKIP
        )
        lines.append(
            f"| `{e['test']}` | {'soak' if e.get('soak') else 'bounded'} | {e.get('tries')} "
            f"| {e.get('survived')} | {e.get('lost')} | {e.get('duplicated')} | {other.replace('|', '/')} |"
        )
    return "\n".join(lines)


def main(paths: list[str]) -> None:
    entries = [json.loads(line) for path in paths for line in Path(path).read_text().splitlines() if line.strip()]
    print(table(entries))


if __name__ == "__main__":
    main(sys.argv[1:])
