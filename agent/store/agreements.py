"""The agreements proposed to mentors and their answers, in the ledger.

One row per proposal (``mentor-agent agree``): its Message-ID (her answer is found by In-Reply-To/References
to it), the standards as proposed, the version it would become, and then her answer and whether it was
applied to the policy file. Review notices already given are kept so each is given once.

The tables are made here on first use (``CREATE TABLE IF NOT EXISTS``) rather than by a ledger migration, so
this module can be merged beside other changes to the ledger's schema; a later migration may adopt them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agent.rules.localtime import elapsed
from agent.store.ledger import Ledger

_TABLES = """
CREATE TABLE IF NOT EXISTS agreements (
    message_id TEXT PRIMARY KEY,      -- of the proposal e-mail
    mentor TEXT NOT NULL,             -- policy id
    version INTEGER NOT NULL,         -- what the policy's [agreement] version becomes once agreed
    proposed TEXT NOT NULL,           -- when `agree` made it
    standards TEXT NOT NULL,          -- JSON: [{"number", "path", "text"}] as proposed
    answer_id TEXT,                   -- Message-ID of her answer
    answered TEXT,                    -- when she answered
    outcome TEXT,                     -- accepted, changed, unclear
    changes TEXT,                     -- JSON: {"email.max_per_week": 2, …} as the policy file writes them
    said TEXT,                        -- JSON: [[number, label, proposed text, her text]] for the student
    applied TEXT                      -- when `agree --apply` wrote it into the policy file
);
CREATE TABLE IF NOT EXISTS agreement_answers (
    answer_id TEXT PRIMARY KEY,       -- each answer of hers is read and told once, across restarts
    message_id TEXT NOT NULL,         -- the proposal it answers
    read TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS agreement_reviews (
    mentor TEXT NOT NULL,
    due TEXT NOT NULL,                -- the review's date (agreed_on + review_every)
    told TEXT NOT NULL,
    PRIMARY KEY (mentor, due)
);
"""


@dataclass(frozen=True)
class Proposal:
    message_id: str
    mentor: str
    version: int
    proposed: datetime
    standards: list[dict[str, Any]]
    answer_id: str | None
    answered: datetime | None
    outcome: str | None
    changes: dict[str, Any]
    said: list[list[Any]]
    applied: datetime | None


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class Agreements:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.db = ledger.db
        self.db.executescript(_TABLES)

    def propose(
        self, message_id: str, mentor: str, version: int, at: datetime, standards: list[dict[str, Any]]
    ) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO agreements(message_id, mentor, version, proposed, standards) VALUES (?,?,?,?,?)",
            (message_id, mentor, version, at.astimezone(UTC).isoformat(), json.dumps(standards)),
        )

    def _rows(self, where: str, args: tuple[Any, ...]) -> list[Proposal]:
        found = []
        for row in self.db.execute(f"SELECT * FROM agreements WHERE {where} ORDER BY proposed", args):
            found.append(
                Proposal(
                    message_id=row["message_id"],
                    mentor=row["mentor"],
                    version=int(row["version"]),
                    proposed=datetime.fromisoformat(row["proposed"]),
                    standards=json.loads(row["standards"]),
                    answer_id=row["answer_id"],
                    answered=_time(row["answered"]),
                    outcome=row["outcome"],
                    changes=json.loads(row["changes"] or "{}"),
                    said=json.loads(row["said"] or "[]"),
                    applied=_time(row["applied"]),
                )
            )
        return found

    def waiting(self) -> dict[str, Proposal]:
        """Proposals not answered yet (or answered in words that could not be read), by their Message-ID."""
        return {
            p.message_id: p for p in self._rows("(answer_id IS NULL OR outcome = 'unclear') AND applied IS NULL", ())
        }

    def listening(self) -> dict[str, Proposal]:
        """Every proposal, by its Message-ID: her answers are read whenever they come, also a later one after an
        answer was recorded or applied (she may take it back)."""
        return {p.message_id: p for p in self._rows("1", ())}

    def get(self, message_id: str) -> Proposal | None:
        rows = self._rows("message_id = ?", (message_id,))
        return rows[0] if rows else None

    def first_reading(self, answer_id: str, message_id: str, at: datetime) -> bool:
        """Whether her answer ``answer_id`` is read for the first time (then it is marked as read)."""
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO agreement_answers(answer_id, message_id, read) VALUES (?,?,?)",
            (answer_id, message_id, at.astimezone(UTC).isoformat()),
        )
        return cursor.rowcount > 0

    def to_apply(self, mentor: str | None = None) -> list[Proposal]:
        """Answers read as "fine" or as changed values that were not applied yet (of one mentor), oldest first."""
        where = "answer_id IS NOT NULL AND applied IS NULL AND outcome IN ('accepted', 'changed')"
        if mentor is None:
            return self._rows(where, ())
        return self._rows(where + " AND mentor = ?", (mentor,))

    def all(self) -> list[Proposal]:
        """Every proposal, oldest first."""
        return self._rows("1", ())

    def latest(self, mentor: str) -> Proposal | None:
        rows = self._rows("mentor = ?", (mentor,))
        return rows[-1] if rows else None

    def answered(
        self,
        message_id: str,
        *,
        answer_id: str,
        at: datetime,
        outcome: str,
        changes: dict[str, Any],
        said: list[list[Any]],
    ) -> bool:
        """Record her answer: the first one, or one written later than the one recorded (it supersedes it: "please
        ignore my last e-mail"), until it is applied. True when it was recorded."""
        when = at.astimezone(UTC).isoformat()
        cursor = self.db.execute(
            "UPDATE agreements SET answer_id = ?, answered = ?, outcome = ?, changes = ?, said = ? "
            "WHERE message_id = ? AND applied IS NULL AND (answer_id IS NULL OR (answer_id != ? AND answered <= ?))",
            (answer_id, when, outcome, json.dumps(changes), json.dumps(said), message_id, answer_id, when),
        )
        return cursor.rowcount > 0

    def applied(self, message_id: str, at: datetime) -> None:
        self.db.execute(
            "UPDATE agreements SET applied = ? WHERE message_id = ?", (at.astimezone(UTC).isoformat(), message_id)
        )

    def review_told(self, mentor: str, due: str) -> bool:
        found = self.db.execute("SELECT 1 FROM agreement_reviews WHERE mentor = ? AND due = ?", (mentor, due))
        return found.fetchone() is not None

    def tell_review(self, mentor: str, due: str, at: datetime) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO agreement_reviews(mentor, due, told) VALUES (?,?,?)",
            (mentor, due, at.astimezone(UTC).isoformat()),
        )

    def answer_times(self, mentor: str, start: datetime, end: datetime, addresses: tuple[str, ...]) -> list[float]:
        """Hours from each message she received to her reply that answered it, for replies in [start, end).

        Our own small measure for the review notice (sent → her reply, from the ledger's items and replies);
        ``status`` may get a shared one later.
        """
        items = self.ledger.history(mentor, datetime.min.replace(tzinfo=UTC), addresses, in_doubt=False)
        sent = {m: item.at for item in items.sent for m in item.ids}
        hours = []
        for reply in items.replies:
            if start <= reply.at < end and reply.to in sent:
                hours.append(elapsed(sent[reply.to], reply.at).total_seconds() / 3600)
        return hours


def proposes(ledger: Ledger, message_ids: Sequence[str]) -> bool:
    """Whether one of ``message_ids`` is an agreement proposal the student sent (without making the tables)."""
    if not message_ids or "agreements" not in ledger.tables():
        return False
    marks = ", ".join("?" for _ in message_ids)
    query = f"SELECT 1 FROM agreements WHERE message_id IN ({marks}) LIMIT 1"
    return ledger.db.execute(query, tuple(message_ids)).fetchone() is not None
