"""Where the command line starts (the ``mentor-agent`` script and ``python -m agent``): the commands' modules are
loaded with the cyclic garbage collector held (agent.cli.collector)."""

from __future__ import annotations

import os

from agent.cli.collector import collector_held


def main() -> None:
    """The ``mentor-agent`` command."""
    # The agent uses no pydantic plugin; looking for them reads every installed package's metadata at the first
    # model (5 ms here, more beside a big system Python). Set by the user, the variable is kept.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    with collector_held():
        from agent.cli.main import main as commands
    commands()
