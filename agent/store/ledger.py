"""The ledger: what the agent knows and has done, in one SQLite file (WAL), schema versioned (agent.store.schema).

Every message moves through a small state machine, and each state is committed *before* the network step
that follows it, so that after a crash the next start knows exactly where it stopped:

    new ─► scheduled ─► claimed ─► sending ─► accepted ─► done
      └──────────────────┘  │          │
                            │          └─► in doubt / attention (the send cannot be confirmed, or failed)
                            └─► (claimed but never sent: safe to send after a restart)

``items`` records what each mentor received (our sends and mail found in Sent), ``replies`` the mentor's
answers: together they are the history the pacing engine reads. Why one module of a little over 400 lines: the
state machine, the history and the log share one connection and its transactions (a send and the item it
counts are committed together), so their SQL stays side by side.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.rules.addresses import normal_address
from agent.rules.envelope import split_key
from agent.rules.pacing import History, Reply, SentItem
from agent.store.in_doubt import in_doubt_items, in_doubt_releases
from agent.store.schema import migrate
from agent.store.statefiles import boot_id, naming_the_state_dir, private_dir, private_files, tighten

NEW, SCHEDULED, CLAIMED, SENDING, ACCEPTED, DONE = "new", "scheduled", "claimed", "sending", "accepted", "done"
QUEUED = "queued"  # claimed and next in line for SMTP: see Ledger.queue()
CANCELLED, ATTENTION = "cancelled", "attention"
EARLY = "arrived before any policy"  # an ATTENTION row's detail: held in the Outbox since the wait for a first policy
OPEN_STATES = (NEW, SCHEDULED, CLAIMED, QUEUED, SENDING, ACCEPTED)
_OPEN_MARKS = ", ".join("?" * len(OPEN_STATES))
SENT_FOLDER = "sent-folder"  # the items' source of mail found in Sent, sent without the agent ("agent": its own)
CHECKPOINT_PAGES = 4000  # about 16 MB of WAL between checkpoints (SQLite's default: 1,000 pages)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _like_prefix(text: str) -> str:
    """``text`` for a LIKE pattern, its wildcards escaped with a backslash."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _text(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


@dataclass(frozen=True)
class Row:
    key: str
    message_id: str
    mentor: str | None
    subject: str
    sender: str
    recipients: tuple[str, ...]
    arrived: datetime
    state: str
    folder: str | None
    uid: int | None
    due: datetime | None
    digest: str | None
    reason: str
    standalone: bool
    group_key: str
    forced: bool
    told: str
    attempts: int
    item: str | None
    sent_at: datetime | None
    detail: str
    fingerprint: str = ""  # envelope.fingerprint: a copy has the same, another one with its Message-ID not
    mentor_addresses: tuple[str, ...] = ()  # the recipients its mentor's policy named when it was taken in

    @classmethod
    def of(cls, record: sqlite3.Row) -> Row:
        data = dict(zip(record.keys(), record, strict=True))  # by position: dict(record) looks up each name
        data.pop("updated", None)
        data["recipients"] = tuple(json.loads(data["recipients"]))
        data["mentor_addresses"] = tuple(json.loads(data["mentor_addresses"] or "[]"))
        for name in ("arrived", "due", "sent_at"):
            data[name] = _time(data[name])
        for name in ("standalone", "forced"):
            data[name] = bool(data[name])
        return cls(**data)


_COLUMNS = {f.name for f in fields(Row)}
_ADDED = (*(f.name for f in fields(Row)), "updated")  # the columns add() writes, in order
_ADD = f"INSERT INTO messages ({', '.join(_ADDED)}) VALUES ({', '.join('?' for _ in _ADDED)})"


def _stored(changes: Mapping[str, Any], now: str | None = None) -> dict[str, Any]:
    """Column values as the table keeps them, with the time of the change."""
    unknown = set(changes) - _COLUMNS
    if unknown:
        raise KeyError(f"no such ledger column: {sorted(unknown)}")
    values = dict(changes)
    for name in ("arrived", "due", "sent_at"):
        if name in values:
            values[name] = _text(values[name])
    if "recipients" in values:
        values["recipients"] = json.dumps(list(values["recipients"]))
    if "mentor_addresses" in values:
        values["mentor_addresses"] = json.dumps(list(values["mentor_addresses"])) if values["mentor_addresses"] else ""
    values["updated"] = now or _now()
    return values


def _packed(addresses: Iterable[str]) -> str | None:
    cleaned = sorted({normal_address(a) for a in addresses if a.strip()})
    return f" {' '.join(cleaned)} " if cleaned else None


def _whose(mentor: str, addresses: Iterable[str]) -> tuple[str, list[str]]:
    """SQL condition (and its arguments) for the rows of one mentor: any of her addresses, or, in rows written
    before addresses were kept, her policy id."""
    wanted = sorted({normal_address(a) for a in addresses if a.strip()})
    if not wanted:
        return "mentor = ?", [mentor]  # addresses unknown: by policy id, as before schema 3
    clause = "(addresses IS NULL AND mentor = ?)" + "".join(" OR instr(addresses, ?) > 0" for _ in wanted)
    return f"({clause})", [mentor, *(f" {a} " for a in wanted)]


class Ledger:
    @naming_the_state_dir  # a full disk: StateDiskFull, naming the directory
    def __init__(self, path: Path) -> None:
        private_dir(path.parent)
        self.path = path
        # Policy id -> the mentor's addresses, for every policy this process has known (a renamed or removed
        # file's id keeps its addresses, so a send recorded under the old id still counts for her).
        self.mentor_addresses: dict[str, tuple[str, ...]] = {}
        tighten(path)
        with private_files():  # the -wal and -shm files are made on first use, with the umask of that moment
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        tighten(path)
        # Commits reach the operating system at once (a killed daemon loses nothing), but are flushed to disk
        # only by the commits that must survive a power cut: see durable().
        self.db.execute("PRAGMA synchronous=NORMAL")
        # The WAL is copied into the database (and flushed to disk) every CHECKPOINT_PAGES pages rather than every
        # 1,000: a backlog commits twice a message, and a checkpoint each few hundred messages cost a fifth of
        # the ledger's time. Only when pages are copied changes; what a commit keeps does not.
        self.db.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}")
        self.db.execute("PRAGMA foreign_keys=ON")
        migrate(self.db, self.path)
        found = self.db.execute("SELECT value FROM meta WHERE key = 'mentor_addresses'").fetchone()
        self.mentor_addresses.update({k: tuple(v) for k, v in json.loads(found[0]).items()} if found else {})
        self._fill_mentor_addresses()

    def _fill_mentor_addresses(self) -> None:
        """Rows kept before schema 8 that still wait: the addresses that made them her mail, from the addresses her
        policy had at the last pass of the version before (a file rewritten since then does not take them over)."""
        if "mentor_addresses" not in {column[1] for column in self.db.execute("PRAGMA table_info(messages)")}:
            return  # a ledger kept at an older schema on purpose (the migration tests)
        marks = ", ".join("?" for _ in OPEN_STATES)
        query = (
            "SELECT key, mentor, recipients FROM messages "
            f"WHERE mentor IS NOT NULL AND mentor_addresses = '' AND state IN ({marks})"
        )
        filled = []
        for key, mentor, recipients in self.db.execute(query, tuple(OPEN_STATES)).fetchall():
            hers = {address.lower() for address in self.mentor_addresses.get(mentor, ())}
            named = [address for address in json.loads(recipients) if address.lower() in hers]
            if named:
                filled.append((json.dumps(named), key))
        if filled:
            with self.transaction():
                self.db.executemany("UPDATE messages SET mentor_addresses = ? WHERE key = ?", filled)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    @contextmanager
    def durable(self) -> Iterator[sqlite3.Connection]:
        """A transaction flushed to disk on commit, with everything committed before it.

        For the one state that must survive even a power cut: ``sending``, written just before the message
        goes over SMTP. Were it lost, the message would look unsent and go twice; every other state is found
        again from the folders, or errs on the side of telling the student ("in doubt").
        """
        self.db.execute("PRAGMA synchronous=FULL")
        try:
            with self.transaction() as db:
                yield db
        finally:
            self.db.execute("PRAGMA synchronous=NORMAL")

    def writes(self) -> int:
        """How many rows were written through this ledger (its connection) so far: a mark that moves at each write."""
        return self.db.total_changes

    def agent_id(self) -> str:
        """This agent's lasting id (made on first use): what its IMAP claims are marked with."""
        found = self.db.execute("SELECT value FROM meta WHERE key = 'agent_id'").fetchone()
        if found:
            return str(found[0])
        made = os.urandom(4).hex()
        self.db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('agent_id', ?)", (made,))
        return str(self.db.execute("SELECT value FROM meta WHERE key = 'agent_id'").fetchone()[0])

    def queue(self, keys: Iterable[str]) -> None:
        """Mark claimed messages ``queued``, on disk, with this boot's id: the next ones handed to SMTP.

        Each message is then marked ``sending`` just before its own SMTP transaction, with a commit that a
        killed daemon keeps but a power cut may lose. So after a crash a ``queued`` message was certainly not
        sent if the machine has not rebooted since (the ``sending`` mark would be there), and may have been
        if it has (see :meth:`queued_before_reboot`). One flush covers a whole run of messages.
        """
        with self.durable():
            self.db.executemany(
                "UPDATE messages SET state = ?, updated = ? WHERE key = ?", [(QUEUED, _now(), key) for key in keys]
            )
            self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('queued_boot', ?)", (boot_id() or "",))

    def queued_before_reboot(self) -> bool:
        """Whether the machine may have restarted since messages were queued (then their marks may be lost)."""
        found = self.db.execute("SELECT value FROM meta WHERE key = 'queued_boot'").fetchone()
        now = boot_id()
        return now is None or found is None or found[0] != now

    def is_fresh(self) -> bool:
        """Nothing taken in or done yet: a fresh install (no message, no log entry)."""
        return not any(self.db.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone() for t in ("messages", "log"))

    def meta_value(self, key: str) -> str | None:
        """A value the agent keeps for itself (``meta`` table), or None."""
        found = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if found is None else str(found[0])

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def metas(self, prefix: str) -> dict[str, str]:
        """The values the agent keeps under keys that begin with ``prefix``, by key."""
        query = "SELECT key, value FROM meta WHERE key LIKE ? ESCAPE '\\' ORDER BY key"
        return {str(k): str(v) for k, v in self.db.execute(query, (_like_prefix(prefix) + "%",))}

    def drop_meta(self, key: str) -> None:
        self.db.execute("DELETE FROM meta WHERE key = ?", (key,))

    # -- messages ----------------------------------------------------------------------------------------------

    def get(self, key: str) -> Row | None:
        record = self.db.execute("SELECT * FROM messages WHERE key = ?", (key,)).fetchone()
        return Row.of(record) if record else None

    def get_many(self, keys: Iterable[str]) -> dict[str, Row]:
        """The rows of ``keys`` that exist, by key (one query per 500)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, Row] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            found.update(
                (row.key, row)
                for row in map(Row.of, self.db.execute(f"SELECT * FROM messages WHERE key IN ({marks})", chunk))
            )
        return found

    def add(self, row: Row) -> None:
        values = {name: getattr(row, name) for name in _ADDED[:-1]}
        values["recipients"] = json.dumps(list(row.recipients))
        values["mentor_addresses"] = json.dumps(list(row.mentor_addresses)) if row.mentor_addresses else ""
        for name in ("arrived", "due", "sent_at"):
            values[name] = _text(values[name])
        values["updated"] = _now()
        self.db.execute(_ADD, tuple(values.values()))

    def forget(self, key: str) -> None:
        """Drop a message's row (it came back to the Outbox: it starts afresh)."""
        self.db.execute("DELETE FROM messages WHERE key = ?", (key,))

    def update(self, key: str, **changes: Any) -> None:
        values = _stored(changes)
        assignments = ", ".join(f"{name} = ?" for name in values)
        self.db.execute(f"UPDATE messages SET {assignments} WHERE key = ?", (*values.values(), key))

    def update_each(self, changes: Mapping[str, Mapping[str, Any]]) -> None:
        """:meth:`update` for several rows ({key: {column: value}}), one statement for the rows that change the
        same columns (a backlog's thousands of rows at once)."""
        now = _now()
        groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        for key, change in changes.items():
            values = _stored(change, now)
            groups.setdefault(tuple(values), []).append((*values.values(), key))
        for names, rows in groups.items():
            assignments = ", ".join(f"{name} = ?" for name in names)
            self.db.executemany(f"UPDATE messages SET {assignments} WHERE key = ?", rows)

    def in_states(self, *states: str, mentor: str | None = None) -> list[Row]:
        marks = ", ".join("?" for _ in states)
        query = f"SELECT * FROM messages WHERE state IN ({marks})"
        args: list[Any] = list(states)
        if mentor is not None:
            query += " AND mentor = ?"
            args.append(mentor)
        return [Row.of(r) for r in self.db.execute(query + " ORDER BY arrived, rowid", args)]

    def owed_notices(self, owed: str) -> list[Row]:
        """The rows in Needs attention whose notice is still owed (their ``told`` begins with ``owed`` and a space:
        agent.reconcile.attention)."""
        query = "SELECT * FROM messages WHERE state = ? AND told LIKE ? ESCAPE '\\' ORDER BY arrived, rowid"
        return [Row.of(r) for r in self.db.execute(query, (ATTENTION, _like_prefix(owed + " ") + "%"))]

    def key_of(self, message_id: str, *states: str) -> str | None:
        """The key of a message going out with ``message_id`` and in one of ``states``, or None."""
        marks = ", ".join("?" for _ in states)
        found = self.db.execute(
            f"SELECT key FROM messages WHERE message_id = ? AND state IN ({marks})", (message_id, *states)
        ).fetchone()
        return None if found is None else str(found[0])

    def variants_of(self, key: str, *states: str) -> list[Row]:
        """The rows kept under a key of another text with ``key``'s Message-ID (``key#…``: issue 20), in ``states``."""
        marks = ", ".join("?" for _ in states)
        query = f"SELECT * FROM messages WHERE substr(key, 1, ?) = ? AND state IN ({marks}) ORDER BY rowid"
        return [Row.of(found) for found in self.db.execute(query, (len(key) + 1, key + "#", *states))]

    def keys_of(self, message_ids: Iterable[str], *states: str) -> dict[str, list[str]]:
        """Every key of a message going out with one of ``message_ids`` and in one of ``states``, by Message-ID
        (one query per 500): what :meth:`key_of` finds, for many at once. Where a Message-ID has more than one,
        only :meth:`key_of` says which one it answers."""
        wanted = list(dict.fromkeys(message_ids))
        found: dict[str, list[str]] = {}
        state_marks = ", ".join("?" for _ in states)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            for message_id, key in self.db.execute(
                f"SELECT message_id, key FROM messages WHERE message_id IN ({marks}) AND state IN ({state_marks})",
                (*chunk, *states),
            ):
                found.setdefault(str(message_id), []).append(str(key))
        return found

    def latest_arrival(self) -> datetime | None:
        """When the newest message still waiting was taken in: no message taken in after it counts as earlier, even
        when the clock was stepped back meanwhile (the queue goes in the order she handed messages over)."""
        marks = ", ".join("?" for _ in OPEN_STATES)
        (latest,) = self.db.execute(
            f"SELECT MAX(arrived) FROM messages WHERE state IN ({marks})", OPEN_STATES
        ).fetchone()
        return _time(latest)

    def in_folder(self, folder: str) -> dict[int, Row]:
        records = self.db.execute(
            f"SELECT * FROM messages WHERE folder = ? AND uid IS NOT NULL AND state IN ({_OPEN_MARKS})",
            (folder, *OPEN_STATES),
        )
        return {row.uid: row for row in map(Row.of, records) if row.uid is not None}

    def lost_in(self, folder: str) -> list[Row]:
        """The open rows of ``folder`` whose copy was not found again after the server renumbered it (UID 0)."""
        records = self.db.execute(
            f"SELECT * FROM messages WHERE folder = ? AND uid = 0 AND state IN ({_OPEN_MARKS})", (folder, *OPEN_STATES)
        )
        return [Row.of(r) for r in records]

    def namesakes(self, key: str) -> list[str]:
        """The keys of the other open messages that share ``key``'s Message-ID (issue 20: the second one seen is keyed
        by its Message-ID and a hash of its content)."""
        base, _ = split_key(key)
        if base.startswith("sha256:"):
            return []
        rows = self.db.execute(
            f"SELECT key FROM messages WHERE (key = ? OR key LIKE ? ESCAPE '\\') AND state IN ({_OPEN_MARKS})",
            (base, _like_prefix(base) + "#%", *OPEN_STATES),
        )
        return [found for (found,) in rows if found != key and split_key(found)[0] == base]

    def only_cancelled(self, message_ids: Iterable[str]) -> set[str]:
        """Those of ``message_ids`` whose every row is cancelled, and that no mentor received from us nor SMTP
        submission handed over: mail under them found in Sent went without this agent (her program, another agent)."""
        return self._among(
            message_ids,
            "SELECT message_id FROM messages WHERE message_id IN ({marks}) GROUP BY message_id "
            "HAVING MIN(state = ?) = 1 EXCEPT SELECT message_id FROM items EXCEPT "
            "SELECT message FROM log WHERE event = 'submitted'",
            CANCELLED,
        )

    def waiting_ids(self, message_ids: Iterable[str]) -> set[str]:
        """Those of ``message_ids`` a row of which is new or scheduled: not sent, not cancelled (yet)."""
        return self._among(
            message_ids,
            "SELECT message_id FROM messages WHERE message_id IN ({marks}) AND state IN (?, ?)",
            NEW,
            SCHEDULED,
        )

    def _among(self, message_ids: Iterable[str], query: str, *more: str) -> set[str]:
        """The first column of ``query`` asked for ``message_ids`` 500 at a time (``{marks}``: their placeholders,
        ``more``: the query's other arguments, after them)."""
        wanted = list(message_ids)
        found: set[str] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            found.update(str(r[0]) for r in self.db.execute(query.format(marks=marks), (*chunk, *more)))
        return found

    def known_message_ids(self, message_ids: Iterable[str]) -> set[str]:
        wanted = list(message_ids)
        found: set[str] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            found.update(
                r[0] for r in self.db.execute(f"SELECT message_id FROM items WHERE message_id IN ({marks})", chunk)
            )
            found.update(  # rows, and what SMTP submission handed over (not yet taken in from the Outbox)
                r[0]
                for r in self.db.execute(
                    f"SELECT message_id FROM messages WHERE message_id IN ({marks}) UNION "
                    f"SELECT message FROM log WHERE event = 'submitted' AND message IN ({marks})",
                    chunk * 2,
                )
            )
            found.update(  # the e-mail the agent made of several (a digest, a split one's first part) not
                # known to have gone: in doubt, its provider's copy in Sent is that hand-over, already counted
                r[0]
                for r in self.db.execute(f"SELECT DISTINCT item FROM messages WHERE item IN ({marks})", chunk)
            )
            found.update(  # the other parts of a digest that went as several e-mails
                r[0]
                for r in self.db.execute(
                    f"SELECT j.value FROM items, json_each(items.members) AS j WHERE j.value IN ({marks})", chunk
                )
            )
        return found

    def own_emails(self, message_ids: Iterable[str]) -> dict[str, datetime]:
        """The e-mails the agent sent under these Message-IDs of its own (a digest, a part of a split one): when
        each went. A copy of one put back in the Outbox is mail already sent."""
        wanted = list(dict.fromkeys(message_ids))
        found: dict[str, datetime] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            query = f"SELECT message_id, at FROM items WHERE source = 'agent' AND message_id IN ({marks})"
            found.update((str(found_id), datetime.fromisoformat(at)) for found_id, at in self.db.execute(query, chunk))
        return found

    # -- history ----------------------------------------------------------------------------------------------

    def bind(self, addresses: Mapping[str, Sequence[str]], names: Mapping[str, str] | None = None) -> None:
        """Learn (or update) each policy id's addresses (and her name), and give rows written before schema 3 theirs.
        A policy id that now names none of the addresses it named, under another name, is another mentor (her file
        rewritten for someone else): what the one before left under that id is retired (:meth:`_retire`), and given
        back to the policy that names her again (:meth:`_restore`). The same name at new addresses is her, moved."""
        fresh = {
            mentor: tuple(found)
            for mentor, found in addresses.items()
            if self.mentor_addresses.get(mentor) != tuple(found)
        }
        known = dict(json.loads(self.meta_value("mentor_names") or "{}"))
        renamed = {mentor: name for mentor, name in (names or {}).items() if known.get(mentor) != name}
        if not fresh and not renamed:
            return
        gone = [
            mentor
            for mentor, found in fresh.items()
            if self.mentor_addresses.get(mentor)
            and not {a.lower() for a in self.mentor_addresses[mentor]} & {a.lower() for a in found}
            and (names is None or known.get(mentor) != names.get(mentor))
        ]
        with self.transaction():
            for mentor in gone:
                known[self._retire(mentor)] = known.get(mentor, "")  # whose it was: given back only to her name
            for retired, hers in [(m, a) for m, a in self.mentor_addresses.items() if "~retired-" in m]:
                wanted = {a.lower() for a in hers}
                was = known.get(retired, "")
                heir = next(
                    (
                        m
                        for m, found in addresses.items()
                        if wanted & {a.lower() for a in found} and (names or {}).get(m, was) == was
                    ),
                    None,
                )
                if heir is not None:  # after the retirements: the id is free of the one it named in between
                    self._restore(retired, heir)
            self.mentor_addresses.update(fresh)
            self.db.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('mentor_addresses', ?)",
                (json.dumps(self.mentor_addresses, sort_keys=True),),
            )
            if names is not None or gone:
                self.set_meta("mentor_names", json.dumps({**known, **(names or {})}, sort_keys=True))
            for mentor, found in fresh.items():
                for table in ("items", "replies"):
                    self.db.execute(
                        f"UPDATE {table} SET addresses = ? WHERE addresses IS NULL AND mentor = ?",
                        (_packed(found), mentor),
                    )

    def tables(self) -> set[str]:
        """The tables this ledger has (some are made on first use: meetings, agreements)."""
        return {str(name) for (name,) in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def _moved(self, old: str, new: str, *, open_only: bool) -> None:
        """(In the caller's transaction.) What the policy id ``old`` holds now goes by ``new``."""
        marks = ", ".join("?" for _ in OPEN_STATES)
        where = f" AND state IN ({marks})" if open_only else ""
        self.db.execute(
            f"UPDATE messages SET mentor = ? WHERE mentor = ?{where}", (new, old, *(OPEN_STATES if open_only else ()))
        )
        tables = self.tables()
        for table in ("rounds", "meetings", "agreements", "agreement_reviews"):
            if table in tables:  # OR IGNORE: a review the new id has told for the same day stays as it is
                self.db.execute(f"UPDATE OR IGNORE {table} SET mentor = ? WHERE mentor = ?", (new, old))

    def _retire(self, mentor: str) -> str:
        """Move what the mentor before left under the policy id ``mentor`` to an id no file has (``rivera~retired-…``):
        her waiting mail (held, she is told: intake), her meeting rounds and agreements, so that the mentor the file
        names now is never offered her meetings, her agenda, her answers."""
        retired = f"{mentor}~retired-{_now()}"
        self.mentor_addresses[retired] = self.mentor_addresses[mentor]
        self._moved(mentor, retired, open_only=True)
        self.log("policy retired", mentor=mentor, detail=f"its file names another mentor now: kept as {retired}")
        return retired

    def _restore(self, retired: str, mentor: str) -> None:
        """A policy (``mentor``) names the retired mentor again (her file put back): hers again."""
        self._moved(retired, mentor, open_only=False)
        del self.mentor_addresses[retired]
        self.log("policy restored", mentor=mentor, detail=f"{retired} is named by it again")

    def add_item(
        self,
        mentor: str,
        message_id: str,
        at: datetime,
        members: Iterable[str],
        *,
        follow_up: bool = False,
        source: str = "agent",
        addresses: Sequence[str] = (),
    ) -> bool:
        """Record what a mentor received; counted by her addresses (``addresses``, else her policy's). Whether that
        was news: recorded now, or widened (False: recorded before as it is).

        Recorded once per Message-ID. Mail found in Sent that is recorded again names every mentor it went to
        (:func:`agent.reconcile.history.scan_sent`): an item recorded for fewer of them (before that was so) is
        widened to the addresses now given, so that each mentor who got it counts it."""
        packed = _packed(addresses or self.mentor_addresses.get(mentor, ()))
        added = self.db.execute(
            "INSERT OR IGNORE INTO items(message_id, mentor, at, members, follow_up, source, addresses) "
            "VALUES (?,?,?,?,?,?,?)",
            (message_id, mentor, _text(at), json.dumps(sorted(set(members))), int(follow_up), source, packed),
        )
        if added.rowcount or source != SENT_FOLDER or not packed:
            return bool(added.rowcount)
        found = self.db.execute(
            "SELECT addresses FROM items WHERE message_id = ? AND source = ?", (message_id, SENT_FOLDER)
        ).fetchone()
        if found is not None and found[0] and set(packed.split()) - set(found[0].split()):
            wider = _packed([*found[0].split(), *packed.split()])
            self.db.execute("UPDATE items SET addresses = ? WHERE message_id = ?", (wider, message_id))
            return True
        return False

    def add_reply(
        self, mentor: str, message_id: str, at: datetime, answers: str, *, addresses: Sequence[str] = ()
    ) -> bool:
        packed = _packed(addresses or self.mentor_addresses.get(mentor, ()))
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO replies(message_id, mentor, at, answers, addresses) VALUES (?,?,?,?,?)",
            (message_id, mentor, _text(at), answers, packed),
        )
        return cursor.rowcount > 0

    def item_owners(self) -> dict[str, tuple[str, frozenset[str]]]:
        """Every Message-ID a mentor received from us -> (policy id when sent, the mentor's addresses)."""
        found: dict[str, tuple[str, frozenset[str]]] = {}
        for message_id, owner, members, packed in self.db.execute(
            "SELECT message_id, mentor, members, addresses FROM items"
        ):
            entry = (owner, frozenset((packed or "").split()))
            found[message_id] = entry
            for member in json.loads(members):
                found.setdefault(member, entry)
        return found

    def item_ids(self, mentor: str | None = None) -> dict[str, str]:
        """Every Message-ID a mentor received from us, mapped to the mentor's policy id."""
        found: dict[str, str] = {}
        for message_id, owner, members in self.db.execute("SELECT message_id, mentor, members FROM items"):
            if mentor is None or owner == mentor:
                found[message_id] = owner
                for member in json.loads(members):
                    found.setdefault(member, owner)
        return found

    def in_doubt(self, mentor: str, since: datetime, addresses: Sequence[str] = ()) -> dict[str, list[str]]:
        """The sends in doubt that :meth:`history` counts for ``mentor`` since ``since``: {release: its keys}."""
        known = addresses or self.mentor_addresses.get(mentor, ())
        received = {i for sent in self.history(mentor, since, known, in_doubt=False).sent for i in sent.ids}
        releases = in_doubt_releases(self.db, mentor, known, since, received)
        return {release: [key for _, key, _ in rows] for release, rows in releases.items()}

    def history(self, mentor: str, since: datetime, addresses: Sequence[str] = (), *, in_doubt: bool = True) -> History:
        """What the mentor received and answered since ``since``: by her ``addresses`` (else her policy's).
        ``in_doubt``: with the sends in doubt, as received when handed to SMTP (the pacing rules' safe side,
        :mod:`agent.store.in_doubt`); measures of what she answered leave them out. Times are as recorded: a time ahead
        of now is not put right here (a clock ahead then, or behind now: the agent cannot tell which)."""
        known = addresses or self.mentor_addresses.get(mentor, ())
        who, args = _whose(mentor, known)
        bounced = "EXISTS(SELECT 1 FROM log WHERE event = 'bounced' AND log.message = items.message_id)"
        items = tuple(
            SentItem(datetime.fromisoformat(at), (message_id, *json.loads(members)), bool(follow_up), bool(lost))
            for message_id, at, members, follow_up, lost in self.db.execute(
                f"SELECT message_id, at, members, follow_up, {bounced} FROM items WHERE {who} AND at >= ? ORDER BY at",
                (*args, _text(since)),
            )
        )
        if in_doubt:
            received = {i for sent in items for i in sent.ids}
            doubt = in_doubt_items(self.db, mentor, known, since, received)
            if doubt:
                items = tuple(sorted((*items, *doubt), key=lambda sent: sent.at))
        replies = tuple(
            Reply(datetime.fromisoformat(at), answers)
            for at, answers in self.db.execute(
                f"SELECT at, answers FROM replies WHERE {who} AND at >= ? ORDER BY at", (*args, _text(since))
            )
        )
        return History(items, replies)

    def items_between(
        self, mentor: str, start: datetime, end: datetime, addresses: Sequence[str] = (), *, source: str = ""
    ) -> list[datetime]:
        """When the mentor received something (of ``source`` only, if given), by her addresses."""
        who, args = _whose(mentor, addresses or self.mentor_addresses.get(mentor, ()))
        if source:
            who, args = f"{who} AND source = ?", [*args, source]
        return [
            datetime.fromisoformat(at)
            for (at,) in self.db.execute(
                f"SELECT at FROM items WHERE {who} AND at >= ? AND at < ? ORDER BY at",
                (*args, _text(start), _text(end)),
            )
        ]

    # -- status and log ---------------------------------------------------------------------------------------

    def set_status(self, **values: str) -> None:
        for key, value in values.items():
            self.db.execute("INSERT OR REPLACE INTO status(key, value, updated) VALUES (?, ?, ?)", (key, value, _now()))

    def status(self) -> dict[str, tuple[str, str]]:
        return {k: (v, u) for k, v, u in self.db.execute("SELECT key, value, updated FROM status")}

    def sent_since(self, since: datetime) -> list[datetime]:
        """When the agent sent (its ``sent`` log entries) since ``since``."""
        rows = self.db.execute("SELECT at FROM log WHERE event = 'sent' AND at >= ?", (_text(since),))
        return [datetime.fromisoformat(at) for (at,) in rows]

    def logged(self, event: str, message: str) -> bool:
        return (
            self.db.execute("SELECT 1 FROM log WHERE event = ? AND message = ?", (event, message)).fetchone()
            is not None
        )

    def details(self, event: str, message: str) -> list[str]:
        """The details of the ``event`` entries logged about ``message``, oldest first."""
        found = self.db.execute("SELECT detail FROM log WHERE event = ? AND message = ? ORDER BY id", (event, message))
        return [str(detail) for (detail,) in found]

    def log(self, event: str, *, mentor: str | None = None, message: str | None = None, detail: str = "") -> None:
        self.db.execute(
            "INSERT INTO log(at, mentor, message, event, detail) VALUES (?, ?, ?, ?, ?)",
            (_now(), mentor, message, event, detail),
        )
