"""The SMTP adapter: send one message's bytes unchanged, retry what is temporary, never send twice.

The SMTP conversation is driven step by step (MAIL, RCPT each, DATA, body) rather than with
``SMTP.sendmail`` so that we know where a failure happened: before the server's ``354`` nothing can have
been delivered and a retry is safe; once the body was written, a lost connection or a timeout leaves the
outcome unknown, and that is reported as :class:`InDoubtError`, never retried.

An address beyond ASCII (``müller@…``), or a header block in UTF-8 (RFC 6532), goes with SMTPUTF8 (RFC 6531)
where the server offers it; where it does not, that one message is refused (:class:`PermanentSendError`, before
MAIL: nothing sent) and the others go on.

A refused login (535 and the like) or a TLS set-up that cannot work is no fault of the message: it is raised
as :class:`SmtpLoginRefused` / :class:`SmtpTlsProblem` (nothing was sent), and the caller stops sending.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiosmtplib
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from agent.config.settings import Smtp
from agent.errors import LoginRefused, TlsProblem
from agent.mail.connection_errors import Endpoint, client_context, plain_to_tls_advice, tls_advice
from agent.mail.message_size import note_size
from agent.mail.session import Login
from agent.rules.addresses import needs_smtputf8

__all__ = [
    "Delivery",
    "InDoubtError",
    "PermanentSendError",
    "SendStopped",
    "Sender",
    "SmtpLoginRefused",
    "SmtpTlsProblem",
    "TransientSendError",
    "send",
    "try_login",
]


@dataclass(frozen=True)
class Delivery:
    accepted: list[str]
    refused: dict[str, str]  # address -> the server's answer, e.g. "550 5.1.1 no such user"


class TransientSendError(Exception):
    """4xx answers, lost connections and timeouts, after every retry was used."""


class PermanentSendError(Exception):
    """A 5xx answer, or every recipient refused. ``reply`` is the server's text to quote to the student."""

    def __init__(self, reply: str, refused: dict[str, str] | None = None) -> None:
        super().__init__(reply)
        self.reply = reply
        self.refused = refused or {}


class InDoubtError(Exception):
    """The connection died after the whole message was sent but before the server's answer.

    The server may have accepted it: report it to the student, do not send again.
    """

    def __init__(self, message: str, recipients: Sequence[str]) -> None:
        super().__init__(message)
        self.recipients = list(recipients)


class SmtpLoginRefused(LoginRefused):
    """The server refused the login (or wants one we do not give): raised before anything was sent."""


class SmtpTlsProblem(TlsProblem):
    """TLS cannot work as configured; raised before anything was sent."""


class SendStopped(Exception):
    """The daemon is stopping while a retry waited; nothing was delivered (safe to send after a restart)."""


_HEAD_END = re.compile(rb"\r?\n\r?\n")


def endpoint(smtp: Smtp) -> Endpoint:
    return Endpoint("smtp", smtp.host, smtp.port, smtp.security, smtp.ca_file, smtp.timeout)


@dataclass
class _Retry(Exception):
    """Internal: worth another attempt. ``soft`` holds recipients refused with 4xx while others got it."""

    reason: str
    soft: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.reason


_CONNECTION_ERRORS = (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPConnectError, OSError, TimeoutError)


def _head(message: bytes) -> bytes:
    """The header block of ``message`` (all of it when it has no body)."""
    found = _HEAD_END.search(message)
    return message[: found.start()] if found else message


def _reply(code: int, message: str) -> str:
    return f"{code} {message}".strip()


def _refusal(error: aiosmtplib.SMTPResponseException) -> Exception:
    text = _reply(error.code, error.message)
    return PermanentSendError(text) if 500 <= error.code < 600 else _Retry(text)


def _client(smtp: Smtp, login: Login | None, tls_context: ssl.SSLContext | None) -> aiosmtplib.SMTP:
    token = login.oauth2_token if login else None

    async def fresh_token() -> str:
        assert token is not None
        return token

    return aiosmtplib.SMTP(
        hostname=smtp.host,
        port=smtp.port,
        use_tls=smtp.security == "tls",
        start_tls=smtp.security == "starttls",
        timeout=smtp.timeout,
        tls_context=tls_context or (client_context(smtp.ca_file) if smtp.security != "plain" else None),
        username=(login.username or smtp.username) if login else None,
        password=login.password if login and not token else None,
        oauth_token_generator=fresh_token if token else None,
    )


class Sender:
    """One SMTP connection kept open for several messages (``async with Sender(...) as sender``).

    Each :meth:`send` is one SMTP transaction with the guarantees described in the module docstring; after
    any failure the connection is dropped and the next message (or retry) opens a fresh one.
    """

    def __init__(
        self,
        smtp: Smtp,
        login: Login | None,
        *,
        attempts: int = 5,
        max_wait: float = 60.0,
        tls_context: ssl.SSLContext | None = None,
        stopping: asyncio.Event | None = None,
    ) -> None:
        self.smtp = smtp
        self.login = login
        self.attempts = attempts
        self.max_wait = max_wait
        self.tls_context = tls_context
        self.stopping = stopping  # set: a retry wait ends at once (SendStopped), nothing more is tried
        self._client: aiosmtplib.SMTP | None = None

    async def __aenter__(self) -> Sender:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                async with asyncio.timeout(self.smtp.timeout):
                    await client.quit()
        finally:  # also when the QUIT is cancelled (a stop): the socket is never left open
            client.close()

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def send(self, raw: bytes, sender: str, recipients: Sequence[str]) -> Delivery:
        """Send ``raw`` (headers and body as they are; Bcc already removed from the headers) to ``recipients``.

        Returns who got it and who was refused (partial refusals are reported, not hidden). Raises
        PermanentSendError (5xx, or every recipient refused), TransientSendError (retries used up) or
        InDoubtError (the connection died after the message was sent; never retried).
        Recipients refused with 4xx while others accepted the message are retried on their own.
        """
        body = PERIOD_REGEX.sub(b"..", normalize_message_line_endings(raw)) + b".\r\n"
        pending = list(dict.fromkeys(recipients))
        accepted: list[str] = []
        refused: dict[str, str] = {}
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_random_exponential(multiplier=self.max_wait / 60, max=self.max_wait),
            retry=retry_if_exception_type(_Retry),
            reraise=True,
            sleep=self._pause,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    try:
                        accepted += await self._attempt(body, sender, pending, refused)
                    except _Retry as soft:
                        if soft.soft:  # some got it: only the softly refused ones are tried again
                            accepted += [r for r in pending if r not in soft.soft and r not in refused]
                            pending = list(soft.soft)
                        raise
        except _Retry as error:
            if accepted:
                refused.update(error.soft or dict.fromkeys(pending, error.reason))
                return Delivery(accepted, refused)
            raise TransientSendError(f"gave up after {self.attempts} attempts: {error}") from error
        except SendStopped:
            if accepted:
                refused.update(dict.fromkeys(pending, "not retried: mentor-agent was stopped"))
                return Delivery(accepted, refused)
            raise
        return Delivery(accepted, refused)

    async def _pause(self, seconds: float) -> None:
        """tenacity's sleep between attempts, cut short by a stop."""
        if self.stopping is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)
        if self.stopping.is_set():
            raise SendStopped("stopped while waiting to try again")

    async def _connected(self) -> aiosmtplib.SMTP:
        """The open connection, or a new one (logged in). A refused login or a TLS set-up that cannot work
        raises SmtpLoginRefused / SmtpTlsProblem, with what to change."""
        if self._client is not None and self._client.is_connected:
            return self._client
        self._drop()
        client = _client(self.smtp, self.login, self.tls_context)
        self._client = client
        end = endpoint(self.smtp)
        try:
            async with asyncio.timeout(self.smtp.timeout):
                await client.connect()
        except aiosmtplib.SMTPAuthenticationError as error:
            self._drop()
            if 500 <= error.code < 600:
                user = (self.login.username if self.login else "") or self.smtp.username
                raise SmtpLoginRefused(
                    f"smtp: login as {user!r} refused by {end.where}: {_reply(error.code, error.message)}"
                ) from error
            raise
        except (*_CONNECTION_ERRORS, aiosmtplib.SMTPException) as error:
            self._drop()
            advice = tls_advice(error, end)
            if advice is None and isinstance(error, TimeoutError):
                advice = await asyncio.to_thread(plain_to_tls_advice, end)  # a TLS port spoken to in plain?
            if advice:
                raise SmtpTlsProblem(advice) from error
            raise
        return client

    async def check(self) -> None:
        """Connect and log in only (no message): raises as :meth:`send` would before its first MAIL. The server's
        greeting is heard, for the largest message it takes (:func:`advertised_size`)."""
        try:
            client = await self._connected()
            if client.is_ehlo_or_helo_needed:  # a plain connection greets lazily
                async with asyncio.timeout(self.smtp.timeout):
                    await client.ehlo()
            note_size(self.smtp, client)
        except aiosmtplib.SMTPResponseException as error:
            raise _refusal(error) from error

    async def _attempt(self, body: bytes, sender: str, recipients: list[str], refused: dict[str, str]) -> list[str]:
        """One transaction. The recipients that got the message; raises on failure (and drops the connection)."""
        smtp = self.smtp
        body_sent = False
        ok: list[str] = []
        wide = [address for address in (sender, *recipients) if needs_smtputf8(address)]
        wide += [] if _head(body).isascii() else ["header fields written in UTF-8"]  # RFC 6532 needs it as well
        options, encoding = (["SMTPUTF8"], "utf-8") if wide else ([], "ascii")
        try:
            client = await self._connected()  # with its own timeout, so that a silent server can be diagnosed
            if wide and client.is_ehlo_or_helo_needed:  # a plain connection greets lazily: its extensions first
                async with asyncio.timeout(smtp.timeout):
                    await client.ehlo()
            if wide and not client.supports_extension("smtputf8"):
                raise PermanentSendError(
                    f"{smtp.host}:{smtp.port} does not take addresses or headers with letters beyond ASCII "
                    f"({', '.join(wide)}): "
                    "it does not offer SMTPUTF8 (RFC 6531); ask the recipient for an ASCII address"
                )
            async with asyncio.timeout(smtp.timeout):
                try:
                    await client.mail(sender, options=options, encoding=encoding)
                except aiosmtplib.SMTPResponseException as error:
                    if error.code == 530:  # "authentication required": every message would fail the same way
                        raise SmtpLoginRefused(
                            f"smtp: {smtp.host}:{smtp.port} wants a login ({_reply(error.code, error.message)}): "
                            "set username and a password source in [smtp]"
                        ) from error
                    raise _refusal(error) from error
                note_size(smtp, client)
                soft: dict[str, str] = {}
                for recipient in recipients:
                    try:
                        await client.rcpt(recipient, encoding=encoding)
                        ok.append(recipient)
                    except aiosmtplib.SMTPResponseException as error:
                        text = _reply(error.code, error.message)
                        if 500 <= error.code < 600:
                            refused[recipient] = text
                        else:
                            soft[recipient] = text
                if not ok:
                    if soft:
                        raise _Retry("; ".join(soft.values()))
                    raise PermanentSendError("every recipient was refused: " + "; ".join(refused.values()), refused)
                start = await client.execute_command(b"DATA")
                if start.code != 354:
                    raise _refusal(aiosmtplib.SMTPDataError(start.code, start.message))
                protocol = client.protocol
                if protocol is None:
                    raise aiosmtplib.SMTPServerDisconnected("connection lost before the message was sent")
                protocol.write(body)
                body_sent = True
                done = await protocol.read_response(timeout=smtp.timeout)
                if done.code != 250:
                    raise _refusal(aiosmtplib.SMTPDataError(done.code, done.message))
                for recipient in ok:
                    refused.pop(recipient, None)  # refused on an earlier attempt, accepted now
                if soft:
                    raise _Retry("; ".join(soft.values()), soft={r: soft[r] for r in soft})
                return ok
        except _Retry:
            self._drop()
            raise
        except PermanentSendError:
            self._drop()
            raise
        except (UnicodeError, ValueError) as error:
            self._drop()
            if body_sent:
                raise
            # An address the protocol cannot carry: certainly not sent, and no fault of the other messages.
            raise PermanentSendError(f"it cannot be handed to the mail server: {error}") from error
        except aiosmtplib.SMTPResponseException as error:  # e.g. a refused AUTH or EHLO
            self._drop()
            raise _refusal(error) from error
        except (*_CONNECTION_ERRORS, aiosmtplib.SMTPException) as error:
            self._drop()
            what = "timed out" if isinstance(error, TimeoutError) else (str(error) or type(error).__name__)
            if body_sent:
                raise InDoubtError(f"{smtp.host}:{smtp.port}: {what} after the message was sent", ok) from error
            raise _Retry(f"{smtp.host}:{smtp.port}: {what}") from error
        except BaseException:
            self._drop()
            raise


async def send(
    smtp: Smtp,
    login: Login | None,
    raw: bytes,
    sender: str,
    recipients: Sequence[str],
    *,
    attempts: int = 5,
    max_wait: float = 60.0,
    tls_context: ssl.SSLContext | None = None,
) -> Delivery:
    """One message over its own connection: see :meth:`Sender.send`."""
    async with Sender(smtp, login, attempts=attempts, max_wait=max_wait, tls_context=tls_context) as sender_:
        return await sender_.send(raw, sender, recipients)


async def try_login(smtp: Smtp, login: Login | None, *, tls_context: ssl.SSLContext | None = None) -> None:
    """Connect, log in and say goodbye, sending nothing (the daemon's check at start, ``check --connect``).

    Raises SmtpLoginRefused, SmtpTlsProblem, PermanentSendError (another 5xx), or the connection error.
    """
    async with Sender(smtp, login, tls_context=tls_context) as sender:
        await sender.check()
