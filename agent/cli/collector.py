"""Modules loaded with the cyclic garbage collector held, then frozen.

Loading the agent makes tens of thousands of objects that live as long as the process (classes, functions,
pydantic's validators), and the collector, left on, walks them again and again while they are made: about a tenth
of the daemon's start. They are made without it, then frozen (``gc.freeze``): the collector never walks them again,
which also spares the idle daemon that work. Nothing that is collected later is made while it is held.
"""

from __future__ import annotations

import gc
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
