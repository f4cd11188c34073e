"""pytest fixtures for the provider emulations (import them in a conftest or a test module).

- ``provider_dovecots`` (session) ``get(profile_name) -> Dovecot``: one Dovecot per profile, started on first use,
                                  with the profile's folders (its Sent, Outlook's Outbox, Gmail's All Mail ...).
- ``provider_stack``    (function) ``make(profile) -> Stack``: a fresh user on that profile's Dovecot, a proxy
                                  with the profile in front of it, and the profile's SMTP server for that user;
                                  all stopped after the test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from imapclient import IMAPClient

from tests.servers import dovecot as dovecot_module
from tests.servers.dovecot import Dovecot, User
from tests.servers.fixtures import TlsFiles
from tests.servers.providers.profiles import Profile
from tests.servers.providers.proxy import ProviderProxy
from tests.servers.providers.smtp import ProviderSmtp

__all__ = ["Stack", "provider_dovecots", "provider_stack"]


@dataclass
class Stack:
    """One test's view of a provider: its Dovecot, a user, the proxy and the SMTP server."""

    profile: Profile
    dovecot: Dovecot
    user: User
    proxy: ProviderProxy
    smtp: ProviderSmtp

    @contextlib.contextmanager
    def client(self) -> Iterator[IMAPClient]:
        """A plain imapclient connection through the proxy, logged in as the user (what a mail app sees)."""
        client = IMAPClient(self.proxy.host, port=self.proxy.port, ssl=False, timeout=10)
        try:
            client.login(self.user.username, self.user.password)
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()
            with contextlib.suppress(Exception):
                client.shutdown()


@pytest.fixture(scope="session")
def provider_dovecots(tls_ca: TlsFiles) -> Iterator[Callable[[Profile], Dovecot]]:
    reason = dovecot_module.available()
    if reason:
        pytest.skip(reason)
    servers: dict[str, Dovecot] = {}

    def get(profile: Profile) -> Dovecot:
        server = servers.get(profile.name)
        if server is None:
            server = Dovecot(tls_ca.cert_pem, tls_ca.key_pem, tls_ca.ca_pem, mailboxes=profile.folders)
            servers[profile.name] = server
        server.start()  # again, if a test stopped it
        return server

    try:
        yield get
    finally:
        for server in servers.values():
            server.cleanup()


@pytest.fixture
def provider_stack(provider_dovecots: Callable[[Profile], Dovecot]) -> Iterator[Callable[[Profile], Stack]]:
    made: list[Stack] = []

    def make(profile: Profile) -> Stack:
        dovecot = provider_dovecots(profile)
        user = dovecot.new_user()
        proxy = ProviderProxy(profile, upstream_port=dovecot.port)
        proxy.start()
        smtp = ProviderSmtp(profile, dovecot, user)
        smtp.start()
        stack = Stack(profile, dovecot, user, proxy, smtp)
        made.append(stack)
        return stack

    try:
        yield make
    finally:
        for stack in made:
            stack.smtp.stop()
            stack.proxy.stop()
