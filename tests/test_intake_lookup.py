"""The intake asks the ledger about a whole pass's messages at once (agent.reconcile.intake_lookup): its answers
must stay what the ledger holds when each message is taken in, also after the pass itself wrote a row."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.reconcile.intake import take_in_outbox
from agent.reconcile.intake_lookup import IntakeLookup
from agent.rules.envelope import parse_envelope
from agent.store.ledger import ATTENTION, EARLY
from tests.agent_process import OUTBOX, policy_text
from tests.servers.smtp import SmtpServer
from tests.test_passes_on_fake import Pass, mail

FRIEND = "friend@elsewhere.example.org"


@pytest.fixture
def made(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Pass]:
    made = Pass(tmp_path, smtp_server, policy_text(max_per_day=1))
    try:
        yield made
    finally:
        made.world.ledger.close()


def test_a_row_written_during_the_pass_is_seen_by_the_next_message(made: Pass) -> None:
    # Before any policy, mail to no mentor is held in the Outbox with a row written at once: the second copy of it
    # must find that row (it was not in the ledger when the pass began), not add it a second time.
    raw = mail("to a friend, twice", to=FRIEND)
    made.server.put(OUTBOX, raw)
    made.server.put(OUTBOX, raw)
    asyncio.run(take_in_outbox(made.world, early=True))
    row = made.world.ledger.get(parse_envelope(raw).key)
    assert row is not None and (row.state, row.detail) == (ATTENTION, EARLY)
    assert made.subjects(OUTBOX) == ["to a friend, twice", "to a friend, twice"]


def test_the_lookup_answers_as_the_ledger_does(made: Pass) -> None:
    ledger = made.world.ledger
    first, second = parse_envelope(mail("first")), parse_envelope(mail("second"))
    lookup = IntakeLookup(ledger, [first, second])
    assert lookup.get(first.key) is None and lookup.key_of_given(first.message_id or "") is None
    assert not lookup.found_in_sent(second.message_id or "")
    asyncio.run(take_in_outbox(made.world))  # nothing there: writes nothing
    made.server.put(OUTBOX, mail("first", message_id=first.key))
    asyncio.run(take_in_outbox(made.world))  # a row for "first": written after the lookup asked
    found = lookup.get(first.key)
    assert found is not None and found.subject == "first"
    assert lookup.key_of_given(first.key) == first.key
    assert lookup.get(second.key) is None
