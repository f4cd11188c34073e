"""pytest fixtures for the real test servers (imported by tests/conftest.py).

- ``tls_ca``       (session)  a trustme CA and a server certificate for 127.0.0.1/localhost, as files.
- ``dovecot_server`` (session) the Dovecot instance itself: one per pytest-xdist worker (its own directory, instance
                              name and ports).
- ``dovecot``      (function) the session's running :class:`~tests.servers.dovecot.Dovecot`; restarted for the next test
                              if a test stopped or killed it.
- ``imap_user``    (function) a fresh Dovecot user with an empty mailbox.
- ``imap``         (function) :class:`agent.config.settings.Imap` for that user (plain IMAP on loopback).
- ``imap_login``   (function) :class:`agent.mail.session.Login` for that user.
- ``smtp_server``  (function) a plain aiosmtpd :class:`~tests.servers.smtp.SmtpServer`.
- ``smtp_tls_server`` (function) the same with STARTTLS (trustme) and AUTH PLAIN/LOGIN required.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.config.settings import Imap
from agent.mail.session import Login
from tests.servers import dovecot as dovecot_module
from tests.servers.dovecot import Dovecot, User
from tests.servers.smtp import SmtpServer

__all__ = [
    "TlsFiles",
    "dovecot",
    "dovecot_server",
    "imap",
    "imap_login",
    "imap_user",
    "smtp_server",
    "smtp_tls_server",
    "tls_ca",
]


@dataclass(frozen=True)
class TlsFiles:
    ca_pem: Path
    cert_pem: Path  # certificate chain for 127.0.0.1 and localhost
    key_pem: Path


@pytest.fixture(scope="session")
def tls_ca() -> Iterator[TlsFiles]:
    trustme = pytest.importorskip("trustme", reason="trustme is needed for the TLS test servers")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    with tempfile.TemporaryDirectory(prefix="mad-tls-") as directory:
        root = Path(directory)
        root.chmod(0o755)
        files = TlsFiles(root / "ca.pem", root / "cert.pem", root / "key.pem")
        ca.cert_pem.write_to_path(str(files.ca_pem))
        server.private_key_and_cert_chain_pem.write_to_path(str(files.cert_pem))
        server.private_key_pem.write_to_path(str(files.key_pem))
        yield files


@pytest.fixture(scope="session")
def dovecot_server(tls_ca: TlsFiles) -> Iterator[Dovecot]:
    reason = dovecot_module.available()
    if reason:
        pytest.skip(reason)
    server = Dovecot(tls_ca.cert_pem, tls_ca.key_pem, tls_ca.ca_pem)
    try:
        for _attempt in range(2):  # free_port() can hand two parallel workers the same port: then take others
            try:
                server.start()
                break
            except RuntimeError:
                server.cleanup()
                server = Dovecot(tls_ca.cert_pem, tls_ca.key_pem, tls_ca.ca_pem)
        else:
            server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def dovecot(dovecot_server: Dovecot) -> Dovecot:
    """The session's Dovecot, running (a previous test may have stopped it)."""
    dovecot_server.start()
    return dovecot_server


@pytest.fixture
def imap_user(dovecot: Dovecot) -> User:
    return dovecot.new_user()


@pytest.fixture
def imap(dovecot: Dovecot, imap_user: User) -> Imap:
    return dovecot.settings(imap_user)


@pytest.fixture
def imap_login(imap_user: User) -> Login:
    return Dovecot.login(imap_user)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp_tls_server(tls_ca: TlsFiles) -> Iterator[SmtpServer]:
    server = SmtpServer(tls=tls_ca, auth=("mentor-agent", "s3cret-pw"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
