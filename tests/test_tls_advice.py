"""TLS failures say what to do (issue 11): a certificate that does not verify points at ``ca_file``; TLS spoken
to a plain port, or plain text to a TLS port, names the ``security`` to use. Real Dovecot, real aiosmtpd, a
trustme CA; the daemon refuses to start on them (exit 78)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config.settings import Smtp, load_settings
from agent.errors import EX_CONFIG, TlsProblem
from agent.mail.claim import Mailbox
from agent.mail.connection_errors import Endpoint, client_context, describe
from agent.mail.session import ImapTlsProblem
from agent.mail.smtp import SmtpTlsProblem, send, try_login
from tests.agent_process import MENTOR, Agent, agent
from tests.servers.dovecot import Dovecot, User
from tests.servers.fixtures import TlsFiles
from tests.servers.smtp import SmtpServer

__all__ = ["agent"]  # the fixture
pytestmark = pytest.mark.servers
RAW = b"From: sam@med.example.edu\r\nTo: arivera@hospital.example.org\r\nSubject: hi\r\n\r\nhello\r\n"


def connect(dovecot: Dovecot, user: User, **settings: object) -> None:
    with Mailbox(dovecot.settings(user, **settings), Dovecot.login(user)) as mailbox:  # type: ignore[arg-type]
        mailbox.uids("INBOX")


# -- IMAP -------------------------------------------------------------------------------------------------------
def test_imap_tls_to_the_plain_port_says_use_starttls_at_once(dovecot: Dovecot, imap_user: User) -> None:
    started = time.monotonic()
    with pytest.raises(ImapTlsProblem) as caught:
        connect(dovecot, imap_user, security="tls", port=dovecot.port)
    assert f'port {dovecot.port} on 127.0.0.1 is not TLS: use security = "starttls"' in str(caught.value)
    assert caught.value.exit_code == EX_CONFIG
    assert time.monotonic() - started < 3, "not retried like an unreachable server"


@pytest.mark.parametrize("security", ["starttls", "plain"])
def test_imap_plain_text_to_the_tls_port_says_use_tls(dovecot: Dovecot, imap_user: User, security: str) -> None:
    with pytest.raises(ImapTlsProblem) as caught:
        connect(dovecot, imap_user, security=security, port=dovecot.tls_port, timeout=1.0)
    assert f'port {dovecot.tls_port} on 127.0.0.1 speaks TLS from the start: use security = "tls"' in str(caught.value)


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_imap_an_unverifiable_certificate_points_at_ca_file_and_ca_file_works(
    dovecot: Dovecot, imap_user: User, tls_ca: TlsFiles, security: str
) -> None:
    with pytest.raises(ImapTlsProblem) as caught:
        connect(dovecot, imap_user, security=security)
    text = str(caught.value)
    assert "the certificate of 127.0.0.1:" in text and "does not verify" in text
    assert 'set ca_file = "/path/to/ca.pem" in [imap]' in text
    connect(dovecot, imap_user, security=security, ca_file=tls_ca.ca_pem)  # the private CA: it works


# -- SMTP -------------------------------------------------------------------------------------------------------
@pytest.fixture
def smtps_server(tls_ca: TlsFiles) -> Iterator[SmtpServer]:
    """TLS from the first byte, as on port 465."""
    server = SmtpServer(tls=tls_ca, implicit_tls=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def smtp(server: SmtpServer, security: str, **more: object) -> Smtp:
    return Smtp(host=server.host, port=server.port, security=security, timeout=2.0, **more)  # type: ignore[arg-type]


def test_smtp_tls_to_a_plain_port_says_use_starttls(smtp_server: SmtpServer) -> None:
    with pytest.raises(SmtpTlsProblem) as caught:
        asyncio.run(try_login(smtp(smtp_server, "tls"), None))
    assert f'port {smtp_server.port} on 127.0.0.1 is not TLS: use security = "starttls" in [smtp]' in str(caught.value)


@pytest.mark.parametrize("security", ["starttls", "plain"])
def test_smtp_plain_text_to_a_tls_port_says_use_tls(smtps_server: SmtpServer, security: str) -> None:
    with pytest.raises(SmtpTlsProblem) as caught:
        asyncio.run(try_login(smtp(smtps_server, security), None))
    assert f'port {smtps_server.port} on 127.0.0.1 speaks TLS from the start: use security = "tls"' in str(caught.value)


def test_smtp_starttls_where_none_is_offered_says_so(smtp_server: SmtpServer) -> None:
    with pytest.raises(SmtpTlsProblem, match="does not offer STARTTLS"):
        asyncio.run(try_login(smtp(smtp_server, "starttls"), None))


def test_smtp_an_unverifiable_certificate_points_at_ca_file_and_ca_file_works(
    smtp_tls_server: SmtpServer, smtps_server: SmtpServer, tls_ca: TlsFiles
) -> None:
    with pytest.raises(SmtpTlsProblem) as caught:
        asyncio.run(send(smtp(smtp_tls_server, "starttls"), None, RAW, "sam@med.example.edu", [MENTOR]))
    assert 'set ca_file = "/path/to/ca.pem" in [smtp]' in str(caught.value)
    assert smtp_tls_server.messages == []
    asyncio.run(send(smtp(smtps_server, "tls", ca_file=tls_ca.ca_pem), None, RAW, "sam@med.example.edu", [MENTOR]))
    assert len(smtps_server.messages) == 1


def test_describe_gives_the_same_line_for_reuse(smtp_server: SmtpServer) -> None:
    end = Endpoint("smtp", smtp_server.host, smtp_server.port, "tls")
    try:
        asyncio.run(try_login(smtp(smtp_server, "tls"), None))
    except TlsProblem as error:
        assert describe(error, end) == str(error)
    import ssl

    assert "is not TLS" in describe(ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"), end)
    imap = Endpoint("imap", "127.0.0.1", 143, "starttls")
    from imapclient.exceptions import CapabilityError

    assert "does not offer STARTTLS" in describe(CapabilityError("Server does not support STARTTLS capability"), imap)


# -- settings and the daemon ------------------------------------------------------------------------------------
def test_ca_file_is_relative_to_the_config_file_and_must_exist(tmp_path: Path, tls_ca: TlsFiles) -> None:
    (tmp_path / "ca.pem").write_bytes(tls_ca.ca_pem.read_bytes())
    config = tmp_path / "config.toml"
    config.write_text('[imap]\nca_file = "ca.pem"\n[smtp]\nca_file = "missing.pem"\n')
    with pytest.raises(Exception) as caught:
        load_settings(config)
    assert "smtp.ca_file" in str(caught.value) and "no such file" in str(caught.value)
    config.write_text('[imap]\nca_file = "ca.pem"\n')
    assert load_settings(config).imap.ca_file == tmp_path / "ca.pem"


def _run(agent: Agent) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", "run", "--config", str(agent.config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=agent.root,
    )


def test_the_daemon_refuses_to_start_on_imap_tls_to_a_plain_port(agent: Agent) -> None:
    agent.config.write_text(agent.config.read_text().replace('security = "plain"', 'security = "tls"', 1))
    result = _run(agent)
    assert result.returncode == 78, result.stderr
    assert 'is not TLS: use security = "starttls" in [imap]' in result.stderr
    assert "Traceback" not in result.stderr


def test_the_daemon_refuses_to_start_on_an_smtp_certificate_it_cannot_verify(
    agent: Agent, smtp_tls_server: SmtpServer
) -> None:
    agent.smtp = smtp_tls_server
    agent.write_config()
    head, _, rest = agent.config.read_text().partition("[smtp]")
    agent.config.write_text(head + "[smtp]" + rest.replace('security = "plain"', 'security = "starttls"'))
    result = _run(agent)
    assert result.returncode == 78, result.stderr
    assert "smtp: the certificate of 127.0.0.1:" in result.stderr and "ca_file" in result.stderr
    assert "Traceback" not in result.stderr


def test_one_tls_context_per_ca_file_is_shared_until_the_file_changes(tmp_path: Path, tls_ca: TlsFiles) -> None:
    """Loading a CA bundle costs ~20 ms of CPU per connection; the daemon opens five at start."""
    ca = tmp_path / "ca.pem"
    ca.write_bytes(tls_ca.ca_pem.read_bytes())
    first = client_context(ca)
    assert client_context(ca) is first
    assert client_context(None) is client_context(None) is not first  # the system's CAs: one context too
    ca.write_bytes(tls_ca.ca_pem.read_bytes() + b"\n")  # the CA file changed: a new context, from the new file
    assert client_context(ca) is not first
