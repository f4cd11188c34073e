"""What every command shares: one handler for every failure, and the exit statuses.

Known failures (:class:`agent.errors.AgentError` and its kinds) are printed as one line each and end with
their own exit status; anything else is a bug: one line, and a hint to run again with ``--debug`` for the
traceback. The handler wraps the whole command group (:class:`AgentGroup`), so every command has it;
``friendly`` applies the same handler to a single command.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from agent.errors import EX_CONFIG, EX_SOFTWARE, EX_USER, AgentError, Problem, UserError

__all__ = [
    "EX_CONFIG",
    "EX_SOFTWARE",
    "EX_USER",
    "AgentGroup",
    "debugging",
    "friendly",
    "handle",
    "policy_path",
    "print_problems",
]

F = TypeVar("F", bound=Callable[..., Any])
_CLICK_OWN = (click.ClickException, click.exceptions.Exit, click.exceptions.Abort)


def print_problems(error: AgentError) -> None:
    for line in error.lines():
        click.echo(f"error: {line}", err=True)


def policy_path(reference: str, policies_dir: Path) -> Path:
    """The policy file MENTOR names: a path (ending in .toml, or an existing file), else an id in
    ``policies_dir``. An id with no file there is a UserError naming the folder and the ids it has."""
    path = Path(reference)
    if path.suffix == ".toml" or path.exists():
        return path
    path = policies_dir / f"{reference}.toml"
    if path.exists():
        return path
    known = sorted(p.stem for p in policies_dir.glob("*.toml")) if policies_dir.is_dir() else []
    there = f"the ids there: {', '.join(known)}" if known else "it has none"
    if not policies_dir.is_dir():
        there = "no such folder"
    raise UserError([Problem(str(policies_dir), "", f"no policy “{reference}” ({there}; or give the .toml file)")])


def debugging() -> bool:
    """Whether ``--debug`` was given (on the group: ``mentor-agent --debug COMMAND``)."""
    context = click.get_current_context(silent=True)
    return bool(context is not None and context.find_root().params.get("debug"))


def handle(error: Exception) -> NoReturn:
    """Print ``error`` as the user should see it and exit with its status (re-raise it with ``--debug``)."""
    if isinstance(error, _CLICK_OWN) or debugging():
        raise error
    if isinstance(error, AgentError):
        print_problems(error)
        sys.exit(error.exit_code)
    text = str(error).strip().splitlines()
    detail = f": {text[0]}" if text else ""
    click.echo(
        f"error: unexpected {type(error).__name__}{detail} (run again with `mentor-agent --debug ...` to see where)",
        err=True,
    )
    sys.exit(EX_SOFTWARE)


def friendly(command: F) -> F:
    """The one handler, for one command: known failures as one line and their exit status, no traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except Exception as error:  # the one place every failure ends up
            handle(error)

    return wrapper  # type: ignore[return-value]


class AgentGroup(click.Group):
    """The command group: every command, including those registered later, runs inside the handler.

    Commands named with :meth:`add_lazy` are imported only when asked for (or listed by ``--help``): ``run`` does
    not pay for the sign-in, discovery and demo libraries that ``setup``, ``login`` and ``demo`` need."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, str] = {}  # command name -> "module:register function" that adds it (and its siblings)

    def add_lazy(self, names: tuple[str, ...], register: str) -> None:
        for name in names:
            self.lazy[name] = register

    def _load(self, name: str) -> None:
        import importlib

        module, function = self.lazy[name].split(":")
        for sibling in [key for key, value in self.lazy.items() if value == self.lazy[name]]:
            del self.lazy[sibling]
        getattr(importlib.import_module(module), function)(self)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self._load(cmd_name)
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as error:
            handle(error)
