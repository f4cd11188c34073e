"""Real servers for tests: a Dovecot IMAP server and an aiosmtpd SMTP server, both on loopback only."""

from __future__ import annotations

import os
import socket
import time

# How much longer a wait for something that must happen may last (never how soon it may happen): 3 under
# pytest-xdist's parallel workers, where daemons start while five other workers use the CPU; 1 alone.
# MENTOR_AGENT_TEST_PATIENCE sets it.
PATIENCE = float(
    os.environ.get("MENTOR_AGENT_TEST_PATIENCE") or ("3" if os.environ.get("PYTEST_XDIST_WORKER") else "1")
)


_GIVEN: set[int] = set()  # the ports this process handed out: never twice


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (servers here need a concrete port, not 0), and not one
    handed out before in this process: the kernel may give a port just let go again at once, and two asked for in
    a row (Dovecot's plain and TLS listeners) were once the same ("duplicate listener")."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


def wait_for_port(port: int, timeout: float = 10.0) -> bool:
    """True once something accepts connections on 127.0.0.1:port, False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.02)
    return False
