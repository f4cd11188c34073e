"""Named points at which fault tests can kill the daemon with SIGKILL, to prove crash recovery.

Inert unless ``MENTOR_AGENT_CRASH_AT`` names the point (a test sets it for a daemon it started); then the
process kills itself there, exactly as ``kill -9`` would, without any cleanup.
"""

from __future__ import annotations

import os
import signal

VARIABLE = "MENTOR_AGENT_CRASH_AT"


def crash_point(name: str) -> None:
    if os.environ.get(VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)
