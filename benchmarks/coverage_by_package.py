"""Coverage per package of ``agent``: a table from the data ``coverage run`` left (README, "Tests").

    python3 -m coverage run -m pytest          # the daemon and commands the tests start are measured too
    python3 -m coverage combine                # one data file from every process (pyproject [tool.coverage])
    python3 benchmarks/coverage_by_package.py  # or --markdown for docs/architecture.md

Lines and branches are counted as ``coverage report`` counts them (branch coverage is on), per package: rules,
config, store, mail, calendars, reconcile, daemon, demo, cli, and the top-level modules together.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import coverage

ROOT = Path(__file__).resolve().parent.parent
ORDER = ("rules", "config", "store", "mail", "calendars", "reconcile", "daemon", "demo", "cli", "(top level)")


@dataclass
class Row:
    package: str
    files: int = 0
    statements: int = 0
    missed: int = 0
    branches: int = 0
    partial: int = 0  # branches never taken

    def add(self, summary: dict[str, int]) -> None:
        """One file's summary from ``coverage json``."""
        self.files += 1
        self.statements += summary["num_statements"]
        self.missed += summary["missing_lines"]
        self.branches += summary.get("num_branches", 0)
        self.partial += summary.get("missing_branches", 0)

    @property
    def lines(self) -> float:
        return 100.0 * (self.statements - self.missed) / self.statements if self.statements else 100.0

    @property
    def cover(self) -> str:
        return f"{self.total:.0f}%"

    @property
    def total(self) -> float:
        """What ``coverage report`` prints as Cover: lines and branches together."""
        possible = self.statements + self.branches
        done = self.statements - self.missed + self.branches - self.partial
        return 100.0 * done / possible if possible else 100.0


def package_of(path: Path) -> str:
    parts = path.relative_to((ROOT / "agent").resolve()).parts
    return parts[0] if len(parts) > 1 else "(top level)"


def rows(data_file: Path) -> list[Row]:
    cov = coverage.Coverage(data_file=str(data_file), config_file=str(ROOT / "pyproject.toml"))
    cov.load()
    with tempfile.TemporaryDirectory() as temporary:
        report = Path(temporary) / "coverage.json"
        cov.json_report(outfile=str(report))  # files never run are in it too: source_pkgs = ["agent"]
        files: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))["files"]
    found: dict[str, Row] = {}
    for name, data in files.items():
        path = Path(name) if Path(name).is_absolute() else ROOT / name
        package = package_of(path.resolve())
        found.setdefault(package, Row(package)).add(data["summary"])
    ordered = [found[name] for name in ORDER if name in found]
    return ordered + [row for name, row in sorted(found.items()) if name not in ORDER]


HEADINGS = ("package", "files", "statements", "missed", "lines", "branches", "not taken", "cover")


def table(found: list[Row], markdown: bool) -> str:
    total = Row("total")
    for row in found:
        total.files += row.files
        total.statements += row.statements
        total.missed += row.missed
        total.branches += row.branches
        total.partial += row.partial
    body = [
        (row.package, row.files, row.statements, row.missed, f"{row.lines:.0f}%", row.branches, row.partial, row.cover)
        for row in [*found, total]
    ]
    if markdown:
        lines = ["| " + " | ".join(HEADINGS) + " |", "|---" + "|---:" * (len(HEADINGS) - 1) + "|"]
        lines += ["| " + " | ".join(str(cell) for cell in cells) + " |" for cells in body]
        return "\n".join(lines)
    widths = [max(len(str(cells[i])) for cells in [HEADINGS, *body]) for i in range(len(HEADINGS))]
    return "\n".join(
        "  ".join(
            str(cell).ljust(w) if i == 0 else str(cell).rjust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        )
        for cells in [HEADINGS, *body]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-file", type=Path, default=ROOT / ".coverage", help="combined data (coverage combine)")
    parser.add_argument("--markdown", action="store_true", help="a Markdown table")
    args = parser.parse_args(argv)
    if not args.data_file.exists():
        print(f"{args.data_file}: no coverage data; run `python3 -m coverage combine` first", file=sys.stderr)
        return 1
    print(table(rows(args.data_file), args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
