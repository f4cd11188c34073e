"""Where the command line starts: its modules are loaded with the cyclic garbage collector held.

Loading the agent makes tens of thousands of objects that live as long as the process (classes, functions,
pydantic's validators), and the collector, left on, walks them again and again while they are made: about a tenth
of the daemon's start. They are made without it, then frozen (``gc.freeze``): the collector never walks them again,
which also spares the idle daemon that work. Nothing that is collected later is made while it is held.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_held() -> Iterator[None]:
    """Run the body (imports) without the cyclic collector, then freeze what it made and set the collector going."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def main() -> None:
    """The ``mentor-agent`` command."""
    # The agent uses no pydantic plugin; looking for them reads every installed package's metadata at the first
    # model (5 ms here, more beside a big system Python). Set by the user, the variable is kept.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    with collector_held():
        from agent.cli.main import main as commands
    commands()
