"""The agenda's writes in the ledger (agent.store.agenda, agent.store.delivered, agent.store.answer_times)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from agent.rules.policy import LoadedPolicy, Mentor, Policy
from agent.store.agenda import REPLACED, by_message_id, join_invitation, on_agenda
from agent.store.answer_times import answer_times, written_to
from agent.store.delivered import add_members
from agent.store.ledger import CANCELLED, SCHEDULED, Ledger
from agent.store.rounds import MeetingStore, Stored
from tests.test_ledger import NOW, row


def test_questions_join_an_invitation_in_one_write(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite3")
    ledger.add(row("<old-invite@x>", state=SCHEDULED, folder="Scheduled"))
    ledger.add(row("<q@x>", state=SCHEDULED, folder="Scheduled", digest="agenda"))
    stored = Stored("r1", "rivera", topic="Mentoring: q", source="agenda:t")
    MeetingStore(ledger).save(stored)
    ledger.db.execute(
        "INSERT INTO meetings(uid, round_id, mentor, start, end, status, message_id, updated) "
        "VALUES ('u1', 'r1', 'rivera', 's', 'e', 'planned', '<old-invite@x>', 'now')"
    )
    stored.description = "Agenda: 2 questions"
    join_invitation(ledger, stored, {"u1": "<new-invite@x>"}, ["<old-invite@x>"], ["<q@x>"], "agenda:t")
    assert MeetingStore(ledger).request_id("u1") == "<new-invite@x>"
    assert MeetingStore(ledger).load("r1").description == "Agenda: 2 questions"  # type: ignore[union-attr]
    old = ledger.get("<old-invite@x>")
    assert old is not None and (old.state, old.detail) == (CANCELLED, REPLACED)
    assert ledger.get("<q@x>").digest == "agenda:t"  # type: ignore[union-attr]
    assert by_message_id(ledger, "<q@x>") == ledger.get("<q@x>")
    assert by_message_id(ledger, "<nobody@x>") is None


def test_members_join_the_invitations_item(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite3")
    assert not add_members(ledger, "<invite@x>", ["<q@x>"])
    ledger.add_item("rivera", "<invite@x>", NOW, ["<invite@x>"])
    assert add_members(ledger, "<invite@x>", ["<q@x>", "<q@x>"])
    members = json.loads(ledger.db.execute("SELECT members FROM items").fetchone()[0])
    assert members == ["<invite@x>", "<q@x>"]
    assert ledger.known_message_ids(["<q@x>"]) == {"<q@x>"}


def test_answer_times_read_both_ways(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite3")
    loaded = LoadedPolicy(
        "rivera",
        tmp_path / "rivera.toml",
        Policy(mentor=Mentor(name="Dr. Ana Rivera", addresses=("a@b.org",), timezone="America/Chicago")),  # type: ignore[arg-type]
    )
    ledger.add(row("<m1@x>", arrived=NOW - timedelta(days=3)))
    ledger.add_item("rivera", "<m1@x>", NOW - timedelta(days=3), ["<m1@x>"], addresses=("a@b.org",))
    ledger.add_reply("rivera", "<r1@x>", NOW - timedelta(days=1), "<m1@x>", addresses=("a@b.org",))
    ledger.add(row("<m2@x>", arrived=NOW - timedelta(hours=18)))
    ledger.add(row("<gone@x>", arrived=NOW - timedelta(hours=20), state=CANCELLED))
    ledger.add(row("<invite@x>", arrived=NOW - timedelta(hours=23)))  # the agent's own invitation
    MeetingStore(ledger).save(Stored("r1", "rivera", extra={"ids": ["<invite@x>"]}))
    assert written_to(ledger, "rivera", NOW - timedelta(days=90)) == [
        NOW - timedelta(days=3),
        NOW - timedelta(hours=18),
    ]
    found = answer_times(ledger, loaded, NOW)
    assert found["mentor"]["median_seconds"] == 2 * 86400
    assert found["student"]["median_seconds"] == 6 * 3600
    assert found["mentor"]["text"] == (
        "Dr. Ana Rivera usually answers within 2 days (latest 2 days, 1 answer in 90 days); hoped for: within 5 days"
    )
    assert found["student"]["text"].startswith("you usually answer within 6 hours")


def test_on_agenda_finds_only_scheduled_questions_by_mentor(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite3")
    ledger.add(row("<a@x>", state=SCHEDULED, digest="agenda"))
    ledger.add(row("<b@x>", state=SCHEDULED, digest="agenda:t1", mentor="okafor"))
    ledger.add(row("<c@x>", state=SCHEDULED, digest="digest-<c@x>"))
    ledger.add(row("<d@x>", state=CANCELLED, digest="agenda:t1"))
    ledger.add(row("<e@x>", state=SCHEDULED, digest="agendas"))
    found = {mentor: [r.key for r in rows] for mentor, rows in on_agenda(ledger).items()}
    assert found == {"rivera": ["<a@x>"], "okafor": ["<b@x>"]}
