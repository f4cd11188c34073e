"""The layers of docs/architecture.md, enforced: import-linter's contracts in pyproject.toml must all be kept.

Runs ``lint-imports`` (the same interpreter, the worktree's ``agent`` first on the path) so that the README's test
command and CI fail on an import that points up a layer, on I/O in the rules, and on an import cycle.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"
TOP_LEVEL = {"__init__", "__main__", "errors", "logs", "crashpoints"}


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-c", LINT, "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_layer_contracts_are_kept() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


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
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "agent.rules is not allowed to import socket" in result.stdout
    assert "agent.rules is not allowed to import agent.store" in result.stdout
    assert "No cycles are allowed in agent" in result.stdout


def test_every_module_lives_in_a_layer() -> None:
    flat = sorted(p.stem for p in (ROOT / "agent").glob("*.py") if p.stem not in TOP_LEVEL)
    assert not flat, f"modules outside the layer packages (see docs/architecture.md): {flat}"
