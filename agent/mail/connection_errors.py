"""Connection failures in the user's words: what went wrong and which setting to change.

Shared by everything that connects (the daemon at start and while running, ``release``/``cancel``,
``check --connect``): :func:`tls_advice` turns a TLS failure into advice, :func:`plain_to_tls_advice` explains
a server that never greets us (plain text spoken to a TLS port), and :func:`describe` gives the one line for
any exception a connection attempt raised.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from agent.errors import AgentError

__all__ = ["Endpoint", "client_context", "describe", "plain_to_tls_advice", "speaks_tls", "tls_advice"]

TLS_PORTS = {"imap": 993, "smtp": 465}
STARTTLS_PORTS = {"imap": 143, "smtp": 587}
_NOT_TLS = (
    "wrong_version_number",
    "wrong version number",
    "record layer failure",
    "packet length too long",
    "unknown protocol",
    "http request",
    "unexpected eof while reading",
)


@dataclass(frozen=True)
class Endpoint:
    """Where a connection went, as the config says it: ``section`` is "imap" or "smtp"."""

    section: str
    host: str
    port: int
    security: str
    ca_file: Path | None = None
    timeout: float = 10.0

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


_contexts: dict[tuple[str, tuple[int, ...] | None], ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


def _saved(file: str | None) -> tuple[int, ...] | None:
    """Which save of the CA file this is (None: not there): a new save is read again, also one swapped in with
    the old size and time (its inode and change time differ; the change time cannot be set back)."""
    try:
        found = os.stat(file) if file else None
    except OSError:
        return None
    return (found.st_ino, found.st_mtime_ns, found.st_ctime_ns, found.st_size) if found else None


def client_context(ca_file: Path | None) -> ssl.SSLContext:
    """Verify servers against the system's CAs, or only against ``ca_file`` (a private CA) when given.

    One context per CA file, shared by every connection (each context holds its own copy of the CA store:
    ~0.8 MB for the system's); a CA file (or the system's bundle) saved again gets a new one."""
    file = str(ca_file) if ca_file else None
    key = (file or "", _saved(file or ssl.get_default_verify_paths().cafile))
    with _contexts_lock:
        context = _contexts.get(key)
        if context is None:
            for old in [k for k in _contexts if k[0] == key[0]]:
                del _contexts[old]
            context = _contexts[key] = ssl.create_default_context(cafile=file)
        return context


def _chain(error: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in found and len(found) < 10:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def tls_advice(error: BaseException, end: Endpoint) -> str | None:
    """The user-facing line for a TLS failure, or None when ``error`` is not one."""
    section = end.section
    for cause in _chain(error):
        if isinstance(cause, ssl.SSLCertVerificationError):
            reason = cause.verify_message or str(cause)
            if "hostname mismatch" in reason.lower() or "ip address mismatch" in reason.lower():
                return (
                    f"{section}: the certificate of {end.where} is not valid for {end.host!r} ({reason}): "
                    f"set host in [{section}] to a name the certificate names"
                )
            if "expired" in reason.lower():
                return (
                    f"{section}: the certificate of {end.where} has expired ({reason}): the server's "
                    "administrator must renew it"
                )
            if end.ca_file:
                return (
                    f"{section}: the certificate of {end.where} does not verify against ca_file "
                    f"{end.ca_file} ({reason}): is that the CA that signed the server's certificate?"
                )
            return (
                f"{section}: the certificate of {end.where} does not verify ({reason}): if the server uses "
                f'a private CA, set ca_file = "/path/to/ca.pem" in [{section}]'
            )
        text = str(cause).lower()
        if isinstance(cause, ssl.SSLError) and any(marker in text for marker in _NOT_TLS):
            if end.security == "tls":
                return (
                    f'{section}: port {end.port} on {end.host} is not TLS: use security = "starttls" in '
                    f"[{section}] (or the server's TLS port, usually {TLS_PORTS[section]})"
                )
            return f"{section}: TLS with {end.where} failed ({cause}): check port and security in [{section}]"
        if "starttls" in text and ("not supported" in text or "does not support" in text):
            return (
                f"{section}: {end.where} does not offer STARTTLS: use the server's TLS port (usually "
                f'{TLS_PORTS[section]}) with security = "tls" in [{section}]'
            )
        if "auth extension is not supported" in text and end.security == "plain":
            return (
                f"{section}: {end.where} offers no login over an unencrypted connection: use security = "
                f'"starttls" (or "tls" with port {TLS_PORTS[section]}) in [{section}]'
            )
    return None


def speaks_tls(host: str, port: int, timeout: float) -> bool:
    """Whether a TLS handshake succeeds on host:port (nothing is sent after it; the certificate is not judged)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            return True
    except (OSError, ValueError):
        return False


def plain_to_tls_advice(end: Endpoint) -> str | None:
    """For a server that did not greet us in time: is it a TLS port spoken to in plain text?"""
    if end.security == "tls" or not speaks_tls(end.host, end.port, min(end.timeout, 5.0)):
        return None
    return (
        f'{end.section}: port {end.port} on {end.host} speaks TLS from the start: use security = "tls" in '
        f"[{end.section}] (or the server's STARTTLS port, usually {STARTTLS_PORTS[end.section]}, "
        'with security = "starttls")'
    )


def describe(error: BaseException, end: Endpoint | None = None) -> str:
    """One line for whatever a connection attempt raised (for ``check --connect`` and the like)."""
    if isinstance(error, AgentError):
        return " ".join(error.lines())
    if end is not None:
        advice = tls_advice(error, end)
        if advice:
            return advice
    text = str(error).strip() or type(error).__name__
    prefix = f"{end.section}: {end.where}: " if end is not None else ""
    return prefix + (text if len(text) <= 200 else text[:200] + "…")
