"""The IDLE watcher: a second IMAP connection that only IDLEs on one folder and says when something changed.

Polls with NOOP where the server has no IDLE. Synchronous (imapclient blocks): the daemon runs it in a thread.
"""

from __future__ import annotations

import contextlib
import imaplib
import select
import ssl
import time
from collections.abc import Sequence
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from imapclient.imapclient import _parse_untagged_response

from agent.config.settings import Imap
from agent.mail.session import Login, MailboxError, describe_error, ended, imap_errors, open_client
from agent.mail.uidsets import text_of

_CHANGES = {b"EXISTS", b"EXPUNGE", b"FETCH", b"RECENT", b"VANISHED"}


class Watcher:
    """A second connection that only IDLEs on one folder and says when something changed there.

    Call :meth:`start` (or just :meth:`wait`), then scan the folder with the Mailbox, then :meth:`wait`:
    IDLE is kept open between calls, so a change made while you were scanning is still reported.
    """

    def __init__(self, imap: Imap, login: Login, folder: str, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.imap = imap
        self.login = login
        self.folder = folder
        self.ssl_context = ssl_context
        self.use_idle = True  # tests set False to exercise polling
        self._client: IMAPClient | None = None
        self._idle_since: float | None = None

    def start(self) -> None:
        """Connect, select the folder and begin IDLE (if not already)."""
        if self._client is not None:
            return
        client = open_client(self.imap, self.login, self.ssl_context)
        self._client = client
        try:
            with imap_errors(f"SELECT {self.folder!r}"):
                client.select_folder(self.folder, readonly=True)
                self.use_idle = self.use_idle and client.has_capability("IDLE")
            if self.use_idle:
                self._idle()
        except BaseException:
            self.close()
            raise

    def wait(self, timeout: float) -> bool:
        """True as soon as the server reports a change in the folder; False after ``timeout`` seconds."""
        self.start()
        deadline = time.monotonic() + timeout
        try:
            return self._wait_idle(deadline) if self.use_idle else self._wait_poll(deadline)
        except MailboxError:
            self.close()
            raise
        except (IMAPClientError, imaplib.IMAP4.error, OSError, ValueError) as error:
            self.close()
            raise MailboxError(f"watching {self.folder!r}: {describe_error(error)}") from error

    def _idle(self) -> None:
        assert self._client is not None
        with imap_errors("IDLE"):
            self._client.idle()
        self._idle_since = time.monotonic()

    def _wait_idle(self, deadline: float) -> bool:
        client = self._client
        assert client is not None and self._idle_since is not None
        empty_reads = 0
        while True:
            now = time.monotonic()
            if now >= deadline:
                return False
            renew_at = self._idle_since + self.imap.idle_renew
            if now >= renew_at:
                _text, responses = client.idle_done()
                self._idle()
                if _changed(responses):
                    return True
                continue
            if _already_read(client, self.imap.timeout):
                # The server's report came with an earlier line ("+ idling" after a renewal, often in the same
                # packet) and waits in imaplib's buffer, where select() on the socket cannot see it.
                responses = _buffered_lines(client, self.imap.timeout)
            else:
                readable, _, _ = select.select([client.socket()], [], [], min(deadline, renew_at) - now)
                if not readable:
                    continue
                responses = client.idle_check(timeout=0)
            if not responses:
                # imapclient swallows EOF: a readable socket that yields nothing twice is a closed one.
                empty_reads += 1
                if empty_reads >= 2:
                    raise MailboxError(f"the server closed the IDLE connection on {self.folder!r}")
                time.sleep(0.01)
                continue
            empty_reads = 0
            byes = [r for r in responses if isinstance(r, tuple) and r[:1] == (b"BYE",)]
            if byes:
                said = " ".join(text_of(part) for part in byes[0][1:] if isinstance(part, bytes | str)).strip()
                raise ended(f"the server ended the IDLE connection on {self.folder!r}", said or "BYE")
            if _changed(responses):
                return True

    def _wait_poll(self, deadline: float) -> bool:
        client = self._client
        assert client is not None
        while True:
            with imap_errors("NOOP"):
                _text, responses = client.noop()
            if _changed(responses):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(self.imap.poll_interval, remaining))

    def close(self) -> None:
        client, self._client, self._idle_since = self._client, None, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            client.shutdown()


def _already_read(client: IMAPClient, timeout: float) -> bool:
    """Whether bytes from the server were already taken off the socket, by imaplib's buffered reader or by
    the TLS layer: ``select()`` does not see those, so waiting on the socket would wait for the next report."""
    sock = client.socket()
    if isinstance(sock, ssl.SSLSocket) and sock.pending() > 0:
        return True
    reader = client._imap.file
    sock.setblocking(False)
    try:
        return bool(reader.peek(1))  # from the buffer; if that is empty, one read that does not wait
    except (BlockingIOError, ssl.SSLWantReadError):
        return False
    finally:
        sock.settimeout(timeout)


def _buffered_lines(client: IMAPClient, timeout: float) -> list[Any]:
    """The untagged lines already read (and the rest of a line begun), parsed as ``idle_check`` parses them."""
    found: list[Any] = []
    while _already_read(client, timeout):
        found.append(_parse_untagged_response(client._imap._get_line()))
    return found


def _changed(responses: Sequence[Any]) -> bool:
    return any(isinstance(r, tuple) and len(r) >= 2 and r[1] in _CHANGES for r in responses)
