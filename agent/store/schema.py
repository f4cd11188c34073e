"""The ledger's schema, versioned: each version's migration, applied in order on open (one script each, with its
version number, so a crash mid-way leaves the file at the previous version)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA_VERSION = 8

_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE messages (
        key TEXT PRIMARY KEY,             -- Message-ID, or "sha256:…" of the header block when it has none
        message_id TEXT NOT NULL,         -- the Message-ID it goes out with
        mentor TEXT,                      -- policy id; NULL for mail to no mentor
        subject TEXT NOT NULL DEFAULT '',
        sender TEXT NOT NULL DEFAULT '',
        recipients TEXT NOT NULL DEFAULT '[]',
        arrived TEXT NOT NULL,
        state TEXT NOT NULL,
        folder TEXT,
        uid INTEGER,
        due TEXT,
        digest TEXT,
        reason TEXT NOT NULL DEFAULT '',
        standalone INTEGER NOT NULL DEFAULT 0,
        group_key TEXT NOT NULL DEFAULT '',
        forced INTEGER NOT NULL DEFAULT 0,
        told TEXT NOT NULL DEFAULT '',    -- what the student was last told (due|digest), to tell only changes
        attempts INTEGER NOT NULL DEFAULT 0,
        item TEXT,                        -- Message-ID of what the mentor received (the digest's, for a digest)
        sent_at TEXT,
        detail TEXT NOT NULL DEFAULT '',
        updated TEXT NOT NULL
    );
    CREATE INDEX messages_state ON messages(state, mentor);
    CREATE TABLE items (
        message_id TEXT PRIMARY KEY,
        mentor TEXT NOT NULL,
        at TEXT NOT NULL,
        members TEXT NOT NULL,            -- JSON list of message keys and ids it carried
        follow_up INTEGER NOT NULL DEFAULT 0,
        source TEXT NOT NULL              -- "agent" or "sent-folder"
    );
    CREATE INDEX items_mentor ON items(mentor, at);
    CREATE TABLE replies (
        message_id TEXT PRIMARY KEY,
        mentor TEXT NOT NULL,
        at TEXT NOT NULL,
        answers TEXT NOT NULL             -- the Message-ID it answers
    );
    CREATE TABLE status (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated TEXT NOT NULL);
    CREATE TABLE log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        mentor TEXT,
        message TEXT,
        event TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    """,
    2: """
    CREATE TABLE rounds (
        round_id TEXT PRIMARY KEY,        -- one proposal round with one mentor
        mentor TEXT NOT NULL,
        state TEXT NOT NULL,              -- the round's state as JSON (agent.rules.meetings)
        open INTEGER NOT NULL DEFAULT 1,
        updated TEXT NOT NULL
    );
    CREATE TABLE meetings (
        uid TEXT PRIMARY KEY,             -- iCalendar UID of one offer
        round_id TEXT NOT NULL,
        mentor TEXT NOT NULL,
        start TEXT NOT NULL,
        end TEXT NOT NULL,
        status TEXT NOT NULL,             -- planned, sent, accepted, declined, cancelled, expired
        sequence INTEGER NOT NULL DEFAULT 0,
        message_id TEXT,                  -- of the REQUEST e-mail, to follow it through the ledger
        updated TEXT NOT NULL
    );
    CREATE INDEX meetings_mentor ON meetings(mentor, status, start);
    """,
    3: """
    -- A mentor is her addresses, not a policy file's name: what she received and answered is found by them,
    -- so renaming the file keeps her history. " a@x b@y " (lower case, space-delimited); NULL in rows written
    -- before this version until Ledger.bind() fills them in from the policy of that id.
    ALTER TABLE items ADD COLUMN addresses TEXT;
    ALTER TABLE replies ADD COLUMN addresses TEXT;
    """,
    4: """
    -- The log is also state: what bounced (log.message is the item's Message-ID) and what the student was told
    -- once. Read per item and per pass, so found by index.
    CREATE INDEX log_event ON log(event, message);
    """,
    5: """
    -- Sent copies the agent filed itself (file_in_sent = "auto") and watches for a while in case the provider
    -- files its own late (then ours goes): kept here so that a restart meanwhile still leaves one copy.
    CREATE TABLE sent_watch (
        message_id TEXT PRIMARY KEY,
        uid INTEGER NOT NULL,             -- the agent's copy in Sent
        filed_at TEXT NOT NULL
    );
    """,
    6: """
    -- A message is its Message-ID and its content: the hash of its header block (agent.rules.envelope.fingerprint),
    -- so that another message reusing a Message-ID is told from a copy. '' in rows written before this version
    -- (then any message with that Message-ID counts as a copy, as it did).
    ALTER TABLE messages ADD COLUMN fingerprint TEXT NOT NULL DEFAULT '';
    """,
    7: """
    -- Intake asks of every message whether its Message-ID is one the agent gave out: found by index, not by a scan
    -- of every row the ledger ever kept.
    CREATE INDEX messages_message_id ON messages(message_id);
    """,
    8: """
    -- Which of a message's recipients made it mail to its mentor when it was taken in (JSON, as recipients): a
    -- mentor is her addresses, so a policy file that no longer names them (rewritten for someone else, whom the
    -- message merely copies) does not pace it. '' in rows written before this version: any recipient, as before.
    ALTER TABLE messages ADD COLUMN mentor_addresses TEXT NOT NULL DEFAULT '';
    -- What a development version logged when it told that a policy file went (read as the meta kept now).
    INSERT OR IGNORE INTO meta(key, value) SELECT 'held told ' || message, 'kept' FROM log WHERE event = 'held told';
    """,
}


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring the database at ``path`` up to SCHEMA_VERSION (refusing one written by a newer version)."""
    db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    found = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    version = int(found[0]) if found else 0
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"{path} was written by a newer mentor-agent (schema {version} > {SCHEMA_VERSION}); upgrade")
    for target in range(version + 1, SCHEMA_VERSION + 1):
        # executescript commits first, so the migration and its version number go in one script.
        db.executescript(
            "BEGIN IMMEDIATE;\n"
            + _MIGRATIONS[target]
            + f"\nINSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', '{target}');\nCOMMIT;"
        )
