"""What surrounds the demo's agent: its mail servers (loopback only), the people who write, the terminal
timeline, and the export of the mailbox it leaves.

* :class:`ImapServer` — pymap's in-memory ("dict") backend, served by pymap's own IMAP code on its own event
  loop in a thread. It offers IDLE, MOVE and UIDPLUS (no SPECIAL-USE: the agent falls back to "Sent" by name,
  no CONDSTORE: the agent claims messages by MOVE alone). Everything is lost when it stops, which is why the
  demo exports the folders first.
* :class:`SmtpSink` — aiosmtpd, accepting every message and keeping it, with the demo's clock reading at
  the moment it arrived. Nothing is relayed anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import mailbox as mboxlib
import re
import shutil
import socket
import textwrap
import threading
from argparse import Namespace
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any

from agent.errors import UserError
from agent.rules.invites import ItipObject

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


# -- the terminal ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    at: datetime
    tag: str
    text: str
    mentor: str = ""  # the mentor's name, for the time in their zone
    key: str = ""  # a ledger key, for the subject
    more: tuple[str, ...] = ()


class Timeline:
    """Prints events as lines: the student's time, the mentor's time, what happened and why."""

    def __init__(
        self, student_zone: tzinfo, zones: dict[str, tzinfo], quiet: bool, echo: Callable[[str], None]
    ) -> None:
        self.zone, self.zones, self.quiet, self.echo = student_zone, zones, quiet, echo
        self.lines: list[str] = []
        self.width = max(80, min(shutil.get_terminal_size((110, 24)).columns, 130))
        self._day = ""
        self._stamp = ""

    def say(self, line: str = "", *, always: bool = False) -> None:
        self.lines.append(line)
        if always or not self.quiet:
            self.echo(line)

    def show(self, event: Event, subject: str = "") -> None:
        if not event.tag:
            return
        mine = event.at.astimezone(self.zone)
        day = f"{mine:%A %d %B}"
        if day != self._day:
            self._day, self._stamp = day, ""
            self.say(f"── {day} " + "─" * max(0, 60 - len(day)))
        theirs = ""
        if event.mentor in self.zones:
            local = event.at.astimezone(self.zones[event.mentor])
            theirs = f"{local:%H:%M} {local.tzname()}"
            if local.date() != mine.date():
                theirs = f"{local:%a} {theirs}"
        stamp = f"  {mine:%H:%M} {mine.tzname():<4} {theirs:<13}"
        shown = stamp if stamp != self._stamp else " " * len(stamp)
        self._stamp = stamp
        text = f"“{subject}”: {event.text}" if subject else event.text
        indent = " " * (len(stamp) + 9)
        wrapped = textwrap.wrap(text, self.width - len(indent)) or [""]
        self.say(f"{shown}{event.tag:<8} {wrapped[0]}")
        for rest in [*wrapped[1:], *event.more]:
            self.say(indent + rest)


# -- the simulated mentors' side ---------------------------------------------------------------------------


def student_mail(
    student: tuple[str, str],
    to: str,
    subject: str,
    at: datetime,
    message_id: str,
    references: tuple[str, ...],
    body: str,
    attachment: tuple[str, str] | None,
) -> bytes:
    """What the student drops in the Outbox: ``references`` are the Message-IDs it answers (the last is
    In-Reply-To); ``attachment`` is (file name, text)."""
    message = EmailMessage()
    message["From"] = formataddr(student)
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(at)
    message["Message-ID"] = message_id
    if references:
        message["In-Reply-To"] = references[-1]
        message["References"] = " ".join(references)
    message.set_content(body + "\n")
    if attachment is not None:
        message.add_attachment(attachment[1].encode(), maintype="text", subtype="plain", filename=attachment[0])
    return message.as_bytes(policy=email_policy.SMTP)


def mentor_mail(
    sender: tuple[str, str],
    student: tuple[str, str],
    subject: str,
    at: datetime,
    message_id: str,
    answering: str,
    body: str,
) -> EmailMessage:
    """A mentor's e-mail to the student (``sender`` and ``student`` are (name, address)) answering a message."""
    message = EmailMessage()
    message["From"] = formataddr(sender)
    message["To"] = formataddr(student)
    message["Subject"] = subject
    message["Date"] = format_datetime(at)
    message["Message-ID"] = message_id
    message["In-Reply-To"] = answering
    message["References"] = answering
    message.set_content(body + "\n")
    return message


def reply_ics(item: ItipObject, attendee: tuple[str, str], at: datetime) -> str:
    """The iTIP REPLY of ``attendee`` (name, address) accepting the REQUEST ``item``, as a calendar app writes it."""

    def stamp(moment: datetime | None) -> str:
        return f"{(moment or at).astimezone(UTC):%Y%m%dT%H%M%SZ}"

    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//mentor-agent demo//simulated mentor//EN",
        "METHOD:REPLY",
        "BEGIN:VEVENT",
        f"UID:{item.uid}",
        f"SEQUENCE:{item.sequence}",
        f"DTSTAMP:{stamp(at)}",
        f"DTSTART:{stamp(item.start)}",
        f"DTEND:{stamp(item.end)}",
    ]
    if item.organizer:
        lines.append(f"ORGANIZER:mailto:{item.organizer}")
    lines += [f"ATTENDEE;CN={attendee[0]};PARTSTAT=ACCEPTED:mailto:{attendee[1]}", "END:VEVENT", "END:VCALENDAR", ""]
    return "\r\n".join(lines)


def header(raw: bytes, name: str) -> str:
    parsed = message_from_bytes(raw, policy=email_policy.default)
    return str(parsed.get(name, "")).strip()


# -- the mailbox it leaves behind -------------------------------------------------------------------------


def read_folders(port: int, user: str, password: str) -> dict[str, list[bytes]]:
    """Every folder on the demo's IMAP server with its messages, byte for byte, in UID order."""
    from imapclient import IMAPClient

    client = IMAPClient(HOST, port=port, ssl=False, timeout=10)
    try:
        client.login(user, password)
        found: dict[str, list[bytes]] = {}
        for _flags, _delimiter, name in client.list_folders():
            folder = str(name)
            client.select_folder(folder, readonly=True)
            uids = sorted(int(uid) for uid in client.search("ALL"))
            data = client.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
            found[folder] = [bytes(data[uid][b"BODY[]"]) for uid in uids if uid in data]
        client.logout()
        return found
    finally:
        with contextlib.suppress(Exception):
            client.shutdown()


def _slug(text: str, limit: int = 48) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-") or "message"


def _line(raw: bytes, name: str, incoming: bool = False) -> tuple[str, str]:
    """(the subject, one index line: file name, from or to whom, subject)."""
    parsed = message_from_bytes(raw, policy=email_policy.default)
    subject = " ".join(str(parsed.get("Subject", "(no subject)")).split())
    header = parsed.get("From" if incoming else "To")
    people = [a.display_name or a.addr_spec for a in getattr(header, "addresses", ())] or [str(header or "")]
    who = f"{'from' if incoming else 'to'} {', '.join(people)}"
    return subject, f"{name}\n      {who}: {subject}"


README = """\
What mentor-agent did in the demo week, as your mail client would show it.

  mailbox/<folder>/      every message in each IMAP folder, one .eml file each (open with any mail program)
  mbox/<folder>.mbox     the same, one mbox file per folder (e.g. mutt -f mbox/Sent.mbox)
  received-by-mentors/   what the SMTP server accepted, i.e. what the mentors (and a classmate) received
  timeline.txt           the timeline printed in the terminal
  agent.log              the agent's own log (DEBUG), with the demo's servers' log lines
  policies/              the agreements the agent kept (one TOML file per mentor)

Times in the messages are the demo's virtual week (from Monday 23 November 2026).
"""


MARKER = ".mentor-agent-demo"


def prepare_out(out: Path) -> None:
    """``out`` is made empty: a fresh directory, or one a previous demo wrote (never anything else)."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).exists())):
        raise UserError(f"{out} exists and was not written by the demo; choose another with --out")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("written by `mentor-agent demo`; the next demo run replaces this directory\n")


def write_export(out: Path, folders: dict[str, list[bytes]], received: list[Received], timeline: list[str]) -> None:
    """The mailbox as files under ``out`` (which exists, empty apart from the demo's own files)."""
    index = [README]
    for folder, messages in sorted(folders.items(), key=lambda item: (item[0] != "INBOX", item[0])):
        safe = _slug(folder, 40) if folder != "INBOX" else "INBOX"
        safe = {
            "sent": "Sent",
            "outbox": "Outbox",
            "scheduled": "Scheduled",
            "sending": "Sending",
            "needs-attention": "Needs-attention",
        }.get(safe, safe)
        directory = out / "mailbox" / safe
        directory.mkdir(parents=True, exist_ok=True)
        (out / "mbox").mkdir(exist_ok=True)
        box = mboxlib.mbox(out / "mbox" / f"{safe}.mbox", create=True)
        try:
            index.append(f"\n{folder} ({len(messages)} message(s)): mailbox/{safe}/, mbox/{safe}.mbox")
            for number, raw in enumerate(messages, 1):
                subject, _ = _line(raw, "")
                name = f"{number:03d}-{_slug(subject)}.eml"
                (directory / name).write_bytes(raw)
                box.add(raw)
                index.append("  " + _line(raw, name, incoming=folder == "INBOX")[1])
            box.flush()
        finally:
            box.close()
    sink = out / "received-by-mentors"
    sink.mkdir(exist_ok=True)
    index.append(f"\nReceived by the SMTP sink ({len(received)} message(s)): received-by-mentors/")
    for number, item in enumerate(received, 1):
        subject, _ = _line(item.content, "")
        name = f"{number:03d}-{_slug(subject)}.eml"
        (sink / name).write_bytes(item.content)
        index.append("  " + _line(item.content, name)[1])
    (out / "README.txt").write_text("\n".join(index) + "\n", encoding="utf-8")
    (out / "timeline.txt").write_text("\n".join(timeline) + "\n", encoding="utf-8")
