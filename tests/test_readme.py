"""Every example in the README and in the guide pages under docs/ runs as written.

The ```sh and ```console blocks are read from README.md and docs/*.md; each block is one test. Its ``mentor-agent`` commands
that need no account (``check`` of files, ``simulate``, ``slots``, ``propose --dry-run``, …) run in a copy of
the repository with a fresh $HOME, exactly as written (``mentor-agent`` is this checkout), and ``mkdir``/``cp``
set-up lines run there too. Where a console block shows output, the output must be that, line for line; an
``error:`` output of ``check`` is reproduced by making the mistake it names. What needs a live account, a
running daemon, an installer or a service manager is skipped, and the skip says which and why
(``NEEDS_ACCOUNT``, ``NOT_RUN``). Add an example and it is checked: no list of examples to keep up to date.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agent.config.settings import load_settings
from agent.rules.policy import load_policies

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]  # the front door and every guide page
FENCE = re.compile(r"^```(sh|console)[ \t]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
# mentor-agent sub-commands that talk to a mail server or read a running daemon's ledger.
NEEDS_ACCOUNT = {
    "run": "runs the daemon on your mailbox",
    "status": "reads a running daemon's ledger",
    "release": "flags a message in your mailbox",
    "cancel": "moves a message in your mailbox",
    "demo": "starts its own servers for about 20 s (tests/test_demo.py runs it)",
    "login": "signs in to your Microsoft or Google account (tests/test_sign_in.py runs it against a fake server)",
    "setup": "logs in to your mail servers and writes your config (tests/test_setup*.py run it against test servers)",
}
# Other programs in the examples: installers, test runners, service managers. Only file set-up runs here.
RUNS = {"mentor-agent", "mkdir", "cp"}
NOT_RUN = "installs software, runs the test suite or manages a service"
UNKNOWN_KEY = re.compile(
    r"^error: (?P<file>[^:]+):(?P<line>\d+): (?:\w+\.)*(?P<bad>\w+): unknown key "
    r"\(did you mean '(?P<good>\w+)'\?\)$"
)


@dataclass
class Step:
    command: str
    line: int
    expected: list[str] | None = None  # console output shown in the README, if any


@dataclass
class Block:
    kind: str
    line: int
    steps: list[Step] = field(default_factory=list)
    page: str = "README.md"

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}"


def blocks(text: str, page: str = "README.md") -> list[Block]:
    found = []
    for match in FENCE.finditer(text):
        first = text.count("\n", 0, match.start(2)) + 1
        block = Block(match[1], first - 1, page=page)
        lines = match[2].splitlines()
        if match[1] == "sh":
            for offset, line in enumerate(lines):
                block.steps += [Step(command, first + offset) for command in shell_commands(line)]
        else:
            for offset, line in enumerate(lines):
                if line.startswith("$ "):
                    block.steps.append(Step(line[2:].strip(), first + offset, []))
                elif block.steps and block.steps[-1].expected is not None:
                    block.steps[-1].expected.append(line.rstrip())
        found.append(block)
    return found


def shell_commands(line: str) -> list[str]:
    """The commands of one shell line, as written: split at ``&&``, the trailing ``# comment`` dropped."""
    commands, current, quote = [], "", ""
    index = 0
    while index < len(line):
        char = line[index]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (not current or current[-1].isspace()):
            break
        elif line.startswith("&&", index):
            commands.append(current)
            current, index = "", index + 2
            continue
        current += char
        index += 1
    return [command.strip() for command in [*commands, current] if command.strip()]


BLOCKS = [block for page in PAGES for block in blocks(page.read_text(encoding="utf-8"), str(page.relative_to(ROOT)))]


def skip_reason(command: str) -> str | None:
    """Why a command is not run here, or None when it runs as written."""
    words = shlex.split(command)
    if not words or words[0] not in RUNS:
        return f"{words[0] if words else command!r}: {NOT_RUN}"
    if words[0] != "mentor-agent" or len(words) < 2:
        return None
    sub, args = words[1], words[2:]
    if sub in NEEDS_ACCOUNT:
        return f"mentor-agent {sub}: {NEEDS_ACCOUNT[sub]}"
    if sub == "agree" and "--print" not in args:
        return "mentor-agent agree without --print: puts the proposal into your mailbox, or edits a policy"
    if sub == "propose" and "--dry-run" not in args:
        return "mentor-agent propose without --dry-run: puts invitations into your mailbox"
    if sub == "check" and ("--connect" in args or not [a for a in args if not a.startswith("-")]):
        return "mentor-agent check without files: judges your own config and credentials"
    return None


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A copy of the repository to run in, a fresh $HOME, and ``mentor-agent`` on PATH meaning this checkout."""
    base = tmp_path_factory.mktemp("readme")
    work = base / "repo"
    shutil.copytree(
        ROOT,
        work,
        ignore=shutil.ignore_patterns(
            ".git",
            "__pycache__",
            "*.egg-info",
            ".mypy_cache",
            ".ruff_cache",
            ".pytest_cache",
            ".hypothesis",
            ".venv",
            ".coverage*",  # written by parallel workers while this copies
        ),
    )
    home, bin_dir = base / "home", base / "bin"
    home.mkdir()
    bin_dir.mkdir()
    wrapper = bin_dir / "mentor-agent"
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m agent "$@"\n')
    wrapper.chmod(0o755)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("XDG_", "MENTOR_AGENT_")) and key not in ("NO_COLOR", "JOURNAL_STREAM")
    }
    env.update(
        HOME=str(home),
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
        COLUMNS="200",
        TZ="UTC",
    )
    yield work, env


def run(command: str, work: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def check_step(step: Step, work: Path, env: dict[str, str]) -> str | None:
    """Run one step; what is wrong with it, or None."""
    expected = step.expected
    mistake = UNKNOWN_KEY.match(expected[0]) if expected else None
    target = work / mistake["file"] if mistake else None
    original = target.read_text(encoding="utf-8") if target else ""
    if mistake and target:  # the README shows check's answer to a misspelt key: make that very mistake
        lines = original.splitlines(keepends=True)
        number = int(mistake["line"]) - 1
        if number >= len(lines) or not re.match(rf"\s*{mistake['good']}\s*=", lines[number]):
            return f"line {step.line}: {mistake['file']}:{mistake['line']} holds no {mistake['good']} key to misspell"
        lines[number] = lines[number].replace(mistake["good"], mistake["bad"], 1)
        target.write_text("".join(lines), encoding="utf-8")
    try:
        done = run(step.command, work, env)
    finally:
        if target:
            target.write_text(original, encoding="utf-8")
    output = [line.rstrip() for line in (done.stdout + done.stderr).splitlines()]
    failing = bool(expected and expected[0].startswith("error:"))
    if (done.returncode != 0) != failing:
        return f"line {step.line}: `{step.command}` exited {done.returncode}:\n{done.stdout}{done.stderr}"
    if expected is not None:
        while expected and not expected[-1]:
            expected = expected[:-1]
        if output != expected:
            shown = "\n".join(expected)
            return f"line {step.line}: `{step.command}` printed\n" + "\n".join(output) + f"\nnot, as shown,\n{shown}"
    return None


@pytest.mark.parametrize("block", BLOCKS, ids=[b.name for b in BLOCKS])
def test_readme_example_runs_as_written(block: Block, sandbox: tuple[Path, dict[str, str]]) -> None:
    work, env = sandbox
    skipped = []
    problems = []
    for step in block.steps:
        reason = skip_reason(step.command)
        if reason is not None:
            skipped.append(f"{block.page}:{step.line}: {reason}")
            continue
        problem = check_step(step, work, env)
        if problem:
            problems.append(problem)
    assert not problems, "\n\n".join(problems)
    if len(skipped) == len(block.steps):
        pytest.skip("; ".join(skipped) or "no commands")


def test_the_readme_has_examples_that_run() -> None:
    runnable = [s.command for b in BLOCKS for s in b.steps if skip_reason(s.command) is None]
    assert any(c.startswith("mentor-agent simulate") for c in runnable)
    assert any(c.startswith("mentor-agent slots") for c in runnable)
    assert any(c.startswith("mentor-agent propose") and "--dry-run" in c for c in runnable)
    assert any(c.startswith("mentor-agent agree") and "--print" in c for c in runnable)
    assert any(s.expected for b in BLOCKS for s in b.steps if skip_reason(s.command) is None)


def test_the_set_up_in_the_readme_finds_its_policies(sandbox: tuple[Path, dict[str, str]]) -> None:
    """The set-up copies config/example.toml and a policy into ~/.config/mentor-agent: the config must point at
    that policy folder (``policies_dir = "../policies"`` pointed at ~/.config/policies)."""
    work, env = sandbox
    (setup,) = [b for b in BLOCKS if any(s.command.startswith("cp config/example.toml") for s in b.steps)]
    for step in setup.steps:
        if shlex.split(step.command)[0] in ("mkdir", "cp"):
            done = run(step.command, work, env)
            assert done.returncode == 0, done.stderr
    home = Path(env["HOME"])
    settings = load_settings(home / ".config" / "mentor-agent" / "config.toml")
    assert settings.policies_dir == home / ".config" / "mentor-agent" / "policies"
    assert [p.name for p in load_policies(settings.policies_dir)] == ["Dr. Ana Rivera"]


def test_the_readme_is_a_front_door() -> None:
    """At most 200 lines, opening with the two commands (the demo, the tests); every guide page it names exists."""
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 200
    first = BLOCKS[0]
    assert first.page == "README.md" and first.line <= 4
    commands = [step.command for step in first.steps]
    assert any("mentor-agent demo" in command for command in commands)
    assert any(command.startswith("python3 -m pytest") for command in commands)
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / link).is_file(), link
