"""The few sd_notify(3) messages the daemon sends its service manager, without libsystemd.

Every function is a no-op returning False when ``$NOTIFY_SOCKET`` is absent (a terminal, a test, a
service manager other than systemd), so the daemon calls them unconditionally.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


def _address(value: str) -> str:
    # "@name" is a socket in Linux's abstract namespace, spelt with a leading NUL byte.
    return "\0" + value[1:] if value.startswith("@") else value


def notify(state: str) -> bool:
    """Send ``state`` (newline-separated ``KEY=value`` lines) to ``$NOTIFY_SOCKET``; True when it was sent."""
    target = os.environ.get("NOTIFY_SOCKET", "")
    if not target:
        return False
    if not target.startswith(("/", "@")):
        log.warning("NOTIFY_SOCKET=%r is not a unix socket path; not notifying the service manager", target)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(_address(target))
            sock.sendall(state.encode("utf-8"))
    except OSError as error:
        log.warning("could not notify the service manager at %s: %s", target, error)
        return False
    return True


def ready() -> bool:
    """Start-up is over: with ``Type=notify`` the unit becomes active only now."""
    return notify("READY=1")


def extend_start(seconds: float) -> bool:
    """Start-up goes on for up to ``seconds`` more (a wait before READY): systemd's start timeout is pushed back
    rather than the unit killed and started again (EXTEND_TIMEOUT_USEC, systemd 236)."""
    return notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")


def reloading() -> bool:
    """A reload (SIGHUP) began; send ``ready()`` when it is done."""
    return notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")


def stopping() -> bool:
    return notify("STOPPING=1")


def watchdog() -> bool:
    """Tell systemd the daemon is alive; needed at least every ``watchdog_interval()`` seconds."""
    return notify("WATCHDOG=1")


def status(text: str) -> bool:
    """One line shown by ``systemctl --user status``."""
    return notify("STATUS=" + " ".join(text.split()))


def watchdog_interval() -> float | None:
    """How often to call ``watchdog()``, in seconds: half of ``$WATCHDOG_USEC``, as sd_watchdog_enabled(3)
    recommends. None when no watchdog is asked for, or when ``$WATCHDOG_PID`` names another process."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    if value <= 0:
        return None
    return value / 2 / 1_000_000
