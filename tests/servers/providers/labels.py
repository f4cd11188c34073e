"""Gmail's labels over IMAP, emulated beside the provider proxy: one message, shown in several folders.

The test Dovecot keeps one copy per folder. :class:`Labels` makes those copies behave as one Gmail message: a
message is known by its bytes (copies with the same bytes are one message, as Gmail merges copies with one
Message-ID), and after every command that changes a folder (APPEND, STORE, COPY, MOVE, EXPUNGE, CLOSE) the proxy
asks :meth:`Labels.sync` to compare every folder with what it saw last time and to do what Gmail does
(https://developers.google.com/gmail/imap/imap-extensions, "IMAP and Gmail labels"):

- APPEND into a folder other than All Mail, Trash and Spam also puts the message in "[Gmail]/All Mail", once:
  APPENDing the same bytes to a second folder gives that one message a second label.
- Flags are the message's, not the folder's: a STORE on one copy is applied to every copy (``\\Deleted`` and
  ``\\Recent`` stay per folder).
- Removing a copy from a label folder (EXPUNGE, MOVE out, ``STORE -X-GM-LABELS``) removes that label only; the
  message stays in All Mail (and in its other folders).
- Removing it from All Mail (EXPUNGE there), or putting it into Trash or Spam (MOVE, or COPY and EXPUNGE), removes
  every label: each other copy goes. A message in Trash or Spam is not in All Mail.
- A label is on a message or not: a second copy of one message in one folder (APPENDed twice, COPYed again) is
  removed, the first stays.
- The hidden "[Gmail]/Label removed" folder (where a ``STORE -X-GM-LABELS`` moves a copy) is emptied.

All the work is done through a connection of its own to Dovecot (one per proxy, logged in with the first LOGIN a
client made), under a lock: a sync sees every session's changes, and the client whose command caused it gets its
tagged answer only once the other copies were brought in line (Gmail answers from one store).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from imapclient import IMAPClient

from tests.servers.providers.profiles import Profile

__all__ = ["Copy", "Labels"]

LOCAL_FLAGS = frozenset({"\\RECENT", "\\DELETED"})  # per folder, even at Gmail


@dataclass(frozen=True)
class Copy:
    """One folder's copy of a message: which message (a hash of its bytes) and the message's flags."""

    message: str
    flags: frozenset[str]

    @property
    def shared_flags(self) -> frozenset[str]:
        return frozenset(f for f in self.flags if f.upper() not in LOCAL_FLAGS)


Snapshot = dict[str, dict[int, Copy]]  # folder -> UID -> copy


def message_of(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


class Labels:
    """The label layer of one proxy (one user): see the module docstring."""

    def __init__(self, profile: Profile, upstream: tuple[str, int]) -> None:
        assert profile.all_mail is not None
        self.all_mail = profile.all_mail
        self.hidden = profile.unlabelled
        self.outside = {name for name, use in profile.folders.items() if use in ("\\Trash", "\\Junk")}
        self.upstream = upstream
        self.credentials: tuple[str, str] | None = None
        self.events: list[tuple[str, str]] = []  # what the layer did: ("labels removed", ...), ("flags shared", ...)
        self._lock = threading.Lock()
        self._client: IMAPClient | None = None
        self._seen: Snapshot = {}
        self._bytes: dict[tuple[str, int, int], str] = {}  # (folder, UIDVALIDITY, UID) -> message
        self._states: dict[str, tuple[tuple[int, ...], dict[int, Copy]]] = {}  # folder -> (its STATUS, copies)

    # -- called by the proxy ---------------------------------------------------------------------------
    def appended(self, folder: str, flags: Sequence[str], raw: bytes) -> None:
        """An APPEND into ``folder`` was accepted: the message shows in All Mail too (once), then sync."""
        with self._lock:
            client = self._connect()
            if client is None:
                return
            if folder != self.all_mail and folder not in self.outside and folder != self.hidden:
                mine = message_of(raw)
                if mine not in {c.message for c in self._read(client, self.all_mail).values()}:
                    kept = tuple(f for f in flags if f.upper() != "\\RECENT")
                    client.append(self.all_mail, raw, flags=kept)
            self._sync(client)

    def sync(self) -> None:
        with self._lock:
            client = self._connect()
            if client is not None:
                self._sync(client)

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.logout()
            with contextlib.suppress(Exception):
                client.shutdown()

    # -- the work --------------------------------------------------------------------------------------
    def _connect(self) -> IMAPClient | None:
        if self._client is None:
            if self.credentials is None:
                self.events.append(("labels", "no LOGIN seen: nothing shared"))
                return None
            client = IMAPClient(self.upstream[0], port=self.upstream[1], ssl=False, timeout=10)
            client.login(*self.credentials)
            self._client = client
            self._seen = self._snapshot(client)
        return self._client

    def _folders(self, client: IMAPClient) -> list[str]:
        names = []
        for attributes, _, name in client.list_folders():
            if b"\\Noselect" in attributes or b"\\NonExistent" in attributes or name == self.hidden:
                continue
            names.append(str(name))
        return names

    def _read(self, client: IMAPClient, folder: str) -> dict[int, Copy]:
        """The folder's copies; read again only when its STATUS changed (a new message, an expunge, a flag)."""
        status = client.folder_status(folder, [b"MESSAGES", b"UIDNEXT", b"UIDVALIDITY", b"HIGHESTMODSEQ"])
        state = tuple(int(status[k]) for k in (b"MESSAGES", b"UIDNEXT", b"UIDVALIDITY", b"HIGHESTMODSEQ"))
        known = self._states.get(folder)
        if known is not None and known[0] == state:
            return known[1]
        copies = self._fetch(client, folder)
        self._states[folder] = (state, copies)
        return copies

    def _fetch(self, client: IMAPClient, folder: str) -> dict[int, Copy]:
        selected = client.select_folder(folder)
        validity = int(selected[b"UIDVALIDITY"])
        uids = client.search(["ALL"]) if int(selected[b"EXISTS"]) else []
        flags = client.fetch(uids, ["FLAGS"]) if uids else {}
        unknown = [uid for uid in flags if (folder, validity, uid) not in self._bytes]
        if unknown:
            for uid, item in client.fetch(unknown, ["BODY.PEEK[]"]).items():
                self._bytes[(folder, validity, uid)] = message_of(bytes(item[b"BODY[]"]))
        return {
            uid: Copy(self._bytes[(folder, validity, uid)], frozenset(_text(f) for f in item[b"FLAGS"]))
            for uid, item in flags.items()
            if (folder, validity, uid) in self._bytes
        }

    def _snapshot(self, client: IMAPClient) -> Snapshot:
        return {folder: self._read(client, folder) for folder in self._folders(client)}

    def _sync(self, client: IMAPClient) -> None:
        if self.hidden and client.folder_exists(self.hidden):
            client.select_folder(self.hidden)
            hidden = client.search(["ALL"])
            if hidden:
                _delete(client, hidden)
        before, now = self._seen, self._snapshot(client)
        doomed: set[str] = set()  # messages whose every label goes
        for folder, copies in before.items():
            for uid, copy in copies.items():
                if folder == self.all_mail and uid not in now.get(folder, {}):
                    doomed.add(copy.message)  # expunged from All Mail: deleted everywhere
        for folder in self.outside:
            for uid, copy in now.get(folder, {}).items():
                if uid not in before.get(folder, {}):
                    doomed.add(copy.message)  # into Trash or Spam: out of All Mail and every label
        changed: dict[str, frozenset[str]] = {}
        for folder, copies in now.items():
            if folder in self.outside:
                continue
            for uid, copy in copies.items():
                old = before.get(folder, {}).get(uid)
                if old is not None and old.shared_flags != copy.shared_flags:
                    changed[copy.message] = copy.shared_flags
        for folder, copies in now.items():
            if folder in self.outside:
                continue
            gone = [uid for uid, c in copies.items() if c.message in doomed]
            if gone:
                client.select_folder(folder)
                _delete(client, gone)
                self.events.append(("labels removed", f"{folder}: {len(gone)} message(s) deleted everywhere"))
            for uid, copy in copies.items():
                wanted = changed.get(copy.message)
                if copy.message in doomed or wanted is None or wanted == copy.shared_flags:
                    continue
                local = [f for f in copy.flags if f.upper() == "\\DELETED"]
                client.select_folder(folder)
                client.set_flags([uid], sorted(wanted) + local, silent=True)
                self.events.append(("flags shared", f"{folder} {uid}: {' '.join(sorted(wanted)) or '()'}"))
        twice = False
        for folder, copies in now.items():
            first: dict[str, int] = {}
            extra = []
            for uid in sorted(copies):
                if copies[uid].message in doomed:
                    continue
                if copies[uid].message in first:
                    extra.append(uid)
                else:
                    first[copies[uid].message] = uid
            if extra:
                client.select_folder(folder)
                _delete(client, extra)
                self.events.append(("labels", f"{folder}: {len(extra)} second copy(ies) of one message removed"))
                twice = True
        self._seen = self._snapshot(client) if doomed or changed or twice else now


def _text(flag: bytes | str) -> str:
    return flag.decode() if isinstance(flag, bytes) else flag


def _delete(client: IMAPClient, uids: Iterable[int]) -> None:
    wanted = sorted(uids)
    client.add_flags(wanted, ["\\Deleted"], silent=True)
    client.uid_expunge(wanted)
