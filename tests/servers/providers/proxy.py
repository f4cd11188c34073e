"""An IMAP proxy on 127.0.0.1 in front of the test Dovecot that behaves like a given mail provider.

    proxy = ProviderProxy(PROFILES["yahoo"], upstream_port=dovecot.port)
    proxy.start()            # clients connect to 127.0.0.1:proxy.port
    proxy.expire_token()     # every open session ends with "* BYE Session invalidated - AccessTokenExpired"
    proxy.events             # what the proxy did: ("refused", ...), ("keywords dropped", ...), ("copyuid", ...)
    proxy.stop()

What a profile (:mod:`tests.servers.providers.profiles`) can switch on, and the public report behind it:

- CAPABILITY rewritten in the greeting, the CAPABILITY response and ``OK [CAPABILITY ...]`` after login;
  commands that need a capability the provider lacks are refused with BAD (``MOVE``/``UID MOVE`` without MOVE,
  ``UNCHANGEDSINCE``/``MODSEQ``/``CHANGEDSINCE``/``SELECT (CONDSTORE)`` without CONDSTORE, ``ENABLE CONDSTORE``
  enables nothing). iCloud advertises CONDSTORE but answers ``SELECT ... (CONDSTORE)`` with NO (MailKit #970).
- No SPECIAL-USE (Microsoft 365, iCloud): the capability is gone and ``\\Sent``, ``\\Trash`` ... are stripped
  from LIST responses, so a client must find Sent by name.
- No keywords (Microsoft 365, MailKit #702, node-imap #602): PERMANENTFLAGS and FLAGS list system flags only
  (no ``\\*``); a STORE or APPEND with a custom keyword answers OK and the keyword is not kept.
- Reordered COPYUID (Yahoo, MailKit #1405): the destination UIDs of a multi-message COPY/MOVE are reported in
  reverse order, so a UID map taken on trust pairs each source with another message's copy.
- Labels (Gmail): one message in several folders, by :class:`tests.servers.providers.labels.Labels` beside the
  proxy. An APPEND also puts the message in "[Gmail]/All Mail" (once, whatever number of folders it is APPENDed
  to; never from Trash or Spam); flags are shared by every copy; EXPUNGE or MOVE out of a label folder removes
  that label only; EXPUNGE in All Mail, or a move into Trash or Spam, removes every label; ``STORE
  -X-GM-LABELS`` on the folder's own label takes the message out of that folder (a MOVE into a hidden folder,
  which the label layer empties). Every other client sees the result when the command's tagged answer comes.
  NOT emulated: X-GM-LABELS / X-GM-MSGID / X-GM-THRID / X-GM-RAW in FETCH and SEARCH (advertised through
  X-GM-EXT-1, answered BAD by Dovecot; only the ``-X-GM-LABELS`` STORE above is understood), the per-account
  EXPUNGE settings (always "auto-expunge", "move to All Mail"), [Gmail]/Starred and [Gmail]/Important as views
  of flags, and identity by Message-ID (copies with the same bytes are one message; two saves of one draft are
  two).
- Dropped sessions: an IDLE longer than ``idle_limit`` seconds (Microsoft 365: 30 minutes) and any session
  older than ``session_limit`` (Gmail: about daily) end with ``* BYE``; :meth:`ProviderProxy.expire_token`
  ends every open session with ``* BYE Session invalidated - AccessTokenExpired`` (imapsync #250).
- APPEND larger than ``append_limit`` (Gmail: 35,651,584 bytes) is answered ``NO [TOOBIG]``.

The proxy speaks plain TCP (STARTTLS is not offered). A synchronizing literal is acknowledged by the proxy
itself and forwarded as a non-synchronizing one (Dovecot has LITERAL+), so a whole command is seen before it
is forwarded, refused or rewritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import Coroutine
from typing import Any

from tests.servers import free_port
from tests.servers.providers.labels import Labels
from tests.servers.providers.profiles import BYE_TOKEN_EXPIRED, CONDSTORE_FAMILY, Profile
from tests.servers.providers.wire import (
    Message,
    append_parts,
    command_name,
    flatten,
    literal_size,
    no_keywords_in_response,
    reorder_copyuid,
    rewrite_capabilities,
    strip_append_keywords,
    strip_special_use,
    strip_store_keywords,
    tokens,
)

__all__ = ["ProviderProxy"]

HOST = "127.0.0.1"
# Commands that exist only with a capability: refused with BAD where the profile drops it.
REQUIRES = {
    "MOVE": "MOVE",
    "UID MOVE": "MOVE",
    "UID EXPUNGE": "UIDPLUS",
    "ENABLE": "ENABLE",
    "UNSELECT": "UNSELECT",
    "SORT": "SORT",
    "UID SORT": "SORT",
    "THREAD": "THREAD=REFERENCES",
    "UID THREAD": "THREAD=REFERENCES",
    "GETMETADATA": "METADATA",
    "SETMETADATA": "METADATA",
    "NOTIFY": "NOTIFY",
    "ID": "ID",
    "IDLE": "IDLE",
    "NAMESPACE": "NAMESPACE",
    "COMPRESS": "COMPRESS=DEFLATE",
}
# Commands after which Gmail's labels are brought in line (APPEND is followed on its own).
CHANGES = frozenset({"STORE", "UID STORE", "COPY", "UID COPY", "MOVE", "UID MOVE", "EXPUNGE", "UID EXPUNGE", "CLOSE"})
_MODSEQ = re.compile(r"\b(MODSEQ|CHANGEDSINCE)\b", re.IGNORECASE)


class ProviderProxy:
    """An asyncio proxy in a thread of its own; ``port`` is where clients connect."""

    host = HOST

    def __init__(self, profile: Profile, upstream_port: int, upstream_host: str = HOST) -> None:
        self.profile = profile
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self.events: list[tuple[str, str]] = []
        self.selected: list[str] = []  # every folder a client SELECTed or EXAMINEd, in order
        self._sessions: set[_Session] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self.labels = Labels(profile, self.upstream) if profile.all_mail else None

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._loop is not None:
            return
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name=f"imap-proxy-{self.profile.name}", daemon=True)
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._accept, HOST, self.port))

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            sessions = list(self._sessions)
            for session in sessions:
                session.end(None)
            for session in sessions:
                if session.task is not None:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await session.task

        self._call(shutdown())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        self._loop = self._thread = self._server = None
        if self.labels is not None:
            self.labels.close()

    def _call(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(30)

    # -- faults on demand ------------------------------------------------------------------------------
    def expire_token(self, text: str = BYE_TOKEN_EXPIRED) -> int:
        """End every open session with ``* BYE <text>`` (an OAuth token that expired mid-session, imapsync #250);
        the number of sessions ended."""
        return self.drop_sessions(text)

    def drop_sessions(self, text: str | None = "Connection closed") -> int:
        async def drop() -> int:
            sessions = list(self._sessions)
            for session in sessions:
                session.end(text)
            return len(sessions)

        ended: int = self._call(drop())
        if text is not None:
            self.event("bye", f"{ended} session(s): {text}")
        return ended

    @property
    def sessions(self) -> int:
        """How many client connections are open now."""
        return len(self._sessions)

    def event(self, kind: str, detail: str) -> None:
        self.events.append((kind, detail))

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(self, reader, writer)
        self._sessions.add(session)
        session.task = asyncio.current_task()
        try:
            await session.run()
        finally:
            self._sessions.discard(session)


class _Session:
    """One client connection and its own connection to Dovecot."""

    def __init__(self, proxy: ProviderProxy, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.proxy = proxy
        self.p = proxy.profile
        self.creader = reader
        self.cwriter = writer
        self.swriter: asyncio.StreamWriter | None = None
        self.task: asyncio.Task[Any] | None = None
        self.pumps: list[asyncio.Task[Any]] = []
        self.credentials: tuple[str, str] | None = None
        self.idle_tag: str | None = None
        self.idle_timer: asyncio.TimerHandle | None = None
        self.session_timer: asyncio.TimerHandle | None = None
        self.raw_until: str | None = None  # AUTHENTICATE: the client's lines are SASL data until this tag ends
        self.appends: dict[str, tuple[str, list[str], bytes]] = {}  # tag -> (folder, flags, message): Gmail's labels
        self.changes: set[str] = set()  # tags of commands that change folders: Gmail's labels follow them
        self.folder = ""  # what this connection has selected
        self.ended = False
        self.drop_caps = frozenset(c.upper() for c in self.p.drop_capabilities) | {"STARTTLS", "LOGINDISABLED"}

    async def run(self) -> None:
        try:
            sreader, self.swriter = await asyncio.open_connection(*self.proxy.upstream)
        except OSError:
            self.cwriter.write(b"* BYE [UNAVAILABLE] server unavailable\r\n")
            self.cwriter.close()
            return
        if self.ended:  # ended (a token expired, the proxy stopped) while the upstream connection was being opened:
            self.swriter.close()  # end() could not close it then; left open, it warns once its loop is closed
            return
        loop = asyncio.get_running_loop()
        if self.p.session_limit:
            self.session_timer = loop.call_later(self.p.session_limit, self.end, "Session expired, please reconnect")
        self.pumps = [asyncio.create_task(self._client_pump()), asyncio.create_task(self._server_pump(sreader))]
        try:
            await asyncio.wait(self.pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.end(None)
            for pump in self.pumps:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pump

    def end(self, bye: str | None) -> None:
        """Close both sides now; with ``bye``, the client is told ``* BYE <bye>`` first."""
        if self.ended:
            return
        self.ended = True
        if bye is not None:
            with contextlib.suppress(Exception):
                self.cwriter.write(f"* BYE {bye}\r\n".encode())
        for timer in (self.idle_timer, self.session_timer):
            if timer is not None:
                timer.cancel()
        for writer in (self.cwriter, self.swriter):
            if writer is not None:
                with contextlib.suppress(Exception):
                    writer.close()
        current = asyncio.current_task()
        for pump in self.pumps:
            if pump is not current:
                pump.cancel()

    # -- client -> server ------------------------------------------------------------------------------
    async def _client_pump(self) -> None:
        while not self.ended:
            line = await self.creader.readline()
            if not line:
                return
            if self.idle_tag is not None or self.raw_until is not None:
                if self.idle_tag is not None and line.strip().upper() == b"DONE":
                    self._idle_over()
                self._upstream(line)
                continue
            message = Message([line])
            tag, name = command_name(line)
            refused = False
            while (announced := literal_size(message.parts[-1])) is not None:
                size, non_sync = announced
                if name == "APPEND" and self.p.append_limit is not None and size > self.p.append_limit:
                    self._reply(f"{tag} NO [TOOBIG] Message too large (limit {self.p.append_limit} bytes)")
                    self.proxy.event("refused", f"APPEND of {size} bytes")
                    if non_sync:
                        await self.creader.readexactly(size)
                        await self.creader.readline()
                    refused = True
                    break
                if not non_sync:
                    self.cwriter.write(b"+ Ready for literal data\r\n")
                data = await self.creader.readexactly(size)
                rest = await self.creader.readline()
                message.parts[-1] = re.sub(rb"\{(\d+)\+?\}\r\n\Z", rb"{\1+}\r\n", message.parts[-1])
                message.parts += [data, rest]
            if not refused:
                self._command(tag, name, message)

    def _upstream(self, data: bytes) -> None:
        assert self.swriter is not None
        self.swriter.write(data)

    def _reply(self, *lines: str) -> None:
        self.cwriter.write("".join(f"{line}\r\n" for line in lines).encode())

    def _refuse(self, tag: str, name: str, kind: str, why: str) -> None:
        self._reply(f"{tag} {kind} {why}")
        self.proxy.event("refused", f"{name}: {why}")

    def _command(self, tag: str, name: str, message: Message) -> None:
        p = self.p
        text = message.text()
        words = tokens(text)
        needed = REQUIRES.get(name)
        if name == "STARTTLS":
            return self._refuse(tag, name, "BAD", "STARTTLS is not offered here")
        if needed is not None and needed.upper() in self.drop_caps:
            return self._refuse(tag, name, "BAD", f"Command Error. 12 ({name} is not supported)")
        if name in ("SELECT", "EXAMINE"):
            folder = str(words[2]) if len(words) > 2 else ""
            self.proxy.selected.append(folder)
            self.folder = folder
            options = {w.upper() for w in flatten(words[3:])}
            if options & CONDSTORE_FAMILY:
                if options & CONDSTORE_FAMILY & self.drop_caps:
                    return self._refuse(tag, name, "BAD", "Unknown SELECT parameter")
                if p.refuse_select_condstore:
                    return self._refuse(tag, name, "NO", "[CANNOT] SELECT with CONDSTORE is not supported")
        elif name == "ENABLE" and CONDSTORE_FAMILY & self.drop_caps:
            asked = [str(w) for w in words[2:]]
            kept = [w for w in asked if w.upper() not in self.drop_caps]
            if not kept:
                self.proxy.event("refused", f"ENABLE {' '.join(asked)}: enabled nothing")
                return self._reply("* ENABLED", f"{tag} OK ENABLE completed")
            message.parts[0] = f"{tag} ENABLE {' '.join(kept)}\r\n".encode()
        elif name in ("FETCH", "UID FETCH", "SEARCH", "UID SEARCH") and not p.has_condstore and _MODSEQ.search(text):
            return self._refuse(tag, name, "BAD", "MODSEQ needs CONDSTORE, which this server does not have")
        elif name in ("STORE", "UID STORE") and p.unlabelled and "-X-GM-LABELS" in text.upper():
            # Labels: removing the folder's own label takes the message out of that folder only; the test Dovecot
            # keeps one copy per folder, so this copy goes aside (a MOVE: one tagged answer, like the STORE's).
            self.proxy.event("label removed", f"{self.folder}: {text.strip()}")
            command = "UID MOVE" if name == "UID STORE" else "MOVE"
            quoted = p.unlabelled.replace('"', '\\"')
            uids = words[3] if name == "UID STORE" else words[2]
            message.parts[0] = f'{tag} {command} {uids} "{quoted}"\r\n'.encode()
        elif name in ("STORE", "UID STORE"):
            if not p.has_condstore and "UNCHANGEDSINCE" in text.upper():
                return self._refuse(tag, name, "BAD", "UNCHANGEDSINCE needs CONDSTORE, which this server does not have")
            if not p.keywords:
                first, dropped, empty = strip_store_keywords(message.parts[0])
                if dropped:
                    self.proxy.event("keywords dropped", " ".join(dropped))
                    message.parts[0] = first
                    if empty and re.search(rb"[+-]FLAGS", first, re.IGNORECASE):
                        return self._reply(f"{tag} OK STORE completed.")
        elif name == "APPEND":
            if not p.keywords:
                first, dropped = strip_append_keywords(message.parts[0])
                if dropped:
                    self.proxy.event("keywords dropped", " ".join(dropped))
                    message.parts[0] = first
            mailbox, flags = append_parts(message.parts[0])
            if self.proxy.labels is not None and message.literals():
                self.appends[tag] = (mailbox, flags, message.literals()[-1])
        elif name == "LIST" and not p.special_use and "SPECIAL-USE" in text.upper():
            return self._refuse(tag, name, "BAD", "SPECIAL-USE is not supported")
        elif name == "LOGIN" and len(words) >= 4:
            self.credentials = (str(words[2]), str(words[3]))
            if self.proxy.labels is not None and self.proxy.labels.credentials is None:
                self.proxy.labels.credentials = self.credentials
        elif name == "AUTHENTICATE":
            self.raw_until = tag
        elif name == "IDLE":
            self.idle_tag = tag
            if p.idle_limit is not None:
                self.idle_timer = asyncio.get_running_loop().call_later(p.idle_limit, self._idle_expired)
        if name in CHANGES and self.proxy.labels is not None:
            self.changes.add(tag)
        self._upstream(message.wire())
        return None

    def _idle_over(self) -> None:
        self.idle_tag = None
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None

    def _idle_expired(self) -> None:
        self.proxy.event("bye", f"IDLE longer than {self.p.idle_limit} s")
        self.end("Connection closed. 14 (idle for too long)")

    # -- server -> client ------------------------------------------------------------------------------
    async def _server_pump(self, reader: asyncio.StreamReader) -> None:
        while not self.ended:
            line = await reader.readline()
            if not line:
                return
            message = Message([line])
            while (announced := literal_size(message.parts[-1])) is not None:
                data = await reader.readexactly(announced[0])
                message.parts += [data, await reader.readline()]
            await self._response(message)

    async def _response(self, message: Message) -> None:
        p = self.p
        first = message.first
        if not first.startswith((b"*", b"+")):
            tag = first.split(b" ", 1)[0].decode("utf-8", "replace")
            ok = first[len(tag) + 1 :].upper().startswith(b"OK")
            if tag == self.raw_until:
                self.raw_until = None
            if tag == self.idle_tag:
                self._idle_over()
            pending = self.appends.pop(tag, None)
            changed = tag in self.changes
            self.changes.discard(tag)
            if ok and (pending is not None or changed):
                await self._follow_labels(pending)
        message.map_text(lambda s: rewrite_capabilities(s, self.drop_caps, p.add_capabilities))
        if not p.special_use:
            message.map_text(strip_special_use)
        if not p.keywords:
            message.parts = [
                no_keywords_in_response(s, i, first) if i % 2 == 0 else s for i, s in enumerate(message.parts)
            ]
        if p.reorder_copyuid:
            changed = False

            def reorder(segment: bytes) -> bytes:
                nonlocal changed
                new, did = reorder_copyuid(segment)
                changed = changed or did
                return new

            message.map_text(reorder)
            if changed:
                self.proxy.event("copyuid reordered", message.first.decode("utf-8", "replace").strip())
        if not self.ended:
            self.cwriter.write(message.wire())

    async def _follow_labels(self, appended: tuple[str, list[str], bytes] | None) -> None:
        """Gmail: the other copies of what this command changed follow it (:mod:`.labels`), before its answer."""
        labels = self.proxy.labels
        if labels is None:
            return
        try:
            if appended is not None:
                await asyncio.to_thread(labels.appended, *appended)
            else:
                await asyncio.to_thread(labels.sync)
        except Exception as error:  # a test server problem, reported, never a crash of the proxy
            self.proxy.event("labels", f"not followed: {error!r}")
