"""Compiled bytecode for the daemons and commands the tests and benchmarks start.

Where ``PYTHONDONTWRITEBYTECODE`` is set (as on the development machines), every ``python -m agent ...`` that a
test starts compiled the package from source again: about 0.4 s of CPU before the daemon did anything, in each
of the suite's hundreds of daemon starts, and in the benchmarks' start-up figures (an installed package has its
bytecode). :func:`use_compiled_agent` writes ``agent/``'s bytecode once, into the ``__pycache__`` folders Python
reads it from (git ignores them); Python checks each file's size and modification time, so an edited module is
compiled again.
"""

from __future__ import annotations

import compileall
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def use_compiled_agent() -> None:
    """Write the bytecode of every module in ``agent/`` that has none or an outdated one."""
    compileall.compile_dir(ROOT / "agent", quiet=1)
