"""agent.mail.pulse on a socket pair: a command stuck on a trickle is ended at once and fails as too slow; a slow
stream or a slow upload that moves is left alone; a connection being tried (no socket yet) is not judged."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from agent.mail.pulse import Pulse
from agent.mail.session import MailboxError
from agent.mail.stalls import TooSlow, paced


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, ours = socket.socketpair()
    ours.settimeout(5.0)  # the socket's own per-read timeout: never reached by a trickle
    yield server, ours
    for file in OPENED:  # a reading end keeps its socket open past close(): closed first
        file.close()
    OPENED.clear()
    server.close()
    ours.close()


OPENED: list[Any] = []


class Imap:
    """What a Pulse uses of imaplib's IMAP4: its reading end, its socket and its ``send``."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = sock.makefile("rb")
        OPENED.append(self.file)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)


def attached(sock: socket.socket) -> tuple[Pulse, Any]:
    imap = Imap(sock)
    pulse = Pulse()
    pulse.attach(SimpleNamespace(_imap=imap))
    return pulse, imap


def feed(server: socket.socket, pieces: list[bytes], gap: float) -> threading.Thread:
    def run() -> None:
        for piece in pieces:
            try:
                server.sendall(piece)
            except OSError:
                return
            time.sleep(gap)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def read_line(imap: Any) -> bytes:
    try:
        line: bytes = imap.file.readline()
    except OSError as error:
        raise MailboxError(f"FETCH: {error}") from error
    if not line:
        raise MailboxError("FETCH: socket error: EOF")
    return line


def test_a_command_stuck_on_a_trickle_is_ended_and_fails_as_too_slow(pair: tuple[socket.socket, socket.socket]) -> None:
    server, ours = pair
    pulse, imap = attached(ours)
    feed(server, [b"*"] * 400, gap=0.02)  # a byte every 20 ms: never silent for the socket's 5 s

    async def run() -> float:
        began = time.monotonic()
        with pytest.raises(
            TooSlow, match=r"bytes came and went in 0.[4-6][0-9]* s while waiting on the server \(a line\)"
        ):
            await paced(pulse, asyncio.to_thread(read_line, imap), window=0.4, what="a line")
        return time.monotonic() - began

    took = asyncio.run(run())
    assert 0.4 <= took < 1.5, took  # ended within a quarter window of the window, not after the 8 s of the trickle
    assert pulse.ended


def test_a_slow_stream_that_moves_is_left_alone(pair: tuple[socket.socket, socket.socket]) -> None:
    """A literal longer than the window, coming steadily: counted as it comes, so never taken for a trickle."""
    server, ours = pair
    pulse, imap = attached(ours)
    size = 40 * 4096
    feed(server, [b"x" * 4096] * 40, gap=0.03)  # ~1.2 s for one read, the window 0.3 s

    async def run() -> bytes:
        data: bytes = await paced(pulse, asyncio.to_thread(imap.file.read, size), window=0.3)
        return data

    assert len(asyncio.run(run())) == size
    assert pulse.moved == size and not pulse.ended


def test_a_slow_upload_counts_as_it_goes(pair: tuple[socket.socket, socket.socket]) -> None:
    """An APPEND's literal going out while the server reads it slowly: counted a piece at a time."""
    server, ours = pair
    pulse, imap = attached(ours)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    size = 1024 * 1024
    taken = bytearray()

    def drain() -> None:
        while len(taken) < size:
            taken.extend(server.recv(65536))
            time.sleep(0.01)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()

    async def run() -> None:
        await paced(pulse, asyncio.to_thread(imap.send, b"y" * size), window=0.3)

    asyncio.run(run())
    reader.join(10)
    assert len(taken) == size and pulse.moved == size and not pulse.ended


def test_a_connection_being_tried_is_not_judged() -> None:
    """No socket held (a connect being tried, or the wait between tries): the socket's own timeouts bound those."""
    pulse = Pulse()

    async def run() -> str:
        def connect() -> str:
            time.sleep(0.5)
            return "connected"

        result: str = await paced(pulse, asyncio.to_thread(connect), window=0.1)
        return result

    assert asyncio.run(run()) == "connected" and not pulse.ended


def test_a_pulse_ended_while_its_connection_is_made_shuts_the_socket_it_is_given(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    _, ours = pair
    pulse = Pulse()
    pulse.end("too slow")
    pulse.hold(ours)  # the socket made after the end (its greeting trickled): shut at once
    assert ours.recv(100) == b"" and pulse.ended == "too slow"  # the end of the stream, not a wait for a greeting
    with pytest.raises(OSError):
        ours.sendall(b"a1 LOGIN")
