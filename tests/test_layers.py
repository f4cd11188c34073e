"""The layers of docs/architecture.md, enforced: import-linter's contracts in pyproject.toml must all be kept.

Runs ``lint-imports`` (the same interpreter, the worktree's ``agent`` first on the path) so that the README's test
command and CI fail on an import that points up a layer, on I/O in the rules, and on an import cycle. Only
``agent.store`` speaks SQL: besides the ``sql-in-store`` contract (no sqlite3 import elsewhere), a scan of the
source fails on SQL run through the ledger's connection (``ledger.db``, ``.execute(...)``) outside agent/store.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"
TOP_LEVEL = {"__init__", "__main__", "errors", "logs", "crashpoints"}
SQL_CALLS = {"execute", "executemany", "executescript"}
MAX_LINES = 400  # a module longer than this says why at the top ("Why one module ...") or is split


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-c", LINT, "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_layer_contracts_are_kept() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def sql_outside_the_store(agent: Path) -> list[str]:
    """Every place outside agent/store that runs SQL itself: imports sqlite3, reaches for a ``.db`` connection,
    or calls ``execute``/``executemany``/``executescript``; as ``path:line: what``."""
    found: list[str] = []
    for path in sorted(agent.rglob("*.py")):
        relative = path.relative_to(agent.parent)
        if relative.parts[:2] == ("agent", "store"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            what = ""
            if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "sqlite3" for a in node.names):
                what = "imports sqlite3"
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlite3":
                what = "imports from sqlite3"
            elif isinstance(node, ast.Attribute) and node.attr == "db":
                what = "uses a .db connection"
            elif isinstance(node, ast.Attribute) and node.attr in SQL_CALLS:
                what = f"calls .{node.attr}()"
            if what:
                found.append(f"{relative}:{getattr(node, 'lineno', 0)}: {what}")
    return found


def test_only_the_store_speaks_sql() -> None:
    found = sql_outside_the_store(ROOT / "agent")
    assert not found, "SQL outside agent/store (give the store a named method instead):\n" + "\n".join(found)


def test_sql_planted_outside_the_store_is_found(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "agent", tmp_path / "agent", ignore=shutil.ignore_patterns("__pycache__"))
    context = tmp_path / "agent" / "reconcile" / "context.py"
    text = context.read_text(encoding="utf-8")
    context.write_text(
        text.replace(
            "from __future__ import annotations\n", "from __future__ import annotations\n\nimport sqlite3\n", 1
        )
        + "\n\ndef _planted(world: World) -> None:\n    world.ledger.db.execute('DELETE FROM log')\n",
        encoding="utf-8",
    )
    found = sql_outside_the_store(tmp_path / "agent")
    print("\n".join(found))
    assert any(f.startswith("agent/reconcile/context.py:") and f.endswith("imports sqlite3") for f in found)
    assert any(f.endswith("uses a .db connection") for f in found)
    assert any(f.endswith("calls .execute()") for f in found)


def test_a_forbidden_import_breaks_the_contracts(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "agent", tmp_path / "agent", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    slots = tmp_path / "agent" / "rules" / "slots.py"
    slots.write_text(
        slots.read_text(encoding="utf-8").replace(
            "from __future__ import annotations\n",
            "from __future__ import annotations\n\nimport socket  # noqa\n\nfrom agent.store import ledger  # noqa\n",
            1,
        ),
        encoding="utf-8",
    )
    context = tmp_path / "agent" / "reconcile" / "context.py"
    context.write_text(
        context.read_text(encoding="utf-8").replace(
            "from __future__ import annotations\n", "from __future__ import annotations\n\nimport sqlite3  # noqa\n", 1
        ),
        encoding="utf-8",
    )
    steering = tmp_path / "agent" / "cli" / "steering.py"
    steering.write_text(
        steering.read_text(encoding="utf-8").replace(
            "from __future__ import annotations\n",
            "from __future__ import annotations\n\nfrom agent.reconcile.context import World  # noqa\n",
            1,
        ),
        encoding="utf-8",
    )
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "agent.reconcile is not allowed to import sqlite3" in result.stdout
    assert "agent.cli is not allowed to import agent.reconcile.context" in result.stdout
    assert "agent.rules is not allowed to import socket" in result.stdout
    assert "agent.rules is not allowed to import agent.store" in result.stdout
    assert "No cycles are allowed in agent" in result.stdout


def test_every_module_lives_in_a_layer() -> None:
    flat = sorted(p.stem for p in (ROOT / "agent").glob("*.py") if p.stem not in TOP_LEVEL)
    assert not flat, f"modules outside the layer packages (see docs/architecture.md): {flat}"


def long_modules_without_a_reason(agent: Path) -> list[str]:
    found = []
    for path in sorted(agent.rglob("*.py")):
        relative = path.relative_to(agent.parent).as_posix()
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        if lines > MAX_LINES:
            docstring = ast.get_docstring(ast.parse(text)) or ""
            if "Why one module" not in docstring and "longer than most because" not in docstring:
                found.append(f"{relative}: {lines} lines")
    return found


def test_a_long_module_says_why_it_is_one() -> None:
    found = long_modules_without_a_reason(ROOT / "agent")
    assert not found, f"over {MAX_LINES} lines without a reason at the top (split it, or say why):\n" + "\n".join(found)
