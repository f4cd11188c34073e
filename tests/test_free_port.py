"""The test servers' ports: never the same one twice in a process (two listeners of one Dovecot once got the same
port and Dovecot refused to start: "duplicate listener")."""

from __future__ import annotations

from tests.servers import free_port


def test_a_port_is_never_handed_out_twice() -> None:
    ports = [free_port() for _ in range(1000)]
    assert len(set(ports)) == len(ports)
