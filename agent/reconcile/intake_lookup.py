"""What the intake asks the ledger about each message new in the Outbox, asked once for the lot.

For each message the intake looks up its row by key, the key of a row going out under its Message-ID (one the agent
gave out itself), whether its Message-ID was found in Sent (sent from her mail program) and whether it is one of
the agent's own e-mails (a digest): four queries a message, most of a backlog's ledger time. :class:`IntakeLookup`
asks them for every message of the pass in a few queries, and answers from that only while nothing was written to
the ledger since (:meth:`Ledger.writes`): once anything was (a row held in the Outbox, a refusal logged), or for a
key it was not asked about (a variant key), it asks the ledger itself, as the intake did one message at a time. So
every answer is what the ledger holds at the moment it is asked.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from agent.rules.envelope import Envelope
from agent.store.answers import found_in_sent, found_in_sent_among
from agent.store.ledger import DONE, OPEN_STATES, Ledger, Row

GIVEN_STATES = (*OPEN_STATES, DONE)  # the rows whose Message-ID the agent gave out and still answers for


class IntakeLookup:
    def __init__(self, ledger: Ledger, envelopes: Iterable[Envelope]) -> None:
        self.ledger = ledger
        read = list(envelopes)
        self.keys = {envelope.key for envelope in read}
        message_ids = {envelope.message_id for envelope in read if envelope.message_id}
        self.message_ids = message_ids
        self.rows = ledger.get_many(self.keys)
        self.given = ledger.keys_of(message_ids, *GIVEN_STATES)
        self.sent = found_in_sent_among(ledger, message_ids)
        self.own = ledger.own_emails(message_ids)
        self.latest = ledger.latest_arrival()
        self.mark = ledger.writes()

    def _fresh(self) -> bool:
        return self.ledger.writes() == self.mark

    def get(self, key: str) -> Row | None:
        """:meth:`Ledger.get`."""
        if key in self.keys and self._fresh():
            return self.rows.get(key)
        return self.ledger.get(key)

    def key_of_given(self, message_id: str) -> str | None:
        """:meth:`Ledger.key_of` in an open state or done."""
        if message_id in self.message_ids and self._fresh():
            keys = self.given.get(message_id, [])
            if len(keys) <= 1:
                return keys[0] if keys else None
        return self.ledger.key_of(message_id, *GIVEN_STATES)

    def found_in_sent(self, message_id: str) -> bool:
        """:func:`agent.store.answers.found_in_sent`."""
        if message_id in self.message_ids and self._fresh():
            return message_id in self.sent
        return found_in_sent(self.ledger, message_id)

    def own_email_at(self, message_id: str) -> datetime | None:
        """:meth:`Ledger.own_emails`: when the agent sent an e-mail of its own under this Message-ID, or None."""
        if message_id in self.message_ids and self._fresh():
            return self.own.get(message_id)
        return self.ledger.own_emails([message_id]).get(message_id)
