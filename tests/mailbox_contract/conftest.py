"""The implementations the contract suite runs against, as one parametrized fixture ``contract``:

- ``dovecot``: :class:`agent.mail.claim.Mailbox` against the real Dovecot of tests/servers (a fresh user);
- ``pymap``: the same Mailbox against the demo's pymap server (agent/demo/servers.py, a fresh server);
- ``memory``: the in-memory fake (tests/fakes/memory_mailbox.py).

The tests in this package assert the same things of all three. What an implementation truly lacks is listed
in ``LACKS`` with the reason, and a test that needs it is skipped for that implementation only.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import pytest
from pydantic import SecretStr

from agent.config.settings import Folders, Imap
from agent.mail.claim import Mailbox
from agent.mail.port import MailboxPort, ResolvedFolders
from agent.mail.session import Login
from tests.fakes.memory_mailbox import MemoryMailbox, MemoryServer

IMPLEMENTATIONS = ["dovecot", "pymap", "memory"]

# What an implementation does not offer, and why (a test that needs it says so with contract.needs(...)).
LACKS: dict[str, dict[str, str]] = {
    "pymap": {
        "special-use": "pymap's dict backend has no SPECIAL-USE (RFC 6154): the agent falls back to 'Sent' by name",
        "keywords": "pymap's dict backend keeps only the system flags (no \\* in PERMANENTFLAGS): a custom "
        "keyword is dropped, as at Microsoft 365, and the agent moves without claims there",
        "claims": "pymap has no CONDSTORE (RFC 7162): the agent moves without a claim keyword there, so a "
        "keyword set by another agent is not a claim pymap's MOVE could respect",
    },
}


class ContractMailbox(MailboxPort, Protocol):
    """The interface, plus the set-up the suite needs (not part of what the reconcile layer uses)."""

    def resolve_folders(self, folders: Folders) -> ResolvedFolders: ...

    def ensure_folder(self, folder: str) -> None: ...

    def special_drafts(self) -> str | None: ...

    def remove_flags(self, folder: str, uid: int, flags: Sequence[str]) -> None: ...


@dataclass
class Contract:
    name: str
    box: ContractMailbox
    folders: ResolvedFolders
    other: Callable[[], contextlib.AbstractContextManager[ContractMailbox]]  # a second agent's session

    def needs(self, feature: str) -> None:
        reason = LACKS.get(self.name, {}).get(feature)
        if reason:
            pytest.skip(reason)


def _imap_contract(name: str, imap: Imap, login: Login) -> Iterator[Contract]:
    @contextlib.contextmanager
    def other() -> Iterator[ContractMailbox]:
        with Mailbox(imap, login) as second:
            yield second

    with Mailbox(imap, login) as box:
        folders = box.resolve_folders(Folders())
        yield Contract(name, box, folders, other)


@pytest.fixture(params=IMPLEMENTATIONS)
def contract(request: pytest.FixtureRequest) -> Iterator[Contract]:
    if request.param == "dovecot":
        imap: Imap = request.getfixturevalue("imap")
        login: Login = request.getfixturevalue("imap_login")
        yield from _imap_contract("dovecot", imap, login)
    elif request.param == "pymap":
        from agent.demo.servers import ImapServer

        password = secrets.token_hex(8)
        server = ImapServer("sam", password)
        server.start()
        try:
            settings = Imap(
                host="127.0.0.1",
                port=server.port,
                security="plain",
                username="sam",
                password=SecretStr(password),
                timeout=10,
            )
            yield from _imap_contract("pymap", settings, Login("sam", password))
        finally:
            server.stop()
    else:
        shared = MemoryServer()

        @contextlib.contextmanager
        def other() -> Iterator[ContractMailbox]:
            with MemoryMailbox(shared, agent_id="other") as second:
                yield second

        box = MemoryMailbox(shared)
        yield Contract("memory", box, box.resolve_folders(Folders()), other)
