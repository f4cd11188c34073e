"""``mentor-agent setup --systemd``: the user unit with the right ExecStart for how the agent was installed.

The unit is the project's own (``systemd/mentor-agent.service``, shipped as ``agent/examples/``), with three
lines made true for this machine: ExecStart (the ``mentor-agent`` of this venv or pipx venv, else this Python
with ``-m agent``; ``--config`` when the config is not the default one), and the state directory the sandbox
lets it write. Where a user manager runs (a user bus), it is enabled and started; elsewhere the commands are
printed.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path

import agent
from agent.config.settings import default_config_path, xdg_dir
from agent.errors import Problem, UserError

NAME = "mentor-agent.service"
DEFAULT_STATE = "%h/.local/state/mentor-agent"


def _quoted(word: str) -> str:
    return f'"{word}"' if re.search(r'[\s"\\]', word) else word  # systemd's own quoting of one word


def command(python: str | None = None) -> list[str]:
    """How to start ``mentor-agent`` as installed here: its script in this (pipx) venv, else ``python -m agent``."""
    python = python or sys.executable
    script = Path(python).parent / "mentor-agent"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [python, "-m", "agent"]


def source_tree() -> Path | None:
    """The checkout the agent runs from when it is not installed (found through PYTHONPATH), else None."""
    package = Path(agent.__file__).resolve().parent
    installed = {Path(sysconfig.get_paths()[key]).resolve() for key in ("purelib", "platlib")}
    return None if package.parent in installed else package.parent


def unit_text(config: Path, state_dir: Path, *, python: str | None = None) -> str:
    text = (resources.files("agent") / "examples" / NAME).read_text(encoding="utf-8")
    argv = [*command(python), "run"]
    if config.resolve() != default_config_path().resolve():
        argv += ["--config", str(config.resolve())]
    start = " ".join(_quoted(word) for word in argv)
    text, found = re.subn(r"(?m)^ExecStart=.*$", lambda _: f"ExecStart={start}", text)
    if found != 1:
        raise AssertionError("the packaged unit has no single ExecStart line")
    state = str(state_dir.resolve())
    home = str(Path.home())
    state = "%h" + state[len(home) :] if state.startswith(home + os.sep) else state
    text = text.replace(f"-p {DEFAULT_STATE}", f"-p {_quoted(state)}").replace(
        f"ReadWritePaths={DEFAULT_STATE}", f"ReadWritePaths={_quoted(state)}"
    )
    tree = source_tree()
    if tree is not None:  # not installed: the unit must find the package where this run found it
        text = text.replace("Environment=PYTHONUNBUFFERED=1", f"Environment=PYTHONUNBUFFERED=1 PYTHONPATH={tree}")
    return text


def unit_path() -> Path:
    return xdg_dir("XDG_CONFIG_HOME", ".config").parent / "systemd" / "user" / NAME


def has_user_manager(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``systemctl --user`` can reach a user manager: systemctl is there and the user bus exists."""
    environ = os.environ if environ is None else environ
    runtime = environ.get("XDG_RUNTIME_DIR", "")
    return shutil.which("systemctl") is not None and bool(runtime) and Path(runtime, "bus").exists()


COMMANDS = ("systemctl --user daemon-reload", "systemctl --user enable --now mentor-agent")


def install(
    config: Path,
    state_dir: Path,
    *,
    say: Callable[[str], None],
    confirm: Callable[[str], bool],
    show_diff: Callable[[str, str, str], str],
) -> Path:
    """Write the unit (showing what changes and asking before replacing a different one), then enable it."""
    path = unit_path()
    new = unit_text(config, state_dir)
    old = path.read_text(encoding="utf-8") if path.exists() else None
    if old == new:
        say(f"{path}: unchanged")
    else:
        if old is not None:
            say(show_diff(old, new, str(path)))
            if not confirm(f"Replace {path}?"):
                raise UserError([Problem(file=str(path), key="", message="left as it was (run again with --force)")])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(new, encoding="utf-8")
        say(f"wrote {path}")
    if not has_user_manager():
        say("No systemd user manager here (no user bus); start it with:")
        for line in COMMANDS:
            say(f"  {line}")
        say("  journalctl --user -u mentor-agent -f")
        return path
    for line in COMMANDS:
        done = subprocess.run(shlex.split(line), capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            detail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[0]
            raise UserError([Problem(file=str(path), key="", message=f"`{line}` failed: {detail}")])
        say(f"ran: {line}")
    say("mentor-agent runs now; follow it with: journalctl --user -u mentor-agent -f")
    return path
