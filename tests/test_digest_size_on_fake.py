"""A digest the mail server refuses as too large (552) goes again in smaller e-mails, found by a hostile round on
2bd3b9f: when the agent had not heard the server's SIZE (its check at the start failed: the server was down) or the
server takes less than it said, every message of the digest went to Needs attention with "Fix it", though none was
at fault (whole passes on the in-memory mailbox, sending to a real aiosmtpd that takes at most 200,000 bytes)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from agent.mail import message_size
from agent.mail.message_size import refused_as_too_large
from tests.agent_process import OUTBOX, policy_text
from tests.servers.smtp import SmtpServer
from tests.test_passes_on_fake import Pass, mail

LINE = "x" * 70 + "\r\n"


@pytest.fixture
def small_server() -> Iterator[SmtpServer]:
    server = SmtpServer(size_limit=200_000)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def large(subject: str) -> bytes:
    return mail(subject).replace(b"Hello.\r\n", f"{subject.upper()}-TEXT\r\n{LINE * 1100}".encode())  # 80 kB


def test_a_digest_refused_as_too_large_goes_again_smaller(tmp_path: Path, small_server: SmtpServer) -> None:
    made = Pass(tmp_path, small_server, policy_text(max_per_day=1, over_limit="batch"))
    try:
        made.server.put(OUTBOX, mail("first"))
        made.run()
        assert made.received() == ["first"]
        for subject in ("alpha", "beta", "gamma"):
            made.server.put(OUTBOX, large(subject))
        made.run()
        message_size._ADVERTISED.clear()  # a new start whose check found the server down: its SIZE not heard
        message_size._REFUSED.clear()
        for _ in range(5):
            later = made.world.now() + timedelta(days=1)
            made.world.clock = lambda later=later: later  # type: ignore[misc]
            made.run()
            made.run()
        texts = b"".join(received.content for received in small_server.messages[1:])
        assert all(f"{name.upper()}-TEXT".encode() in texts for name in ("alpha", "beta", "gamma"))
        assert all(texts.count(f"{name.upper()}-TEXT".encode()) == 1 for name in ("alpha", "beta", "gamma"))
        assert made.subjects("Needs attention") == []
        assert not [subject for subject in made.subjects("INBOX") if "Not sent" in subject]
    finally:
        made.world.ledger.close()


def test_what_counts_as_refused_for_its_size() -> None:
    assert refused_as_too_large("552 5.3.4 Message size exceeds fixed maximum message size")
    assert refused_as_too_large("552 Error: Too much mail data")
    assert not refused_as_too_large("552 5.2.2 Mailbox full")
    assert not refused_as_too_large("552 5.2.2 Mailbox size limit exceeded")  # hers full, not this one too large
    assert not refused_as_too_large("552 Mailbox size limit exceeded")  # the same without an enhanced code
    assert not refused_as_too_large("552 Requested mail action aborted: exceeded storage allocation")
    assert not refused_as_too_large("554 5.3.4 Message too big")  # another code: not this rule's


def test_a_size_learned_from_a_refusal_outlasts_the_greeting(small_server: SmtpServer) -> None:
    """A server that says it takes 32 MB and refuses 200 kB: what it refused is kept, whatever it says next (each
    greeting wrote over it, and every day's digest was refused three or four times again)."""
    from agent.config.settings import Smtp

    smtp = Smtp(host="127.0.0.1", port=small_server.port, security="plain")
    message_size._ADVERTISED[(smtp.host, smtp.port)] = 32_000_000
    message_size.learn_size(smtp, 240_000)
    message_size._ADVERTISED[(smtp.host, smtp.port)] = 32_000_000  # greeted again: it says 32 MB once more
    assert message_size.advertised_size(smtp) == 216_000
