"""What every command shares: user errors printed as advice, and the exit statuses."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from agent.errors import UserError

F = TypeVar("F", bound=Callable[..., Any])
EX_USER = 1     # a mistake in what was asked (a file, an argument)
EX_CONFIG = 78  # sysexits.h: the daemon's configuration or a policy is wrong; the unit does not restart on it


def print_problems(error: UserError) -> None:
    for problem in error.problems:
        click.echo(f"error: {str(problem).lstrip(': ')}", err=True)


def friendly(command: F) -> F:
    """Turn UserError into a list of problems on stderr and exit status 1, without a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except UserError as error:
            print_problems(error)
            sys.exit(EX_USER)

    return wrapper  # type: ignore[return-value]
