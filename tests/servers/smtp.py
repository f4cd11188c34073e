"""A real aiosmtpd server for tests: stores every envelope and answers with faults on request.

server.fail_next("451 4.3.0 try later")            # next DATA gets this answer
server.fail_next("421 4.3.2 shutting down", close=True)   # answer, then drop the connection
server.fail_next("550 5.7.1 no", stage="MAIL")     # stages: MAIL, RCPT, DATA
server.drop_after_data()                            # store the message, then cut the line: in doubt
server.refuse("nobody@example.org", "550 5.1.1 no such user")   # per recipient; times=N for N times
server.wait_for(1, timeout=5)                       # blocks until one message was stored
server.state.gate = check      # check(stage, recipients so far) -> a refusal reply or None (sending limits)
server.state.on_accept = file  # file(received) runs before "250" (a provider filing the message in Sent)
SmtpServer(oauth2=check)       # AUTH XOAUTH2 required: check(user, token) -> whether the token is good for user
SmtpServer(smtputf8=True)      # offers SMTPUTF8 (RFC 6531): addresses beyond ASCII; without it, it does not
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.servers import PATIENCE, free_port

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    received_at: float  # time.monotonic()
    authenticated_as: str | None
    mail_options: tuple[str, ...] = ()  # MAIL FROM parameters (SMTPUTF8, BODY=8BITMIME…)


@dataclass
class _Fault:
    stage: str
    reply: str
    close: bool = False
    store: bool = False


@dataclass
class _State:
    faults: deque[_Fault] = field(default_factory=deque)
    refusals: dict[str, tuple[str, int | None]] = field(default_factory=dict)  # reply, times left
    messages: list[Received] = field(default_factory=list)
    sessions: set[Any] = field(default_factory=set)
    condition: threading.Condition = field(default_factory=threading.Condition)
    gate: Callable[[str, int], str | None] | None = None
    on_accept: Callable[[Received], None] | None = None


class _Handler:
    def __init__(self, state: _State) -> None:
        self.state = state

    def _fault(self, stage: str) -> _Fault | None:
        with self.state.condition:
            faults = self.state.faults
            if faults and faults[0].stage == stage:
                return faults.popleft()
        return None

    async def _answer(self, server: SMTP, fault: _Fault) -> str:
        if fault.close:
            await server.push(fault.reply)
            assert server.transport is not None
            server.transport.close()
            return "421 4.3.2 closing"  # written to a closed transport: never seen by the client
        return fault.reply

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        with self.state.condition:
            self.state.sessions.add(session.peer)  # the client port: one per connection, even over STARTTLS
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        fault = self._fault("MAIL")
        if fault:
            return await self._answer(server, fault)
        refusal = self.state.gate("MAIL", 0) if self.state.gate else None
        if refusal:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        fault = self._fault("RCPT")
        if fault:
            return await self._answer(server, fault)
        with self.state.condition:
            refusal = self.state.refusals.get(address.lower())
            if refusal and refusal[1] is not None:
                left = refusal[1] - 1
                if left <= 0:
                    del self.state.refusals[address.lower()]
                else:
                    self.state.refusals[address.lower()] = (refusal[0], left)
        if refusal:
            return refusal[0]
        limit = self.state.gate("RCPT", len(envelope.rcpt_tos)) if self.state.gate else None
        if limit:
            return limit
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        fault = self._fault("DATA")
        if fault and not fault.store:
            return await self._answer(server, fault)
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        content = envelope.original_content or b""
        received = Received(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            content=bytes(content),
            received_at=time.monotonic(),
            authenticated_as=login.decode() if isinstance(login, bytes) else None,
            mail_options=tuple(envelope.mail_options),
        )
        if self.state.on_accept is not None:
            await asyncio.to_thread(self.state.on_accept, received)
        with self.state.condition:
            self.state.messages.append(received)
            self.state.condition.notify_all()
        if fault:  # stored, and now the line goes dead before the client hears "250"
            transport = server.transport
            assert isinstance(transport, asyncio.WriteTransport)
            transport.abort()
            return fault.reply
        return "250 2.0.0 OK queued"


class _OAuthHandler(_Handler):
    """``_Handler`` that also takes AUTH XOAUTH2 (user=...^Aauth=Bearer <token>^A^A), checked by ``check``."""

    def __init__(self, state: _State, check: Callable[[str, str], bool]) -> None:
        super().__init__(state)
        self.check = check

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) < 2:
            return AuthResult(success=False, message="501 5.5.2 initial response expected")
        try:
            fields = dict(
                part.split("=", 1) for part in base64.b64decode(args[1], validate=True).decode().split("\x01") if part
            )
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return AuthResult(success=False, message="501 5.5.2 cannot decode the XOAUTH2 response")
        user, token = fields.get("user", ""), fields.get("auth", "").removeprefix("Bearer ")
        if not await asyncio.to_thread(self.check, user, token):
            return AuthResult(success=False, message="535 5.7.8 token refused")
        return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))


class SmtpServer:
    """An aiosmtpd Controller on 127.0.0.1 and a concrete free port."""

    host = HOST

    def __init__(
        self,
        *,
        tls: Any = None,
        auth: tuple[str, str] | None = None,
        implicit_tls: bool = False,
        oauth2: Callable[[str, str], bool] | None = None,
        smtputf8: bool = False,
        size_limit: int | None = None,
    ) -> None:
        """``tls``: a TlsFiles (cert_pem, key_pem, ca_pem) to offer STARTTLS (or, with ``implicit_tls``, TLS
        from the first byte, as on port 465); ``auth``: (user, password), changeable while it runs;
        ``oauth2``: AUTH XOAUTH2 required, each (user, token) checked by it; ``size_limit``: the largest message
        it takes (said in EHLO as SIZE; a larger one is refused with 552)."""
        self.port = free_port()
        self.oauth2 = oauth2
        self.auth = auth
        self.tls = tls
        self.state = _State()
        kwargs: dict[str, Any] = {"enable_SMTPUTF8": smtputf8}
        if size_limit is not None:
            kwargs.update(data_size_limit=size_limit)
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(tls.cert_pem), str(tls.key_pem))
            if implicit_tls:
                kwargs.update(ssl_context=context)
            else:
                kwargs.update(tls_context=context, require_starttls=True)
        if auth is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True, auth_require_tls=tls is not None)
        if oauth2 is not None:
            # Without TLS, AUTH stays optional (aiosmtpd warns otherwise); tests check Received.authenticated_as.
            required = tls is not None
            kwargs.update(auth_required=required, auth_require_tls=required, auth_exclude_mechanism=["LOGIN", "PLAIN"])
        self._kwargs = kwargs
        self.controller: Controller | None = None
        self._ever_started = False

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            self.auth is not None
            and isinstance(auth_data, LoginPassword)
            and auth_data.login == self.auth[0].encode()
            and auth_data.password == self.auth[1].encode()
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    def start(self) -> None:
        """Start (again) on the same port; a Controller cannot be restarted, so each start makes one."""
        if self.controller is not None:
            return
        handler = _Handler(self.state) if self.oauth2 is None else _OAuthHandler(self.state, self.oauth2)
        self.controller = Controller(
            handler, hostname=HOST, port=self.port, server_hostname="localhost", **self._kwargs
        )
        try:
            self.controller.start()
        except OSError:  # the port was taken since free_port() (another worker): a first start takes another
            if self._ever_started:
                raise
            self.port = free_port()
            self.controller = Controller(
                handler, hostname=HOST, port=self.port, server_hostname="localhost", **self._kwargs
            )
            self.controller.start()
        self._ever_started = True

    def stop(self) -> None:
        controller, self.controller = self.controller, None
        if controller is not None:
            controller.stop()

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts the test CA."""
        assert self.tls is not None
        return ssl.create_default_context(cafile=str(self.tls.ca_pem))

    # -- faults ------------------------------------------------------------------------------------------
    def fail_next(self, reply: str, *, stage: str = "DATA", close: bool = False) -> None:
        """Answer the next ``stage`` command (MAIL, RCPT or DATA) with ``reply``; queued in order."""
        with self.state.condition:
            self.state.faults.append(_Fault(stage.upper(), reply, close=close))

    def drop_after_data(self) -> None:
        """Store the next message, then abort the connection before the final reply (an in-doubt send)."""
        with self.state.condition:
            self.state.faults.append(_Fault("DATA", "250 2.0.0 OK queued", store=True))

    def refuse(self, address: str, reply: str = "550 5.1.1 no such user", times: int | None = None) -> None:
        """Answer RCPT TO:<address> with ``reply`` — always, or the next ``times`` times."""
        with self.state.condition:
            self.state.refusals[address.lower()] = (reply, times)

    # -- what arrived ------------------------------------------------------------------------------------
    @property
    def messages(self) -> list[Received]:
        with self.state.condition:
            return list(self.state.messages)

    @property
    def sessions(self) -> int:
        """How many connections have greeted the server with EHLO."""
        with self.state.condition:
            return len(self.state.sessions)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """Block until at least ``count`` messages were stored; AssertionError after ``timeout`` (× PATIENCE)."""
        with self.state.condition:
            if not self.state.condition.wait_for(lambda: len(self.state.messages) >= count, timeout * PATIENCE):
                raise AssertionError(f"expected {count} messages, got {len(self.state.messages)}")
            return list(self.state.messages)

    async def wait(self, count: int, within: float = 5.0) -> list[Received]:
        """``wait_for`` for async tests."""
        return await asyncio.to_thread(self.wait_for, count, within)
