"""Questions that are also flags: every answer `mentor-agent setup` asks for can be given on the command line.

Without a terminal, or with ``--yes``, nothing is asked: a question with a default takes it, one without fails
with a message that names the flag to give.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NoReturn

import click

from agent.errors import Problem, UserError

Check = Callable[[str], str | None]  # the problem with an answer, or None


class Asker:
    def __init__(self, interactive: bool, say: Callable[[str], None] = click.echo) -> None:
        self.interactive = interactive
        self._say = say

    def say(self, text: str) -> None:
        self._say(text)

    @staticmethod
    def fail(flag: str, message: str) -> NoReturn:
        raise UserError([Problem(file="", key=flag, message=message)])

    def _missing(self, flag: str, question: str) -> NoReturn:
        self.fail(flag, f"needed when setup cannot ask ({question.rstrip('?')}); give it as {flag} ...")

    def text(self, flag: str, given: str | None, question: str, default: str | None, check: Check | None = None) -> str:
        if given is not None:
            problem = check(given) if check else None
            if problem:
                self.fail(flag, problem)
            return given
        if not self.interactive:
            if default is None:
                self._missing(flag, question)
            return default
        while True:
            answer = str(click.prompt(question, default=default, show_default=default is not None)).strip()
            problem = check(answer) if check else None
            if not problem:
                return answer
            click.echo(f"  {problem}")

    def number(
        self,
        flag: str,
        given: int | None,
        question: str,
        default: int,
        minimum: int = 1,
        bound: str = "",
        why: str = "",
    ) -> int:
        """A whole number, at least ``minimum`` (``bound``: the flag whose answer that minimum is; ``why``: the
        reason, said in a terminal when a smaller one is typed)."""
        least = f"{bound} ({minimum})" if bound else str(minimum)
        if given is not None:
            if given >= minimum:
                return given
            if not self.interactive:
                self.fail(flag, f"must be at least {least}")
            # The minimum came from an answer typed just now: asked again, saying why, rather than failing.
            click.echo(f"  {flag} {given}: must be at least {least}{': ' + why if why else ''}")
            default = max(default, minimum)
        if not self.interactive:
            if default < minimum:
                self.fail(flag, f"must be at least {least}")
            return default
        while True:
            answer = int(click.prompt(question, default=default, type=click.IntRange(min=1)))
            if answer >= minimum:
                return answer
            click.echo(f"  must be at least {minimum}{': ' + why if why else ''}")

    def choice(self, flag: str, given: str | None, question: str, choices: Sequence[str], default: str) -> str:
        if given is not None:
            if given not in choices:
                self.fail(flag, f"{given!r} is none of: {', '.join(choices)}")
            return given
        if not self.interactive:
            return default
        return str(click.prompt(question, default=default, type=click.Choice(list(choices))))

    def confirm(self, flag: str, given: bool | None, question: str, default: bool) -> bool:
        if given is not None:
            return given
        if not self.interactive:
            return default
        return bool(click.confirm(question, default=default))

    def values(
        self,
        flag: str,
        given: Sequence[str],
        question: str,
        default: Sequence[str] | None,
        check: Check | None = None,
        separator: str = ",",
    ) -> tuple[str, ...]:
        """Several answers: the flag given several times, or one line with ``separator`` between them."""
        if given:
            for value in given:
                problem = check(value) if check else None
                if problem:
                    self.fail(flag, problem)
            return tuple(given)
        joined = f"{separator} ".join(default) if default else None

        def each(line: str) -> str | None:
            parts = [part.strip() for part in line.split(separator) if part.strip()]
            if not parts:
                return "give at least one"
            return next((p for p in map(check, parts) if p), None) if check else None

        line = self.text(flag, None, question, joined, each)
        return tuple(part.strip() for part in line.split(separator) if part.strip())

    def secret(self, flag: str, question: str) -> str:
        if not self.interactive:
            self._missing(flag, question)
        while True:
            answer = str(click.prompt(question, hide_input=True, default="", show_default=False)).strip()
            if answer:
                return answer
            click.echo("  (nothing typed)")
