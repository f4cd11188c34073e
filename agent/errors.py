"""Every failure the agent knows how to explain derives from :class:`AgentError`: one line (or a list of
problems) for the user and the exit status that goes with it. The CLI has one handler for all of them
(:func:`agent.cli.support.handle`); anything else is a bug, shown as one line and a hint to use ``--debug``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# sysexits.h
EX_USER = 1  # a mistake in what was asked (a file, an argument)
EX_UNAVAILABLE = 69  # a server could not be reached or failed; trying again later may work
EX_SOFTWARE = 70  # a bug: an error nobody foresaw
EX_CONFIG = 78  # the configuration (an account, a password, TLS) or a policy is wrong; restarting cannot fix it


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


class AgentError(Exception):
    """A failure the agent can describe to the user in a line or two, without a traceback."""

    exit_code = EX_USER

    def lines(self) -> list[str]:
        return str(self).splitlines() or [type(self).__name__]


class UserError(AgentError):
    """Raised for anything the user can fix; the CLI prints the problems and exits non-zero."""

    exit_code = EX_USER

    def __init__(self, problems: Iterable[Problem] | str) -> None:
        if isinstance(problems, str):
            self.problems: list[Problem] = [Problem(file="", key="", message=problems)]
        else:
            self.problems = list(problems)
        super().__init__("\n".join(str(p).lstrip(": ") for p in self.problems))

    def lines(self) -> list[str]:
        return [str(p).lstrip(": ") for p in self.problems]


class ConnectionProblem(AgentError):
    """A mail server could not be reached, or failed while we talked to it: worth another try later."""

    exit_code = EX_UNAVAILABLE


class LoginRefused(ConnectionProblem):
    """The server refused the login (password, token, account). Trying again soon cannot help and may lock
    the account: the daemon exits 78 at start and backs off to long intervals while running."""

    exit_code = EX_CONFIG


class TlsProblem(ConnectionProblem):
    """TLS cannot be set up as configured: a certificate that does not verify, TLS spoken to a plain port
    or plain text to a TLS port. Configuration: exit 78 at start."""

    exit_code = EX_CONFIG


def is_permanent(error: BaseException) -> bool:
    """A login refusal or a TLS problem: retrying at once will not help."""
    return isinstance(error, LoginRefused | TlsProblem)


class SignInNeeded(LoginRefused):
    """The stored sign-in (an OAuth2 grant) has expired or was revoked, or there is none: only the student can
    sign in again (``mentor-agent login``). The daemon says so once and waits for a new grant — no retry loop."""

    exit_code = EX_CONFIG

    def __init__(self, message: str, *, section: str = "") -> None:
        super().__init__(message)
        self.section = section


class SignInUnavailable(ConnectionProblem):
    """The sign-in server could not be reached or failed for now: worth another try later."""
