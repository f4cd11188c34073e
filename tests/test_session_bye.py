"""A BYE that imaplib read before the connection broke names why the session ended: a command that then fails
with EOF is a token that ran out (reconnect at once with a fresh one), not a lost connection to back off from.
(The real-server case is tests/test_provider_daemon.py's token expiry; there the BYE and the EOF race.)"""

from __future__ import annotations

import imaplib
from types import SimpleNamespace
from typing import Any, cast

import pytest

from agent.config.settings import Imap
from agent.mail.client import Connection
from agent.mail.session import Login, MailboxError, SessionExpired


def connection_that_read(untagged: dict[str, list[bytes]]) -> Connection:
    connection = Connection(cast(Imap, None), cast(Login, None))
    connection._client = cast(Any, SimpleNamespace(_imap=SimpleNamespace(untagged_responses=untagged)))
    return connection


def eof() -> None:
    raise imaplib.IMAP4.abort("socket error: EOF")


def test_an_eof_after_a_bye_for_an_expired_token_is_a_session_expired() -> None:
    connection = connection_that_read({"BYE": [b"Session invalidated - AccessTokenExpired"]})
    with pytest.raises(SessionExpired, match="AccessTokenExpired"):
        connection._run("NOOP", eof)


def test_an_eof_without_a_bye_is_a_lost_connection() -> None:
    connection = connection_that_read({})
    with pytest.raises(MailboxError, match="EOF") as raised:
        connection._run("NOOP", eof)
    assert not isinstance(raised.value, SessionExpired)


def test_a_broken_pipe_with_a_bye_still_unread_is_a_session_expired() -> None:
    """The server sent its BYE and closed while a command was being written (the CI run's race: a broken pipe,
    nothing read yet): the BYE still waiting in the socket names the reason."""
    import socket

    ours, server = socket.socketpair()
    server.sendall(b"* BYE Session invalidated - AccessTokenExpired\r\n")
    server.close()
    imap = imaplib.IMAP4.__new__(imaplib.IMAP4)
    imap.sock = ours
    imap.file = ours.makefile("rb")
    imap.untagged_responses = {}
    connection = Connection(cast(Imap, None), cast(Login, None))
    connection._client = cast(Any, SimpleNamespace(_imap=imap))

    def broken_pipe() -> None:
        raise BrokenPipeError(32, "Broken pipe")

    try:
        with pytest.raises(SessionExpired, match="AccessTokenExpired"):
            connection._run("UID SEARCH", broken_pipe)
    finally:
        imap.file.close()
        ours.close()
