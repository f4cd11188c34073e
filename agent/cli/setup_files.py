"""Files `mentor-agent setup` writes: first as a hidden draft beside the target (checked there, so relative paths
mean the same), shown as a diff when the target exists and would change, then put in place (0600)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from agent.cli.prompts import Asker
from agent.config.writer import diff
from agent.errors import Problem, UserError


@contextlib.contextmanager
def draft_beside(target: Path, text: str) -> Iterator[Path]:
    """``text`` in a hidden 0600 file beside ``target`` (relative paths in it mean the same), removed after."""
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".new", dir=target.parent)
    path = Path(name)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        yield path
    finally:
        path.unlink(missing_ok=True)


def as_written(error: UserError, draft: Path, target: Path, flags: dict[str, str] | None = None) -> UserError:
    """The same problems, naming the file they will be in rather than the draft — or the flag that set the key
    (``flags``: key -> flag, for the values given as flags this run)."""
    given = flags or {}
    return type(error)(  # the same kind (a sign-in that did not finish stays one)
        [
            Problem("", given[p.key], p.message)
            if p.file == str(draft) and p.key in given
            else Problem(str(target) if p.file == str(draft) else p.file, p.key, p.message, p.line)
            for p in error.problems
        ]
    )


def may_replace(ask: Asker, target: Path, new: str, force: bool) -> bool:
    """Whether to write ``new`` over ``target``: always when there is none or it is the same; else shown, asked."""
    if not target.exists():
        return True
    old = target.read_text(encoding="utf-8")
    if old == new:
        return True
    ask.say(diff(old, new, str(target)))
    if force:
        return True
    if not ask.interactive:
        ask.fail("--force", f"{target} exists and would change as shown; give --force to write it")
    return ask.confirm("--force", None, f"Write these changes to {target}?", False)


def commit(draft: Path, target: Path) -> None:
    os.chmod(draft, 0o600)
    os.replace(draft, target)
