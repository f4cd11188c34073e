"""An in-memory mailbox that implements :class:`agent.mail.port.MailboxPort`, for fast tests of the reconcile
modules. The contract suite (tests/mailbox_contract/) runs the same assertions against it, Dovecot and pymap.

What it models, because the reconcile code relies on it:

- folders with UIDVALIDITY and UIDs that only grow (never reused), flags and keywords, INTERNALDATE;
- SPECIAL-USE attributes (``\\Sent``, ``\\Drafts``) on folders, as LIST shows them;
- a server shared by several sessions (:class:`MemoryServer` and one :class:`MemoryMailbox` per agent): every
  command runs under one lock, so a MOVE is atomic, and a message that carries another agent's claim keyword
  is left alone (``move_many`` leaves it out; ``move`` raises MessageGone), as the claim protocol makes it;
- Message-ID search (as IMAP's ``SEARCH HEADER``: a case-insensitive substring of the header's value);
- injected failures (:meth:`MemoryServer.fail`): a command refused before it happens, or done and then the
  connection drops before the answer (``after=True``: e.g. a claim that happened although the agent saw an
  error, or an APPEND to Sent that failed after SMTP accepted). A dropped session says "not connected" until
  :meth:`MemoryMailbox.connect`, as the IMAP Mailbox does.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Self

from agent.config.settings import Folders
from agent.mail.claim import CLAIM_KEYWORD
from agent.mail.folder_names import find_sent
from agent.mail.port import HELD_KEYWORD, HeaderInfo, MailboxPort, ResolvedFolders
from agent.mail.pulse import Pulse
from agent.mail.session import CommandRefused, MailboxError, MessageGone, SessionExpired


@dataclass
class _Message:
    raw: bytes
    flags: set[str]
    internaldate: datetime


@dataclass
class _Folder:
    validity: int
    attributes: frozenset[str] = frozenset()
    next_uid: int = 1
    messages: dict[int, _Message] = field(default_factory=dict)


@dataclass
class Failure:
    """One injected failure: ``operation`` (a method name) in ``folder`` (None: any) fails ``times`` times."""

    operation: str
    folder: str | None = None
    after: bool = False  # True: the command takes effect, then the connection drops before the answer
    times: int = 1
    message: str = "connection dropped (injected)"
    expired: bool = False  # raise SessionExpired (an OAuth token ran out) rather than MailboxError
    refused: bool = False  # the server answers NO (CommandRefused); the connection stays up


def header_block(raw: bytes) -> bytes:
    """What IMAP's BODY[HEADER] returns: the header lines and the blank line after them."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        at = raw.find(separator)
        if at >= 0:
            return raw[: at + len(separator)]
    return raw


def _message_id(raw: bytes) -> str:
    parsed = BytesHeaderParser(policy=compat32).parsebytes(header_block(raw))
    value = parsed.get("Message-ID")
    return " ".join(str(value).split()) if value else ""


class MemoryServer:
    """The shared mailbox of one account: what several agents (sessions) see."""

    def __init__(
        self,
        *,
        special_use: bool = True,
        sent: str = "Sent",
        drafts: str = "Drafts",
        extra_folders: Sequence[str] = (),
    ) -> None:
        self.lock = threading.RLock()
        self.special_use = special_use
        self.folders: dict[str, _Folder] = {}
        self.failures: list[Failure] = []
        self.commands: list[tuple[str, str | None]] = []  # (operation, folder), for tests that count round trips
        self._validity = 1_700_000_000
        self.create("INBOX")
        self.create(sent, attributes=frozenset({"\\sent"}) if special_use else frozenset())
        self.create(drafts, attributes=frozenset({"\\drafts"}) if special_use else frozenset())
        for name in extra_folders:
            self.create(name)

    def create(self, name: str, attributes: frozenset[str] = frozenset()) -> _Folder:
        with self.lock:
            if name not in self.folders:
                self._validity += 1
                self.folders[name] = _Folder(self._validity, frozenset({"\\hasnochildren"}) | attributes)
            return self.folders[name]

    def renumber(self, folder: str) -> None:
        """The server renumbers ``folder`` (an index rebuilt, a migration): a new UIDVALIDITY, UIDs from 1 again."""
        with self.lock:
            box = self.folders[folder]
            self._validity += 1
            box.validity = self._validity
            kept = [message for _, message in sorted(box.messages.items())]
            box.messages = dict(enumerate(kept, start=1))
            box.next_uid = len(kept) + 1

    def fail(
        self,
        operation: str,
        folder: str | None = None,
        *,
        after: bool = False,
        times: int = 1,
        message: str = "connection dropped (injected)",
        expired: bool = False,
        refused: bool = False,
    ) -> Failure:
        """Make the next ``times`` calls of ``operation`` (in ``folder``) fail; see :class:`Failure`."""
        failure = Failure(operation, folder, after, times, message, expired, refused)
        self.failures.append(failure)
        return failure

    # -- what a test looks at directly (as tests/servers/dovecot.py does for Dovecot)
    def messages(self, folder: str) -> dict[int, bytes]:
        with self.lock:
            return {uid: m.raw for uid, m in sorted(self.folders[folder].messages.items())}

    def flags(self, folder: str, uid: int) -> set[str]:
        with self.lock:
            return set(self.folders[folder].messages[uid].flags)

    def put(self, folder: str, raw: bytes, flags: Sequence[str] = (), when: datetime | None = None) -> int:
        """APPEND as another client would (the student, a mentor's reply arriving in INBOX)."""
        with self.lock:
            box = self.folders.get(folder) or self.create(folder)
            uid = box.next_uid
            box.next_uid += 1
            box.messages[uid] = _Message(raw, set(flags), (when or datetime.now(UTC)).astimezone(UTC))
            return uid


class MemoryMailbox:
    """One agent's session on a :class:`MemoryServer`; implements :class:`agent.mail.port.MailboxPort`."""

    def __init__(self, server: MemoryServer | None = None, *, agent_id: str = "memory") -> None:
        self.server = server or MemoryServer()
        self.claim_keyword = CLAIM_KEYWORD + agent_id
        self.held_keyword = HELD_KEYWORD + agent_id
        self.other_agents: set[str] = set()
        self.pulse: Pulse | None = None  # in memory: nothing trickles
        self.connected = True
        self.held_folder: str | None = None

    # -- session
    def connect(self) -> None:
        self.connected = True

    def close(self) -> None:
        self.connected = False

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def _command(self, operation: str, folder: str | None = None) -> Iterator[_Folder | None]:
        """One command, under the server's lock, with the injected failures for it."""
        if not self.connected:
            raise MailboxError("not connected to the IMAP server")
        with self.server.lock:
            self.server.commands.append((operation, folder))
            failure = next(
                (
                    f
                    for f in self.server.failures
                    if f.operation == operation and f.times > 0 and (f.folder is None or f.folder == folder)
                ),
                None,
            )
            if failure is not None:
                failure.times -= 1
                if failure.refused:
                    raise CommandRefused(f"{operation} in {folder!r}: NO {failure.message}")
                if not failure.after:
                    self._drop(failure, operation, folder)
            box = self.server.folders.get(folder) if folder is not None else None
            if folder is not None and box is None:  # a NO, as Dovecot answers it: the connection stays up
                code = "TRYCREATE" if operation == "append" else "NONEXISTENT"
                raise CommandRefused(f"{operation} in {folder!r}: NO [{code}] Mailbox doesn't exist: {folder}")
            yield box
            if failure is not None:
                self._drop(failure, operation, folder)

    def _drop(self, failure: Failure, operation: str, folder: str | None) -> None:
        self.connected = False
        kind = SessionExpired if failure.expired else MailboxError
        raise kind(f"{operation} in {folder!r}: {failure.message}")

    @staticmethod
    def _live(box: _Folder) -> dict[int, _Message]:
        return {uid: m for uid, m in box.messages.items() if "\\Deleted" not in m.flags}

    # -- folders
    def resolve_folders(self, folders: Folders) -> ResolvedFolders:
        listed = self.folder_list()
        sent, found, like = (folders.sent, "config", ()) if folders.sent else find_sent(listed)
        resolved = ResolvedFolders(
            inbox=folders.inbox,
            outbox=folders.outbox,
            scheduled=folders.scheduled,
            needs_attention=folders.needs_attention,
            sending=folders.sending,
            sent=sent,
            notices=folders.notices,
            sent_found=found,
            sent_like=like,
        )
        for name in (resolved.outbox, resolved.scheduled, resolved.needs_attention, resolved.sending):
            self.ensure_folder(name)
        self.ensure_folder(resolved.sent)
        self.ensure_folder(resolved.notices)
        self.held_folder = resolved.scheduled
        return resolved

    def ensure_folder(self, folder: str) -> None:
        with self._command("ensure_folder"):
            self.server.create(folder)

    def special_drafts(self) -> str | None:
        return next((name for name, attrs in self.folder_list().items() if "\\drafts" in attrs), None)

    def folder_list(self) -> dict[str, frozenset[str]]:
        with self._command("folder_list"):
            return {name: box.attributes for name, box in self.server.folders.items()}

    def count(self, folder: str) -> int:
        with self._command("count", folder) as box:
            assert box is not None
            return len(box.messages)

    def providers_own(self, folder: str, folders: dict[str, frozenset[str]] | None = None) -> str | None:
        listed = self.folder_list() if folders is None else folders
        if folder not in listed:
            return None
        if "\\outbox" in listed[folder]:
            return f"the server marks {folder!r} as its own \\Outbox"
        if folder.casefold() == "outbox" and {"sent items", "deleted items", "junk email"} <= {
            name.casefold() for name in listed
        }:
            return (
                f"the mailbox has Exchange's folders (Sent Items, Deleted Items, Junk Email): {folder!r} is "
                "Outlook's own Outbox"
            )
        return None

    # -- reading
    def uids(self, folder: str) -> tuple[int, list[int]]:
        with self._command("uids", folder) as box:
            assert box is not None
            return box.validity, sorted(box.messages)

    def headers(self, folder: str, uids: Sequence[int]) -> list[HeaderInfo]:
        with self._command("headers", folder) as box:
            assert box is not None
            return [_info(uid, m) for uid in sorted(set(uids)) if (m := box.messages.get(uid)) is not None]

    def messages(self, folder: str, uids: Sequence[int]) -> list[tuple[HeaderInfo, bytes]]:
        with self._command("messages", folder) as box:
            assert box is not None
            return [(_info(uid, m), m.raw) for uid in sorted(set(uids)) if (m := box.messages.get(uid)) is not None]

    def fetch(self, folder: str, uid: int) -> bytes | None:
        with self._command("fetch", folder) as box:
            assert box is not None
            found = box.messages.get(uid)
            return found.raw if found is not None else None

    def fetch_many(self, folder: str, uids: Sequence[int]) -> dict[int, bytes]:
        with self._command("fetch_many", folder) as box:
            assert box is not None
            return {uid: box.messages[uid].raw for uid in sorted(set(uids)) if uid in box.messages}

    def find_by_message_id(self, folder: str, message_id: str) -> list[int]:
        wanted = message_id.strip().lower()
        with self._command("find_by_message_id", folder) as box:
            assert box is not None
            return sorted(uid for uid, m in box.messages.items() if wanted and wanted in _message_id(m.raw).lower())

    def uids_since(self, folder: str, since: date) -> tuple[int, list[int]]:
        with self._command("uids_since", folder) as box:
            assert box is not None
            return box.validity, sorted(uid for uid, m in box.messages.items() if m.internaldate.date() >= since)

    def flagged(self, folder: str) -> list[int]:
        with self._command("flagged", folder) as box:
            assert box is not None
            return sorted(uid for uid, m in self._live(box).items() if "\\Flagged" in m.flags)

    def without_keyword(self, folder: str, keyword: str) -> list[int]:
        with self._command("without_keyword", folder) as box:
            assert box is not None
            return sorted(uid for uid, m in self._live(box).items() if keyword not in m.flags)

    def add_flags_many(self, folder: str, uids: Sequence[int], flags: Sequence[str]) -> None:
        with self._command("add_flags_many", folder) as box:
            assert box is not None
            for uid in uids:
                if uid in box.messages:
                    box.messages[uid].flags |= set(flags)

    def modseqs(self, folder: str, uids: Sequence[int]) -> dict[int, int] | None:
        with self._command("modseqs", folder):
            return None  # no CONDSTORE modelled: as at Microsoft 365, Yahoo or iCloud

    # -- changing
    def append(self, folder: str, raw: bytes, flags: Sequence[str] = (), when: datetime | None = None) -> int | None:
        with self._command("append", folder):
            return self.server.put(folder, raw, flags, when)

    def move(self, folder: str, uid: int, target: str) -> int | None:
        moved = self.move_many(folder, [uid], target)
        if uid not in moved:
            raise MessageGone(f"UID {uid} is no longer in {folder!r} (or another agent claimed it)")
        return moved[uid]

    def move_many(self, folder: str, uids: Sequence[int], target: str, *, claim: bool = True) -> dict[int, int | None]:
        with self._command("move_many", folder) as box:
            assert box is not None
            into = self.server.folders.get(target)
            if into is None:
                raise MailboxError(f"UID MOVE to {target!r}: NO [TRYCREATE] Mailbox doesn't exist")
            moved: dict[int, int | None] = {}
            for uid in sorted(set(uids)):
                found = self._live(box).get(uid)
                if found is None:
                    continue
                claimed = {f for f in found.flags if f.lower().startswith(CLAIM_KEYWORD.lower())}
                if claim and claimed - {self.claim_keyword}:
                    self.other_agents |= {c[len(CLAIM_KEYWORD) :].lower() for c in claimed - {self.claim_keyword}}
                    continue  # another agent is moving it right now
                del box.messages[uid]
                moved[uid] = into.next_uid
                held = {self.held_keyword} if target == self.held_folder else set()
                into.messages[into.next_uid] = _Message(found.raw, found.flags - claimed | held, found.internaldate)
                into.next_uid += 1
            return moved

    def delete(self, folder: str, uid: int) -> None:
        self.discard_many(folder, [uid])

    def discard_many(self, folder: str, uids: Sequence[int]) -> None:
        with self._command("discard_many", folder) as box:
            assert box is not None
            for uid in set(uids):
                box.messages.pop(uid, None)

    def set_flags(self, folder: str, uid: int, flags: Sequence[str]) -> None:
        with self._command("set_flags", folder) as box:
            assert box is not None
            if uid in box.messages:
                box.messages[uid].flags |= set(flags)

    def replace_flags_many(self, folder: str, uids: Sequence[int], flags: Sequence[str]) -> None:
        with self._command("replace_flags_many", folder) as box:
            assert box is not None
            for uid in set(uids):
                if uid in box.messages:
                    box.messages[uid].flags = set(flags)

    def remove_flags(self, folder: str, uid: int, flags: Sequence[str]) -> None:
        with self._command("remove_flags", folder) as box:
            assert box is not None
            if uid in box.messages:
                box.messages[uid].flags -= set(flags)

    def leave_folder(self, folder: str, uid: int) -> None:
        self.delete(folder, uid)  # the fake's folders hold copies, not labels


def _info(uid: int, message: _Message) -> HeaderInfo:
    """What a header FETCH tells of a message."""
    return HeaderInfo(
        uid=uid,
        size=len(message.raw),
        flags=frozenset(message.flags),
        headers=header_block(message.raw),
        internaldate=message.internaldate,
    )


def as_port(mailbox: MemoryMailbox) -> MailboxPort:
    """The fake as the interface: mypy checks here that it implements every operation the reconcile uses."""
    return mailbox
