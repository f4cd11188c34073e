"""Opening an IMAP session: the login, the errors every IMAP failure comes out as, and one connection made
(TLS or STARTTLS, authentication, retries of a failure to reach the server — never of a refusal).

Shared by the command connection (:mod:`agent.mail.client`) and the IDLE watcher (:mod:`agent.mail.watch`).
"""

from __future__ import annotations

import contextlib
import functools
import imaplib
import re
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import imapclient
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_random_exponential

from agent.config.settings import Imap
from agent.errors import EX_CONFIG, AgentError, ConnectionProblem, LoginRefused, TlsProblem
from agent.mail.connection_errors import Endpoint, client_context, plain_to_tls_advice, tls_advice
from agent.mail.pulse import PacedClient, Pulse
from agent.mail.uidsets import text_of

CONNECT_ATTEMPTS = 3


@dataclass(frozen=True)
class Login:
    username: str
    password: str | None = None
    oauth2_token: str | None = None

    def __repr__(self) -> str:  # never show secrets in logs or tracebacks
        return f"Login(username={self.username!r})"


class MailboxError(ConnectionProblem):
    """Anything the daemon should log and reconnect on."""


class ImapLoginRefused(MailboxError, LoginRefused):
    """The server refused the login: reconnecting at once cannot help (and risks locking the account)."""


class ConnectionLimit(MailboxError):
    """The server took no more connections for this account (RFC 5530 ``[LIMIT]``, "too many simultaneous
    connections"): her other mail programs hold them. Not a refusal of her password: it passes once one closes."""


class ImapTlsProblem(MailboxError, TlsProblem):
    """TLS cannot work as configured (certificate, or TLS and plain text mixed up): configuration."""


class FolderRefused(AgentError):
    """The server refused to create one of the agent's folders (a NO to CREATE, the connection alive): the name is
    wrong for this server (a namespace prefix it wants, a character it does not take). Configuration: reconnecting
    cannot help. ``prefix``: the personal namespace's prefix, where the server names one."""

    exit_code = EX_CONFIG

    def __init__(self, folder: str, words: str, prefix: str | None = None) -> None:
        super().__init__(f"the server refused to create {folder!r}: {words}")
        self.folder = folder
        self.words = words
        self.prefix = prefix


class CommandRefused(MailboxError):
    """The server answered a command NO (or BAD); the connection itself is fine."""


class ServerTrouble(MailboxError):
    """The server refused a command for now, saying it is its own trouble (RFC 5530: ``[UNAVAILABLE]``,
    ``[SERVERBUG]``, …): tried again after a wait, never taken for configuration (:mod:`agent.rules.server_trouble`)."""


class MessageGone(CommandRefused):
    """The message is no longer where we looked (another agent moved it, or the student deleted it)."""


class SessionExpired(MailboxError):
    """The server ended the session because the OAuth token ran out (Microsoft: ``* BYE Session invalidated -
    AccessTokenExpired``, imapsync #250): reconnect at once with a fresh token; not a failure to back off from."""


_EXPIRED = re.compile(r"AccessTokenExpired|token (has )?expired|expired token", re.IGNORECASE)


def ended(what: str, text: str) -> MailboxError:
    """The error for a session the server ended with ``text``."""
    kind = SessionExpired if _EXPIRED.search(text) else MailboxError
    return kind(f"{what}: {text}")


def refused(what: str, error: BaseException) -> CommandRefused:
    """The error for a command the server refused: MessageGone where it says why is that another session expunged
    a message (RFC 5530 ``[EXPUNGEISSUED]``: Dovecot's NO to a MOVE or COPY of a message another agent moved)."""
    text = describe_error(error)
    kind = MessageGone if "[EXPUNGEISSUED]" in text.upper() else CommandRefused
    return kind(f"{what}: {text}")


class _ConnectFailed(MailboxError):
    """Could not reach the server; worth another attempt."""


def describe_error(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text if len(text) <= 200 else text[:200] + "…"


@contextlib.contextmanager
def imap_errors(what: str) -> Iterator[None]:
    """Turn imapclient, imaplib, socket and TLS failures into MailboxError."""
    try:
        yield
    except MailboxError:
        raise
    except (IMAPClientError, imaplib.IMAP4.error, OSError, ValueError, EOFError) as error:
        raise MailboxError(f"{what}: {describe_error(error)}") from error


def endpoint(imap: Imap) -> Endpoint:
    return Endpoint("imap", imap.host, imap.port, imap.security, imap.ca_file, imap.timeout)


def open_client(imap: Imap, login: Login, ssl_context: ssl.SSLContext | None, pulse: Pulse | None = None) -> IMAPClient:
    """Connect and log in, retrying only failures to reach the server (never a refusal or a TLS problem).
    ``pulse``: counts what the connection moves, and can end it from another thread (agent.mail.stalls.paced)."""
    end = endpoint(imap)

    @retry(
        stop=stop_after_attempt(CONNECT_ATTEMPTS),
        wait=wait_random_exponential(multiplier=0.2, max=5),
        retry=retry_if_exception(lambda error: isinstance(error, _ConnectFailed)),
        reraise=True,
    )
    def attempt() -> IMAPClient:
        where = f"{imap.host}:{imap.port}"
        timeout = imapclient.SocketTimeout(connect=imap.timeout, read=imap.timeout)
        context = None if imap.security == "plain" else ssl_context or client_context(imap.ca_file)
        if pulse is not None:
            if pulse.ended:  # ended under an earlier try: not tried again here (the session is given up)
                raise MailboxError(pulse.ended)
            pulse.begin()
        try:
            make = IMAPClient if pulse is None else functools.partial(PacedClient, pulse=pulse)
            client = make(imap.host, port=imap.port, ssl=imap.security == "tls", ssl_context=context, timeout=timeout)
        except (OSError, IMAPClientError, imaplib.IMAP4.error) as error:
            advice = tls_advice(error, end)
            if advice is None and isinstance(error, TimeoutError):
                advice = plain_to_tls_advice(end)  # no greeting: is it a TLS port spoken to in plain text?
            if advice:
                raise ImapTlsProblem(advice) from error
            words = _server_words(error)
            if _LIMIT.search(words):  # said in the greeting (`* BYE [LIMIT] ...`), not at the login
                raise ConnectionLimit(
                    f"imap: {where} takes no more connections now (other mail programs hold them): {words}"
                ) from error
            raise _ConnectFailed(f"imap: cannot connect to {where}: {describe_error(error)}") from error
        try:
            client.normalise_times = False
            with contextlib.suppress(OSError):
                # imaplib writes a literal and its closing CRLF separately: without this, Nagle's algorithm
                # holds the CRLF back until the server's delayed ACK (about 40 ms per APPEND).
                client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if imap.security == "starttls":
                try:
                    client.starttls(context)
                    if pulse is not None:
                        pulse.attach(client)  # its new reading end
                except (IMAPClientError, imaplib.IMAP4.error, OSError, ValueError) as error:
                    advice = tls_advice(error, end)
                    if advice:
                        raise ImapTlsProblem(advice) from error
                    raise MailboxError(f"imap: STARTTLS with {where}: {describe_error(error)}") from error
            _authenticate(client, imap, login, where)
        except BaseException:
            drop(client)
            raise
        return client

    return attempt()


def _authenticate(client: IMAPClient, imap: Imap, login: Login, where: str) -> None:
    username = login.username or imap.username
    try:
        if login.oauth2_token:
            client.oauth2_login(username, login.oauth2_token)
        else:
            client.login(username, login.password or "")
    except (IMAPClientError, imaplib.IMAP4.error) as error:
        # The server's answer, never what we sent: the password must not reach a log.
        text = _server_words(error)
        if login.password:
            text = text.replace(login.password, "***")
        if "[UNAVAILABLE]" in text.upper():  # RFC 5530: a temporary failure on the server's side
            raise MailboxError(f"imap: login as {username!r} at {where} failed for now: {text}") from error
        if _LIMIT.search(text):
            raise ConnectionLimit(
                f"imap: {where} takes no more connections for {username!r} now (other mail programs hold them): {text}"
            ) from error
        raise ImapLoginRefused(f"imap: login as {username!r} refused by {where}: {text}") from error
    except OSError as error:
        raise MailboxError(f"imap: login at {where} failed: {describe_error(error)}") from error


# RFC 5530's code (Dovecot: "[LIMIT] Maximum number of connections from user+IP exceeded"), and Gmail's words
_LIMIT = re.compile(r"\[LIMIT\]|too many simultaneous connections|maximum number of connections", re.IGNORECASE)


def _server_words(error: BaseException) -> str:
    """imapclient shows the server's answer as ``b'...'``: just the words."""
    text = describe_error(error)
    if len(text) >= 3 and text[:2] in ("b'", 'b"') and text[-1] == text[1]:
        text = text[2:-1]
    return text


def drop(client: IMAPClient) -> None:
    """Close a connection without caring whether the server is still there."""
    with contextlib.suppress(Exception):
        client.shutdown()


def bye_said(client: IMAPClient | None) -> str:
    """The text of an untagged ``* BYE`` that imaplib read on ``client`` before its connection broke, if any (it keeps
    untagged responses aside while a command runs; the EOF that follows would otherwise hide the reason)."""
    imap = getattr(client, "_imap", None)
    stored = getattr(imap, "untagged_responses", None)
    byes = stored.get("BYE") if isinstance(stored, dict) else None
    if byes:
        return " ".join(text_of(bye) for bye in byes if isinstance(bye, bytes | str)).strip()
    return _bye_pending(imap)


def _bye_pending(imap: Any) -> str:
    """A ``* BYE`` the server sent that nobody read yet: a write that failed (the server closed after its BYE while
    a command was being sent: a broken pipe) leaves it in the socket. Looked for briefly, only after a failure."""
    sock = getattr(imap, "sock", None)
    if sock is None or not hasattr(imap, "readline"):
        return ""
    try:
        sock.settimeout(0.2)
        for _ in range(5):
            line = imap.readline()
            if not line:
                return ""
            if line.upper().startswith(b"* BYE"):
                return text_of(line[len(b"* BYE") :]).strip()
    except (OSError, EOFError, ValueError, imaplib.IMAP4.abort):
        return ""
    return ""
