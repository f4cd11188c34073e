"""TLS contexts cost memory (issue 21): each one holds its own copy of the CA store (~0.8 MB of the system's).
A plain connection builds none; the daemon's four IMAP connections share one; a CA file saved again is read
again. Real Dovecot with a trustme CA."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from agent.config.settings import Security
from agent.mail.claim import Mailbox
from agent.mail.connection_errors import client_context
from tests.servers.dovecot import Dovecot, User
from tests.servers.fixtures import TlsFiles

pytestmark = pytest.mark.servers


def test_a_plain_connection_builds_no_tls_context(dovecot: Dovecot, imap_user: User) -> None:
    with Mailbox(dovecot.settings(imap_user, security="plain"), Dovecot.login(imap_user)) as mailbox:
        mailbox.uids("INBOX")
        assert mailbox.client.ssl_context is None


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_connections_with_tls_share_one_context(
    dovecot: Dovecot, imap_user: User, tls_ca: TlsFiles, security: Security
) -> None:
    settings = dovecot.settings(imap_user, security=security, ca_file=tls_ca.ca_pem)
    with Mailbox(settings, Dovecot.login(imap_user)) as first, Mailbox(settings, Dovecot.login(imap_user)) as second:
        first.uids("INBOX")
        second.uids("INBOX")
        assert first.client.ssl_context is not None
        assert first.client.ssl_context is second.client.ssl_context


def test_a_ca_file_saved_again_is_read_again(tmp_path: Path, tls_ca: TlsFiles) -> None:
    ca_file = tmp_path / "ca.pem"
    shutil.copy(tls_ca.ca_pem, ca_file)
    context = client_context(ca_file)
    assert client_context(ca_file) is context
    assert client_context(None) is not context  # the system's CAs: another context
    stat = ca_file.stat()
    os.utime(ca_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # saved again, a second later
    assert client_context(ca_file) is not context


def test_a_ca_file_replaced_by_another_of_the_same_size_and_time_is_read_again(
    tmp_path: Path, tls_ca: TlsFiles
) -> None:
    """Found by the tester (issue 21): another CA swapped in with the old size and time kept the old context, so
    the old CA stayed trusted and the new one was not, until a restart."""
    ca_file = tmp_path / "ca.pem"
    shutil.copy(tls_ca.ca_pem, ca_file)
    context = client_context(ca_file)
    stat = ca_file.stat()
    other = tmp_path / "other.pem"
    other.write_bytes(ca_file.read_bytes())  # stands for another CA: what matters is a new save
    os.utime(other, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    other.replace(ca_file)  # swapped in: another inode, the same size and time
    assert client_context(ca_file) is not context
