"""A minimal IMAP proxy in front of the test Dovecot that rewrites the server's lines, one rule per quirk.

Only what the daemon-side tests of issue 12 need before the full provider proxy lands (tests/servers/
provider_proxy.py, by another engineer): it passes the client's bytes through untouched and rewrites each
line the server sends with ``rewrite(line) -> line``. Loopback only.

    proxy = RewritingProxy(dovecot_port, reverse_copyuid)
    proxy.start(); ... proxy.port ...; proxy.stop()

``pace(session, line) -> seconds``: a line the server sends on the ``session``-th connection (from 1) is passed on
a byte at a time, that many seconds apart (0: at once): a server, or a link, that trickles. ``rate``: bytes a second
from the server, on every connection: a slow link that works.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from tests.servers import free_port, wait_for_port

HOST = "127.0.0.1"
_COPYUID = re.compile(rb"\[COPYUID (\d+) ([\d:,]+) ([\d:,]+)\]")


def _expand(text: bytes) -> list[int]:
    found: list[int] = []
    for part in text.decode().split(","):
        low, _, high = part.partition(":")
        a, b = int(low), int(high or low)
        found.extend(range(a, b + 1) if a <= b else range(a, b - 1, -1))
    return found


def reverse_copyuid(line: bytes) -> bytes:
    """Yahoo (MailKit #1405): a MOVE/COPY of several messages answers COPYUID with the destination UIDs in
    another order than the sources. Here: the destinations listed one by one, in reverse."""

    def swap(match: re.Match[bytes]) -> bytes:
        sources = _expand(match.group(2))
        targets = _expand(match.group(3))
        listed = ",".join(str(uid) for uid in sources).encode()
        backwards = ",".join(str(uid) for uid in reversed(targets)).encode()
        return b"[COPYUID " + match.group(1) + b" " + listed + b" " + backwards + b"]"

    return _COPYUID.sub(swap, line)


class RewritingProxy:
    def __init__(
        self,
        upstream_port: int,
        rewrite: Callable[[bytes], bytes] = lambda line: line,
        pace: Callable[[int, bytes], float] | None = None,
        rate: float | None = None,
    ) -> None:
        self.upstream_port = upstream_port
        self.rewrite = rewrite
        self.pace = pace
        self.rate = rate
        self.sessions = 0  # connections taken so far
        self.port = free_port()
        self.rewritten = 0  # lines the rule changed
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        # Every client connection's writer, from the moment it is accepted (before its session task first runs): a
        # stop closes them all, so that none is left to the garbage collector after the loop closed (its
        # ResourceWarning then failed whichever later test it was collected in)
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> None:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(asyncio.start_server(self._accepted, HOST, self.port, limit=1 << 26))
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="rewriting proxy", daemon=True)
        self._thread.start()
        ready.wait(10)
        assert wait_for_port(self.port)

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is None or server is None:
            return

        async def shut() -> None:
            server.close()
            for task in list(self._sessions):
                task.cancel()
            await asyncio.gather(*self._sessions, return_exceptions=True)
            for writer in list(self._writers):
                writer.close()
                with contextlib.suppress(OSError, asyncio.CancelledError):
                    await writer.wait_closed()
            await server.wait_closed()
            loop.stop()

        loop.call_soon_threadsafe(lambda: loop.create_task(shut()))
        if self._thread is not None:
            self._thread.join(10)

    def _accepted(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> Coroutine[Any, Any, None]:
        """Called as the connection is accepted (asyncio makes a task of what it returns): its writer is known now."""
        self._writers.add(client_writer)
        return self._serve(client_reader, client_writer)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        try:
            await self._relay(client_reader, client_writer)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._sessions.discard(task)
            self._writers.discard(client_writer)

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(HOST, self.upstream_port, limit=1 << 26)
        except OSError:
            client_writer.close()
            return
        self.sessions += 1
        session = self.sessions

        async def upstream() -> None:  # client -> server, untouched
            while data := await client_reader.read(65536):
                server_writer.write(data)
                await server_writer.drain()
            server_writer.close()

        async def downstream() -> None:  # server -> client, line by line through the rule
            owed = 0.0  # seconds of ``rate`` not slept yet
            while line := await server_reader.readline():
                changed = self.rewrite(line)
                if changed != line:
                    self.rewritten += 1
                delay = self.pace(session, changed) if self.pace is not None else 0.0
                for piece in [changed[i : i + 1] for i in range(len(changed))] if delay else [changed]:
                    client_writer.write(piece)
                    await client_writer.drain()
                    if delay:
                        await asyncio.sleep(delay)
                owed += len(changed) / self.rate if self.rate else 0.0
                if owed >= 0.01:  # slept in tens of milliseconds: a line's worth is below the loop's resolution
                    await asyncio.sleep(owed)
                    owed = 0.0
            client_writer.close()

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for writer in (client_writer, server_writer):
                writer.close()
                with contextlib.suppress(OSError, asyncio.CancelledError):
                    await writer.wait_closed()
