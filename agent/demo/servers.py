"""The demo's mail servers, loopback only. The people who write and the terminal timeline are in
:mod:`agent.demo.scene`, the export of the mailbox the demo leaves in :mod:`agent.demo.export`.

* :class:`ImapServer` — pymap's in-memory ("dict") backend, served by pymap's own IMAP code on its own event
  loop in a thread. It offers IDLE, MOVE and UIDPLUS (no SPECIAL-USE: the demo names its Sent folder in its settings,
  no CONDSTORE: the agent claims messages by MOVE alone). Everything is lost when it stops, which is why the
  demo exports the folders first.
* :class:`SmtpSink` — aiosmtpd, accepting every message and keeping it, with the demo's clock reading at
  the moment it arrived. Nothing is relayed anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from argparse import Namespace
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import Any

HOST = "127.0.0.1"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


class DemoServerError(Exception):
    """A demo server could not start."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


class ImapServer:
    """pymap's in-memory IMAP server with one user, plain IMAP on 127.0.0.1 and a port chosen by the kernel."""

    def __init__(self, user: str, password: str) -> None:
        self.user = user
        self.password = password
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="demo IMAP server", daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise DemoServerError(f"the IMAP server did not start within {START_TIMEOUT:g} s")
        if self._error is not None:
            raise DemoServerError(f"the IMAP server did not start: {self._error}") from self._error

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                loop.call_soon_threadsafe(stop.set)
        self._thread.join(STOP_TIMEOUT)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:
            self._error = error
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        from proxyprotocol.reader import ProxyProtocolReader
        from pymap.backend.dict import DictBackend
        from pymap.imap import IMAPServer

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        args = Namespace(
            host=[HOST],
            port=0,
            debug=False,
            cert=None,
            key=None,
            tls=False,
            passlib_cfg=None,
            proxy_protocol=None,
            inherited_sockets=None,
            demo_data=False,
            demo_user=self.user,
            demo_password=self.password,
        )
        # secure_auth=False: LOGIN without TLS (loopback only); no sleep after a wrong login.
        backend, config = await DictBackend.init(args, secure_auth=False, invalid_user_sleep=0.0)
        config.apply_context()
        imap = IMAPServer(backend.login, config)

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, info: Any) -> None:
            await imap(_QuickAck(reader, writer), _WholeLines(writer), info)  # type: ignore[arg-type]

        callback: Any = ProxyProtocolReader(config.proxy_protocol).get_callback(serve)
        async with AsyncExitStack() as stack:
            await backend.start(stack)
            server = await asyncio.start_server(callback, host=HOST, port=0)
            await stack.enter_async_context(server)
            self.port = int(server.sockets[0].getsockname()[1])
            self._ready.set()
            await self._stop.wait()
            server.close()
            # End the sessions still open (the daemon has logged out by now; this is for a Ctrl-C mid-run).
            current = asyncio.current_task()
            for task in asyncio.all_tasks():
                if task is not current:
                    task.cancel()


class _WholeLines:
    """pymap writes a response in pieces ("* 3 FETCH ", then the rest) and drains after the last one, so a
    line can reach the client in two TCP segments. imapclient's ``idle_check`` reads without blocking and
    fails on half a line ("unterminated line"): the agent then reconnects, losing a second or two. This
    writer sends what was written at each drain, in one piece."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._pending = bytearray()

    def write(self, data: bytes) -> None:
        self._pending += data

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    async def drain(self) -> None:
        self._flush()
        await self._writer.drain()

    def close(self) -> None:
        self._flush()
        self._writer.close()

    def _flush(self) -> None:
        if self._pending and not self._writer.is_closing():
            self._writer.write(bytes(self._pending))
        self._pending.clear()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


class _QuickAck:
    """imapclient sends a command in several small writes; with Nagle's algorithm on its socket the last one
    waits for our ACK, which Linux delays by up to 40 ms. ACKing at once (TCP_QUICKACK, which the kernel
    drops again after a while, so it is set before every read) makes a SEARCH take 1 ms instead of 40."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._socket = writer.get_extra_info("socket")

    def _quick(self) -> None:
        if self._socket is not None and hasattr(socket, "TCP_QUICKACK"):
            with contextlib.suppress(OSError):
                self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)

    async def readline(self) -> bytes:
        self._quick()
        return await self._reader.readline()

    async def readexactly(self, count: int) -> bytes:
        self._quick()
        return await self._reader.readexactly(count)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)


@dataclass(frozen=True)
class Received:
    """One message the SMTP sink accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    at: datetime  # the demo's (virtual) clock when it arrived


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        received = Received(
            str(envelope.mail_from), tuple(str(r) for r in envelope.rcpt_tos), bytes(content), self.sink.clock()
        )
        with self.sink.lock:
            self.sink.messages.append(received)
        if self.sink.on_receive is not None:
            self.sink.on_receive(received)
        return "250 2.0.0 OK: kept by the demo's SMTP sink, sent nowhere"


class SmtpSink:
    """An aiosmtpd server on 127.0.0.1 that keeps every message it accepts (``messages``, in order)."""

    def __init__(self, clock: Callable[[], datetime], on_receive: Callable[[Received], None] | None = None) -> None:
        self.clock = clock
        self.on_receive = on_receive
        self.lock = threading.Lock()
        self.messages: list[Received] = []
        self.port = 0
        self._controller: Any = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        last: Exception | None = None
        for _attempt in range(5):  # aiosmtpd needs a concrete port: another program may take it first
            port = free_port()
            controller = Controller(
                _Handler(self), hostname=HOST, port=port, ready_timeout=START_TIMEOUT, decode_data=False
            )
            try:
                controller.start()
            except Exception as error:
                last = error
                continue
            self._controller, self.port = controller, port
            return
        raise DemoServerError(f"the SMTP sink did not start: {last}")

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.messages)
