"""A connection's pulse: the bytes it moves, counted as they come and go, and a way to end it from another thread.

The socket's own timeout (``[imap].timeout``) is per read: a server, or a link, that sends a byte every few seconds is
never silent that long, and a command waiting on it waited for ever (nothing sent, nothing told, even once the server
was well again). :func:`agent.mail.stalls.paced` watches a command by its connection's pulse and ends a connection that
moves less than :data:`LEAST` bytes, both ways, in two of those timeouts (:meth:`Pulse.end`: the blocked read returns
at once). A kilobyte a minute is far below any link mail works over (a phone's weakest data is some kilobytes a
second); a command the server answers only after a minute of silence already fails on the socket's own timeout. What
is counted comes in pieces: what the socket hands over (with TLS, a record of up to 16 kB), what is written 4 kB at a
time, so a link under some 300 bytes a second may be cut too.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

from imapclient import IMAPClient, imap4, tls

LEAST = 1024  # bytes a connection must move in a window while a command waits on it
SEND_PIECE = 4 * 1024  # what is written is counted this much at a time (each piece has the socket's whole timeout)


class Pulse:
    """What one IMAP connection moved, counted where imaplib reads and writes; :meth:`end` closes it from another
    thread. Its socket is held from its making (a greeting that trickles is ended too); :meth:`attach` counts the
    logged-in client, again after STARTTLS (imapclient makes a new reading end)."""

    def __init__(self) -> None:
        self.moved = 0
        self.ended = ""  # why it was ended, once it was
        self._socket: socket.socket | None = None

    @property
    def open(self) -> bool:
        """Whether it holds a connection (not while one is being tried, nor between tries)."""
        return self._socket is not None

    def begin(self) -> None:
        """A new try at connecting (the last one's socket is gone). Once ended, a pulse stays ended: the caller
        gives up (:func:`agent.mail.session.open_client` raises rather than try again)."""
        self._socket = None

    def hold(self, sock: socket.socket) -> None:
        self._socket = sock
        if self.ended:  # ended while it was being opened
            self._shut()

    def attach(self, client: IMAPClient) -> None:
        """Count what ``client`` reads as it comes off the socket (a line or a literal still coming counts), and what
        it writes a piece at a time (an APPEND's literal going out slowly counts)."""
        imap = client._imap
        raw = imap.file.raw  # imaplib's reading end: a BufferedReader over the socket's SocketIO
        if "readinto" not in vars(raw):
            readinto = raw.readinto

            def counted_readinto(buffer: Any) -> int | None:
                count: int | None = readinto(buffer)
                self.moved += count or 0
                return count

            raw.readinto = counted_readinto
        if "send" not in vars(imap):

            def counted_send(data: bytes) -> None:
                send = type(imap).send  # imaplib's, on the socket it has now (STARTTLS makes a new one)
                view = memoryview(data)
                for start in range(0, len(view), SEND_PIECE):
                    piece = view[start : start + SEND_PIECE]
                    send(imap, bytes(piece) if len(view) > SEND_PIECE else data)
                    self.moved += len(piece)

            imap.send = counted_send
        self.hold(imap.sock)

    def end(self, why: str) -> None:
        """Close the connection under the command waiting on it (the read it is blocked in returns at once)."""
        self.ended = why
        self._shut()

    def _shut(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(self._socket, socket.SHUT_RDWR)  # the raw socket's, under any TLS layer


class PacedClient(IMAPClient):  # type: ignore[misc]  # imapclient is untyped
    """imapclient's client, its socket held by ``pulse`` from the moment it is made (before the greeting is read)."""

    def __init__(self, *args: Any, pulse: Pulse, **kwargs: Any) -> None:
        self._pulse = pulse
        super().__init__(*args, **kwargs)
        pulse.attach(self)

    def _create_IMAP4(self) -> Any:
        pulse, timeout = self._pulse, getattr(self._timeout, "connect", None)
        base: Any = tls.IMAP4_TLS if self.ssl else imap4.IMAP4WithTimeout

        class Held(base):  # type: ignore[misc]
            def _create_socket(self, timeout: float | None = None) -> socket.socket:
                sock: socket.socket = super()._create_socket(timeout)
                pulse.hold(sock)
                return sock

        if self.ssl:
            return Held(self.host, self.port, self.ssl_context, timeout)
        return Held(self.host, self.port, timeout)
