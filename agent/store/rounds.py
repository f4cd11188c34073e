"""Meeting rounds in the ledger: a :class:`~agent.rules.meetings.Round` as JSON in ``rounds``.

Its offers are in ``meetings``.

The ``rounds`` row holds everything needed to carry on after a restart: the pure round state, what the
meeting is about, where the request came from (so a request seen twice starts one round), and ``todo`` —
the messages decided but not yet appended. A todo is written in the same transaction as the state change
that produced it and removed once appended, so a crash in between re-appends it (after checking by
Message-ID that it is not already there). A suggestion to the student is a row of its own (``kind``
"suggestion"). ``meetings`` mirrors each offer (start, status, sequence and the REQUEST's Message-ID) for
``mentor-agent status`` and for following the REQUEST through the ``messages`` table.

What a new time must keep clear (calendars, agreed meetings, open offers) is :mod:`agent.reconcile.keep_clear`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, cast

from agent.rules.localtime import zone_named
from agent.rules.policy import MeetingRules
from agent.store.ledger import Ledger

if TYPE_CHECKING:  # the meeting rules load with the first round read from the ledger, not at start (issue 21)
    from agent.rules.meetings import Round
    from agent.rules.slots import Slot

log = logging.getLogger("mentor_agent.meetings")
ANSWER_READ = "calendar answer read"  # logged about an answer once applied (meeting_desk): never applied again
BELATED_TOLD = "belated answer told"  # logged about what an answer said, told as come too late: told once
STALE = timedelta(seconds=60)  # a todo this old was left by a crash (or another process): carry it out again


def _zone_name(zone: tzinfo) -> str:
    return str(getattr(zone, "key", None) or zone)


def _slot(data: list[str], zone: tzinfo) -> Slot:
    from agent.rules.slots import Slot

    return Slot(datetime.fromisoformat(data[0]).astimezone(zone), datetime.fromisoformat(data[1]).astimezone(zone))


def _slot_json(slot: Slot) -> list[str]:
    return [slot.utc_start.isoformat(), slot.utc_end.isoformat()]


def round_to_json(state: Round) -> dict[str, Any]:
    return {
        "round_id": state.round_id,
        "domain": state.domain,
        "mentor": [state.mentor.name, state.mentor.address],
        "student": [state.student.name, state.student.address],
        "rules": state.rules.model_dump(mode="json"),
        "zone": _zone_name(state.zone),
        "student_zone": _zone_name(state.student_zone),
        "offers": [
            {
                "uid": o.uid,
                "slot": _slot_json(o.slot),
                "sequence": o.sequence,
                "status": o.status,
                "ever_sent": o.ever_sent,
                "sent_at": o.sent_at.isoformat() if o.sent_at else None,
                "partstat": o.partstat,
                "answered": o.answered.isoformat() if o.answered else None,
            }
            for o in state.offers
        ],
        "pending": [_slot_json(s) for s in state.pending],
    }


def round_from_json(data: dict[str, Any]) -> Round:
    from agent.rules.invites import Party
    from agent.rules.meetings import Offer, Round, Status

    zone = zone_named(data["zone"])
    return Round(
        round_id=data["round_id"],
        domain=data["domain"],
        mentor=Party(*data["mentor"]),
        student=Party(*data["student"]),
        rules=MeetingRules.model_validate(data["rules"]),
        zone=zone,
        student_zone=zone_named(data["student_zone"]),
        offers=tuple(
            Offer(
                uid=o["uid"],
                slot=_slot(o["slot"], zone),
                sequence=int(o["sequence"]),
                status=cast(Status, o["status"]),
                ever_sent=bool(o["ever_sent"]),
                sent_at=datetime.fromisoformat(o["sent_at"]) if o["sent_at"] else None,
                partstat=o["partstat"],
                answered=datetime.fromisoformat(o["answered"]) if o.get("answered") else None,
            )
            for o in data["offers"]
        ),
        pending=tuple(_slot(s, zone) for s in data["pending"]),
    )


@dataclass
class Stored:
    """One ``rounds`` row: a proposal round (``state`` set) or a suggestion to the student (``extra`` only)."""

    round_id: str
    mentor: str  # policy id
    kind: str = "round"  # or "suggestion"
    state: Round | None = None
    topic: str = ""
    description: str = ""
    source: str = ""  # the Outbox request's key or the suggestion's UID this round came from
    todo: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    open: bool = True

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "kind": self.kind,
            "topic": self.topic,
            "description": self.description,
            "source": self.source,
            "todo": self.todo,
            "extra": self.extra,
        }
        if self.state is not None:
            data["round"] = round_to_json(self.state)
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def of(cls, round_id: str, mentor: str, text: str, open_flag: int) -> Stored:
        data = json.loads(text)
        state = round_from_json(data["round"]) if "round" in data else None
        return cls(
            round_id,
            mentor,
            data.get("kind", "round"),
            state,
            data.get("topic", ""),
            data.get("description", ""),
            data.get("source", ""),
            list(data.get("todo", [])),
            dict(data.get("extra", {})),
            bool(open_flag),
        )


def _now() -> str:
    return datetime.now(UTC).isoformat()


class MeetingStore:
    """Reads and writes rounds and offers in the daemon's ledger (one SQLite file shared with the CLI)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def save(
        self, stored: Stored, message_ids: dict[str, str] | None = None, *, read: str = "", belated: str = ""
    ) -> None:
        """Write the round and mirror its offers, in one transaction. ``message_ids``: uid → new REQUEST id;
        ``read``: the answer applied in this change (:data:`ANSWER_READ`), marked with it; ``belated``: what an
        answer told as come too late said (:data:`BELATED_TOLD`)."""
        with self.ledger.transaction() as db:
            if read:
                self.ledger.log(ANSWER_READ, mentor=stored.mentor, message=read)
            if belated:
                self.ledger.log(BELATED_TOLD, mentor=stored.mentor, message=belated)
            db.execute(
                "INSERT OR REPLACE INTO rounds(round_id, mentor, state, open, updated) VALUES (?, ?, ?, ?, ?)",
                (stored.round_id, stored.mentor, stored.to_json(), int(stored.open), _now()),
            )
            if stored.state is None:
                return
            for offer in stored.state.offers:
                known = db.execute("SELECT message_id FROM meetings WHERE uid = ?", (offer.uid,)).fetchone()
                message_id = (message_ids or {}).get(offer.uid) or (known[0] if known else None)
                db.execute(
                    "INSERT OR REPLACE INTO meetings(uid, round_id, mentor, start, end, status, sequence, "
                    "message_id, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        offer.uid,
                        stored.round_id,
                        stored.mentor,
                        offer.slot.utc_start.isoformat(),
                        offer.slot.utc_end.isoformat(),
                        offer.status,
                        offer.sequence,
                        message_id,
                        _now(),
                    ),
                )

    def load(self, round_id: str) -> Stored | None:
        row = self.ledger.db.execute(
            "SELECT round_id, mentor, state, open FROM rounds WHERE round_id = ?", (round_id,)
        ).fetchone()
        return Stored.of(*row) if row else None

    def open_rounds(self) -> list[Stored]:
        rows = self.ledger.db.execute(
            "SELECT round_id, mentor, state, open FROM rounds WHERE open = 1 ORDER BY updated"
        ).fetchall()
        return [Stored.of(*row) for row in rows]

    def suggestions(self, mentor: str | None = None) -> list[Stored]:
        rows = self.ledger.db.execute("SELECT round_id, mentor, state, open FROM rounds ORDER BY updated").fetchall()
        found = [Stored.of(*row) for row in rows]
        return [s for s in found if s.kind == "suggestion" and (mentor is None or s.mentor == mentor)]

    def by_source(self, source: str) -> Stored | None:
        for round_id, mentor, text, open_flag in self.ledger.db.execute(
            "SELECT round_id, mentor, state, open FROM rounds"
        ):
            if json.loads(text).get("source") == source:
                return Stored.of(round_id, mentor, text, open_flag)
        return None

    def round_of_uid(self, uid: str) -> Stored | None:
        row = self.ledger.db.execute("SELECT round_id FROM meetings WHERE uid = ?", (uid,)).fetchone()
        return self.load(row[0]) if row else None

    def request_id(self, uid: str) -> str | None:
        row = self.ledger.db.execute("SELECT message_id FROM meetings WHERE uid = ?", (uid,)).fetchone()
        return str(row[0]) if row and row[0] else None

    def planned_requests(self) -> dict[str, tuple[str, str]]:
        """The REQUESTs of offers not sent yet: their Message-ID -> (round id, offer uid)."""
        rows = self.ledger.db.execute(
            "SELECT message_id, round_id, uid FROM meetings WHERE status = 'planned' AND message_id IS NOT NULL"
        ).fetchall()
        return {str(m): (str(r), str(u)) for m, r, u in rows}

    def offer_of_request(self, message_id: str) -> tuple[str, str] | None:
        """(round id, offer uid) of the offer whose REQUEST has this Message-ID, whatever its status; None if none."""
        row = self.ledger.db.execute(
            "SELECT round_id, uid FROM meetings WHERE message_id = ? LIMIT 1", (message_id,)
        ).fetchone()
        return (str(row[0]), str(row[1])) if row else None

    def message_state(self, message_id: str) -> tuple[str, datetime | None] | None:
        """The ``messages`` state of an e-mail we appended (and when SMTP took it), None when not taken in yet."""
        row = self.ledger.db.execute(
            "SELECT state, sent_at FROM messages WHERE message_id = ? ORDER BY updated DESC LIMIT 1", (message_id,)
        ).fetchone()
        if row is None:
            return None
        return str(row[0]), datetime.fromisoformat(row[1]) if row[1] else None

    def taken(self, *, exclude_round: str | None = None) -> list[tuple[str, datetime, datetime, str]]:
        """(mentor, start, end, status) of every agreed meeting and open offer, to keep clear."""
        rows = self.ledger.db.execute(
            "SELECT mentor, start, end, status, round_id FROM meetings WHERE status IN ('planned', 'sent', 'accepted')"
        ).fetchall()
        return [
            (m, datetime.fromisoformat(s), datetime.fromisoformat(e), st)
            for m, s, e, st, r in rows
            if r != exclude_round
        ]

    def remove_todo(self, round_id: str, item_id: str) -> None:
        """Drop one done todo item from the stored row, read afresh (another process may have changed it)."""
        with self.ledger.transaction() as db:
            row = db.execute("SELECT state FROM rounds WHERE round_id = ?", (round_id,)).fetchone()
            if row is None:
                return
            data = json.loads(row[0])
            data["todo"] = [item for item in data.get("todo", []) if item.get("id") != item_id]
            db.execute(
                "UPDATE rounds SET state = ?, updated = ? WHERE round_id = ?",
                (json.dumps(data, ensure_ascii=False), _now(), round_id),
            )

    def about_meeting(self, message_id: str) -> tuple[str, Stored, str] | None:
        """For an agenda update or a CANCEL we appended (its Message-ID): ("update" or "cancel", its round, the
        offer's uid); None for anything else (a first REQUEST is :meth:`offer_of_request`'s)."""
        for round_id, mentor, text, open_flag in self.ledger.db.execute(
            "SELECT round_id, mentor, state, open FROM rounds"
        ):
            extra = json.loads(text).get("extra", {})
            cancels: dict[str, str] = extra.get("cancels", {})
            updates = [u for u in extra.get("agenda_updates", []) if u.get("message_id") == message_id]
            if message_id not in cancels and not updates:
                continue
            stored = Stored.of(round_id, mentor, text, open_flag)
            if message_id in cancels:
                return "cancel", stored, cancels[message_id]
            uid = str(updates[0].get("uid") or "")
            if not uid and stored.state is not None:  # recorded before the uid was kept: its agreed meeting
                uid = next((o.uid for o in stored.state.offers if o.status == "accepted"), "")
            return "update", stored, uid
        return None

    def unaccounted_ids(self) -> dict[str, str]:
        """Message-ID -> round id of what the desk appended that is neither a first REQUEST, a recorded CANCEL nor an
        agenda update: a CANCEL appended by a version that did not record CANCELs (``extra["cancels"]``)."""
        requests = {str(m) for (m,) in self.ledger.db.execute("SELECT message_id FROM meetings") if m}
        found: dict[str, str] = {}
        for round_id, text in self.ledger.db.execute("SELECT round_id, state FROM rounds"):
            extra = json.loads(text).get("extra", {})
            known = {
                *requests,
                *extra.get("cancels", {}),
                *(u.get("message_id") for u in extra.get("agenda_updates", [])),
            }
            found.update((m, str(round_id)) for m in extra.get("ids", []) if m not in known)
        return found

    def record_cancel(self, round_id: str, message_id: str, uid: str) -> None:
        """Record ``message_id`` as the CANCEL of the offer ``uid`` of the round ``round_id``."""
        stored = self.load(round_id)
        if stored is not None:
            stored.extra["cancels"] = {**stored.extra.get("cancels", {}), message_id: uid}
            self.save(stored)

    def invite_ids(self) -> set[str]:
        """Message-IDs of every invitation and cancellation the desk appended (they are not student mail)."""
        found: set[str] = set()
        for (text,) in self.ledger.db.execute("SELECT state FROM rounds"):
            found.update(json.loads(text).get("extra", {}).get("ids", []))
        return found
