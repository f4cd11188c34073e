"""The one user-facing error type: a list of problems, each pointing at a file and a key."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a file the user edits (a policy or the config)."""

    file: str
    key: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class UserError(Exception):
    """Raised for anything the user can fix; the CLI prints the problems and exits non-zero."""

    def __init__(self, problems: Iterable[Problem] | str) -> None:
        if isinstance(problems, str):
            self.problems: list[Problem] = [Problem(file="", key="", message=problems)]
        else:
            self.problems = list(problems)
        super().__init__("\n".join(str(p).lstrip(": ") for p in self.problems))
