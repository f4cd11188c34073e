"""The ledger file: schema versioned, states survive a reopen, history reads back for the engine."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.store import schema, sent_watch, statefiles
from agent.store.ledger import ATTENTION, NEW, QUEUED, SCHEDULED, SENDING, Ledger, Row

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


def row(key: str, **changes: object) -> Row:
    values: dict[str, object] = dict(
        key=key,
        message_id=key,
        mentor="rivera",
        subject="s",
        sender="sam@x.org",
        recipients=("a@b.org",),
        arrived=NOW,
        state=NEW,
        folder="Outbox",
        uid=1,
        due=None,
        digest=None,
        reason="",
        standalone=False,
        group_key="",
        forced=False,
        told="",
        attempts=0,
        item=None,
        sent_at=None,
        detail="",
    )
    values.update(changes)
    return Row(**values)  # type: ignore[arg-type]


def test_schema_is_created_in_wal_mode_and_versioned(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite3")
    assert ledger.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert ledger.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(
        schema.SCHEMA_VERSION
    )
    ledger.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    Ledger(tmp_path / "l.sqlite3").close()
    db = sqlite3.connect(tmp_path / "l.sqlite3")
    db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    db.commit()
    db.close()
    with pytest.raises(RuntimeError, match="newer mentor-agent"):
        Ledger(tmp_path / "l.sqlite3")


def test_states_survive_reopening(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite3")
    ledger.add(row("<a@x>"))
    ledger.update("<a@x>", state=SENDING, item="<a@x>", due=NOW + timedelta(hours=1))
    ledger.close()
    again = Ledger(tmp_path / "l.sqlite3")
    found = again.get("<a@x>")
    assert found is not None and found.state == SENDING and found.due == NOW + timedelta(hours=1)
    assert [r.key for r in again.in_states(SENDING)] == ["<a@x>"]
    with pytest.raises(KeyError):
        again.update("<a@x>", no_such_column=1)


def test_history_reads_items_and_replies_for_the_engine(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite3")
    ledger.add_item("rivera", "<d@x>", NOW, ["k1", "<m1@x>", "k2"], source="agent")
    ledger.add_item("okafor", "<o@x>", NOW, ["<o@x>"], source="sent-folder")
    assert ledger.add_reply("rivera", "<r@h>", NOW + timedelta(hours=2), "<m1@x>")
    assert not ledger.add_reply("rivera", "<r@h>", NOW + timedelta(hours=2), "<m1@x>")  # once only
    history = ledger.history("rivera", NOW - timedelta(days=1))
    assert [item.ids[0] for item in history.sent] == ["<d@x>"]
    assert history.replies[0].to == "<m1@x>"
    assert ledger.item_ids("rivera")["<m1@x>"] == "rivera"
    assert ledger.known_message_ids(["<o@x>", "<zz@x>"]) == {"<o@x>"}


def test_queued_marks_know_whether_the_machine_restarted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    boot = tmp_path / "boot_id"
    boot.write_text("first-boot\n")
    monkeypatch.setattr(statefiles, "BOOT_ID", boot)
    ledger = Ledger(tmp_path / "l.sqlite3")
    ledger.add(row("<a@x>"))
    ledger.add(row("<b@x>"))
    ledger.queue(["<a@x>"])
    assert [r.key for r in ledger.in_states(QUEUED)] == ["<a@x>"]
    assert ledger.db.execute("PRAGMA synchronous").fetchone()[0] == 1, "back to NORMAL after the flushed commit"
    assert not ledger.queued_before_reboot()
    ledger.close()
    boot.write_text("second-boot\n")
    again = Ledger(tmp_path / "l.sqlite3")
    assert [r.key for r in again.in_states(QUEUED)] == ["<a@x>"]
    assert again.queued_before_reboot()
    boot.unlink()  # a system that cannot say: assume the worst
    assert again.queued_before_reboot()
    again.close()


def test_history_follows_the_mentors_addresses_not_the_policy_id(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite3")
    ledger.bind({"rivera": ("arivera@h.org", "ana@h.org")})
    ledger.add_item("rivera", "<1@x>", NOW, ["<1@x>"])
    ledger.add_item("dr-rivera", "<2@x>", NOW, ["<2@x>"], addresses=("ana@h.org",))
    ledger.add_item("okafor", "<3@x>", NOW, ["<3@x>"], addresses=("c@nhs.uk",))
    assert ledger.add_reply("rivera", "<r@h>", NOW, "<1@x>")
    since = NOW - timedelta(days=1)
    renamed = ledger.history("dr-rivera", since, ("ana@h.org",))
    assert [i.ids[0] for i in renamed.sent] == ["<1@x>", "<2@x>"] and len(renamed.replies) == 1
    assert len(ledger.items_between("whatever-name", since, NOW + timedelta(1), ("ARIVERA@h.org",))) == 1
    assert [i.ids[0] for i in ledger.history("okafor", since).sent] == ["<3@x>"]
    ledger.close()
    assert Ledger(tmp_path / "l.sqlite3").mentor_addresses["rivera"] == ("arivera@h.org", "ana@h.org")


def test_schema_2_ledgers_are_migrated_and_old_rows_get_their_mentors_addresses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "l.sqlite3"
    monkeypatch.setattr(schema, "SCHEMA_VERSION", 2)
    old = Ledger(path)
    old.db.execute(
        "INSERT INTO items(message_id, mentor, at, members, source) VALUES ('<o@x>', 'rivera', ?, '[]', 'agent')",
        (NOW.isoformat(),),
    )
    old.close()
    monkeypatch.undo()
    ledger = Ledger(path)
    assert ledger.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(
        schema.SCHEMA_VERSION
    )
    since = NOW - timedelta(days=1)
    assert len(ledger.history("rivera", since, ("a@h.org",)).sent) == 1  # by id until bound
    ledger.bind({"rivera": ("a@h.org",)})
    assert len(ledger.history("dr-rivera", since, ("a@h.org",)).sent) == 1  # then by address, any file name


def test_sent_copies_watched_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite3"
    ledger = Ledger(path)
    sent_watch.watch(ledger, "<a@x>", 7, NOW)
    sent_watch.watch(ledger, "<b@x>", 8, NOW + timedelta(seconds=1))
    ledger.close()
    again = Ledger(path)
    assert sent_watch.watched(again) == {"<a@x>": (7, NOW), "<b@x>": (8, NOW + timedelta(seconds=1))}
    sent_watch.unwatch(again, "<a@x>")
    assert list(sent_watch.watched(again)) == ["<b@x>"]
    again.close()


def test_get_many_reads_the_rows_as_get_does_and_leaves_out_the_unknown(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite3")
    keys = [f"<m{n}@x.org>" for n in range(1203)]  # more than one query's worth
    with ledger.transaction():
        for n, key in enumerate(keys):
            ledger.add(row(key, uid=n))
    ledger.update(keys[7], state=SENDING, folder="Sending")
    found = ledger.get_many([*reversed(keys), "<unknown@x.org>", keys[0]])
    assert set(found) == set(keys)
    assert all(found[key] == ledger.get(key) for key in keys[:20])
    assert found[keys[7]].state == SENDING and found[keys[7]].folder == "Sending"
    assert ledger.get_many([]) == {}


def test_the_wal_is_checkpointed_less_often_than_sqlite_s_default(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite3")
    assert ledger.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 4000
    assert ledger.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_message_is_found_by_its_message_id_through_an_index(tmp_path: Path) -> None:
    """Intake asks for every message whether its Message-ID is one the agent gave out (``key_of``): with a
    year of history that was a scan of every row, once a message."""
    ledger = Ledger(tmp_path / "ledger.db")
    try:
        plan = ledger.db.execute(
            "EXPLAIN QUERY PLAN SELECT key FROM messages WHERE message_id = ? AND state IN (?, ?)", ("<a@b>", "x", "y")
        ).fetchall()
        assert any("USING INDEX messages_message_id" in str(tuple(step)) for step in plan), [tuple(s) for s in plan]
    finally:
        ledger.close()


def test_a_send_in_doubt_counts_in_her_history_once_per_email_by_her_addresses(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite3")
    ledger.bind({"rivera": ("a@b.org",)})
    doubt = dict(state=ATTENTION, folder="Needs attention", sent_at=NOW)
    ledger.add(row("k1", item="<d@x>", **doubt))  # a digest of two, in doubt: one e-mail
    ledger.add(row("k2", item="<d@x>", **doubt))
    ledger.add(row("k3", state=ATTENTION, detail="the mail server refused it"))  # refused: certainly not sent
    ledger.add(row("k4", recipients=("c@nhs.uk",), mentor="okafor", **doubt))  # someone else's
    # A release split in two e-mails: the first accepted (under the release's id), the second's part in doubt.
    ledger.add_item("rivera", "<s@x>", NOW - timedelta(hours=1), ["<s@x>", "k5"])
    ledger.add(row("k6", item="<s@x>", **doubt))
    ledger.add(row("k7", item="<old@x>", **{**doubt, "sent_at": NOW - timedelta(days=3)}))  # before ``since``
    since = NOW - timedelta(days=1)
    history = ledger.history("rivera", since)
    assert [(item.at, item.ids) for item in history.sent] == [
        (NOW - timedelta(hours=1), ("<s@x>", "<s@x>", "k5")),
        (NOW, ("<d@x>", "k1", "k2")),
        (NOW, ("<s@x>", "k6")),
    ]
    assert [item.ids[0] for item in ledger.history("rivera", since, in_doubt=False).sent] == ["<s@x>"]
    ledger.add_item("rivera", "k1", NOW, ["k1"], source="sent-folder")  # its copy found in Sent: counted once
    assert [item.ids[0] for item in ledger.history("rivera", since).sent] == ["<s@x>", "k1", "<s@x>"]


def test_update_each_changes_each_row_as_update_would(tmp_path: Path) -> None:
    by_one, by_each = Ledger(tmp_path / "one.sqlite3"), Ledger(tmp_path / "each.sqlite3")
    changes: dict[str, dict[str, object]] = {
        "a": {"state": SENDING, "sent_at": NOW + timedelta(hours=1)},  # a time, stored as the table keeps it
        "b": {"folder": "Sending", "uid": 7},
        "c": {"state": SENDING, "sent_at": None},
        "d": {"recipients": ("x@y.org", "z@y.org")},
    }
    for ledger in (by_one, by_each):
        for key in [*changes, "untouched"]:
            ledger.add(row(key))
    for key, change in changes.items():
        by_one.update(key, **change)
    by_each.update_each(changes)
    keys = [*changes, "untouched"]
    assert by_each.get_many(keys) == by_one.get_many(keys)
    assert by_each.get_many(["b"])["b"].uid == 7 and by_each.get_many(["untouched"])["untouched"].uid == 1
    with pytest.raises(KeyError, match="no such ledger column"):
        by_each.update_each({"a": {"stat": SENDING}})
    by_one.close()
    by_each.close()


def test_schema_7_ledgers_get_the_addresses_that_made_waiting_rows_her_mail(tmp_path: Path) -> None:
    """A hostile round: rows kept before schema 8 paced by any recipient (a file rewritten for someone the message
    copies took them over), and a development version's log mark of a notice told was not read."""
    path = tmp_path / "l.sqlite3"
    made = Ledger(path)
    made.bind({"rivera": ("arivera@h.org",)})  # her addresses at the last pass of the version before
    made.add(row("<w@x>", state=SCHEDULED, recipients=("arivera@h.org", "lee@c.org")))
    made.log("held told", mentor="rivera", message="<w@x>")
    made.db.execute("ALTER TABLE messages DROP COLUMN mentor_addresses")
    made.db.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
    made.close()
    ledger = Ledger(path)
    waiting = ledger.get("<w@x>")
    assert waiting is not None and waiting.mentor_addresses == ("arivera@h.org",)
    assert ledger.meta_value("held told <w@x>") is not None
    ledger.close()


def test_what_was_retired_goes_back_only_to_her_name_and_a_collision_is_no_crash(tmp_path: Path) -> None:
    """A final hostile round: a retired mentor's meetings went to a new mentor sharing one office address under
    another name; and giving them back raised an IntegrityError on every pass when that policy had told a review
    for the same day."""
    ledger = Ledger(tmp_path / "l.sqlite3")
    office = "office@h.org"
    ledger.bind({"rivera": ("arivera@h.org", office)}, {"rivera": "Dr. Ana Rivera"})
    ledger.db.execute(
        "CREATE TABLE IF NOT EXISTS agreement_reviews (mentor TEXT NOT NULL, due TEXT NOT NULL, told TEXT NOT NULL,"
        " PRIMARY KEY (mentor, due))"
    )
    ledger.db.execute("INSERT INTO agreement_reviews VALUES ('rivera', '2027-03-01', 'x')")
    ledger.bind({"rivera": ("lee@c.org",)}, {"rivera": "Dr. Min Lee"})  # her file rewritten for Dr. Lee: retired
    ledger.bind(
        {"rivera": ("lee@c.org",), "park": ("kpark@h.org", office)}, {"rivera": "Dr. Min Lee", "park": "Dr. Kim Park"}
    )
    owners = [str(m) for (m,) in ledger.db.execute("SELECT mentor FROM agreement_reviews")]
    assert len(owners) == 1 and owners[0].startswith("rivera~retired-"), "not given to Dr. Park"
    ledger.db.execute("INSERT INTO agreement_reviews VALUES ('ana', '2027-03-01', 'y')")  # her own, the same day
    ledger.bind(
        {"rivera": ("lee@c.org",), "park": ("kpark@h.org",), "ana": ("arivera@h.org",)},
        {"rivera": "Dr. Min Lee", "park": "Dr. Kim Park", "ana": "Dr. Ana Rivera"},
    )  # her file back under another name: hers again, and no crash on the review told for the same day
    assert {str(m) for (m,) in ledger.db.execute("SELECT mentor FROM agreement_reviews")} >= {"ana"}
    ledger.close()
