"""The submission door's listener: an SMTP submission server (RFC 6409) for the student's mail program.

AUTH (PLAIN or LOGIN) with a generated local password is required before MAIL; beyond loopback STARTTLS is
required too (the config refuses a clear-text listener on another address: :class:`agent.config.settings.Submission`).
What to do with a message is not decided here: every DATA is handed to ``hand_over(mail_from, rcpt_tos, raw)``,
whose answer ("250 …", "451 …", "550 …") the client gets. That answer is 250 only once the message is durable
where the student can see it (:mod:`agent.reconcile.doors.submission`).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import secrets
import ssl
import warnings
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from agent.config.settings import Submission
from agent.logs import register_secret

log = logging.getLogger("mentor_agent.submission")

HandOver = Callable[[str, Sequence[str], bytes], Awaitable[str]]
SECRET_FILE = "submission-password"


def secret_path(state_dir: Path) -> Path:
    return state_dir / SECRET_FILE


def local_secret(state_dir: Path) -> str:
    """The submission password: made once (32 random characters, a file only its owner may read), then kept."""
    path = secret_path(state_dir)
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        value = ""
    if not value:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        value = secrets.token_urlsafe(24)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(value + "\n")
    os.chmod(path, 0o600)
    register_secret(value)
    return value


class _Handler:
    def __init__(self, hand_over: HandOver) -> None:
        self.hand_over = hand_over

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = bytes(envelope.original_content or b"")
        try:
            return await self.hand_over(envelope.mail_from or "", list(envelope.rcpt_tos), raw)
        except Exception:  # never a crash, and never a 250 for what was not kept
            log.exception("a submitted message could not be handed over")
            return "451 4.3.0 mentor-agent could not take it just now; your mail program will try again"


class Listener:
    """Listens on ``config.listen``:``config.port`` in the running event loop until :meth:`close`."""

    def __init__(self, config: Submission, password: str, hand_over: HandOver) -> None:
        self.config = config
        self._password = password.encode()
        self.hand_over = hand_over
        self.server: asyncio.Server | None = None
        self.tls: ssl.SSLContext | None = None
        if config.tls_cert is not None and config.tls_key is not None:
            self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.tls.load_cert_chain(str(config.tls_cert), str(config.tls_key))

    def _check(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        good = (
            isinstance(data, LoginPassword)
            and hmac.compare_digest(data.login, self.config.username.encode())
            and hmac.compare_digest(data.password, self._password)
        )
        if not good:
            log.warning("submission: a login was refused (%s)", mechanism)
        return AuthResult(success=good, handled=False)  # handled=False: aiosmtpd answers 235 or 535 itself

    def _protocol(self) -> SMTP:
        with warnings.catch_warnings():  # "AUTH without TLS": on loopback only, which the config ensures
            warnings.simplefilter("ignore", UserWarning)
            return SMTP(
                _Handler(self.hand_over),
                hostname="mentor-agent",
                ident="mentor-agent submission",
                tls_context=self.tls,
                require_starttls=self.tls is not None,
                auth_required=True,
                auth_require_tls=not self.config.loopback,
                authenticator=self._check,
            )

    async def start(self) -> None:
        # aiosmtpd's own log says two things per connection that are wrong here ("AUTH without TLS", on loopback
        # only; a deprecated attribute it reads itself): only its errors reach the journal.
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self._protocol, self.config.listen, self.config.port)
        tls = " (STARTTLS)" if self.tls else ""
        log.info("taking submissions on %s port %d%s", self.config.listen, self.config.port, tls)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
