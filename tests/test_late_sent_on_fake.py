"""The provider's late Sent copy (issue 20), on the in-memory mailbox: a watch that outlived LATE_FILING while the
agent was asleep or stopped is looked at once more before it is dropped, so that Sent never keeps two copies."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from agent.reconcile.sent_filing import LATE_FILING, tidy_sent
from agent.store import sent_watch
from tests.agent_process import policy_text
from tests.servers.smtp import SmtpServer
from tests.test_passes_on_fake import SENT, Pass, mail


@pytest.fixture
def open_pass(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Pass]:
    made = Pass(tmp_path, smtp_server, policy_text())
    try:
        yield made
    finally:
        made.world.ledger.close()


@pytest.mark.parametrize("provider_filed", [True, False], ids=["the provider's copy came", "it never came"])
def test_a_watch_older_than_late_filing_is_looked_at_once_more(open_pass: Pass, provider_filed: bool) -> None:
    raw = mail("filed late, agent asleep", message_id="<late@med.example.edu>")
    ours = open_pass.server.put(SENT, raw, ["\\Seen"])
    world = open_pass.world
    sent_watch.watch(world.ledger, "<late@med.example.edu>", ours, world.now() - LATE_FILING - timedelta(minutes=1))
    theirs = open_pass.server.put(SENT, raw, ["\\Seen"]) if provider_filed else None
    assert asyncio.run(tidy_sent(world)) is None, "nothing left to watch"
    assert list(open_pass.server.messages(SENT)) == [theirs if provider_filed else ours], "one copy in Sent"
    assert sent_watch.watched(world.ledger) == {}
