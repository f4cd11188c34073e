"""The SMTP adapter: send one message's bytes unchanged, retry what is temporary, never send twice.

The SMTP conversation is driven step by step (MAIL, RCPT each, DATA, body) rather than with
``SMTP.sendmail`` so that we know where a failure happened: before the server's ``354`` nothing can have
been delivered and a retry is safe; once the body was written, a lost connection or a timeout leaves the
outcome unknown, and that is reported as :class:`InDoubtError`, never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiosmtplib
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from agent.mailbox import Login
from agent.settings import Smtp

__all__ = ["Delivery", "InDoubtError", "PermanentSendError", "Sender", "TransientSendError", "send"]


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


@dataclass
class _Retry(Exception):
    """Internal: worth another attempt. ``soft`` holds recipients refused with 4xx while others got it."""

    reason: str
    soft: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.reason


_CONNECTION_ERRORS = (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPConnectError, OSError, TimeoutError)


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
        tls_context=tls_context,
        username=(login.username or smtp.username) if login else None,
        password=login.password if login and not token else None,
        oauth_token_generator=fresh_token if token else None,
    )


class Sender:
    """One SMTP connection kept open for several messages (``async with Sender(...) as sender``).

    Each :meth:`send` is one SMTP transaction with the guarantees described in the module docstring; after
    any failure the connection is dropped and the next message (or retry) opens a fresh one.
    """

    def __init__(self, smtp: Smtp, login: Login | None, *, attempts: int = 5, max_wait: float = 60.0,
                 tls_context: ssl.SSLContext | None = None) -> None:
        self.smtp = smtp
        self.login = login
        self.attempts = attempts
        self.max_wait = max_wait
        self.tls_context = tls_context
        self._client: aiosmtplib.SMTP | None = None

    async def __aenter__(self) -> Sender:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
            async with asyncio.timeout(self.smtp.timeout):
                await client.quit()
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
        return Delivery(accepted, refused)

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        self._drop()
        client = _client(self.smtp, self.login, self.tls_context)
        self._client = client
        await client.connect()
        return client

    async def _attempt(self, body: bytes, sender: str, recipients: list[str], refused: dict[str, str]) -> list[str]:
        """One transaction. The recipients that got the message; raises on failure (and drops the connection)."""
        smtp = self.smtp
        body_sent = False
        ok: list[str] = []
        try:
            async with asyncio.timeout(smtp.timeout):
                client = await self._connected()
                try:
                    await client.mail(sender)
                except aiosmtplib.SMTPResponseException as error:
                    raise _refusal(error) from error
                soft: dict[str, str] = {}
                for recipient in recipients:
                    try:
                        await client.rcpt(recipient)
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
