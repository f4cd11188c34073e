"""The IMAP command connection (:class:`Connection`): login, capabilities, folders, reading and flags.

Synchronous on purpose (imapclient blocks): the daemon calls it from worker threads. Every failure the daemon
should log and reconnect on comes out as :class:`~agent.mail.session.MailboxError`, with a short message and
never a password. Moving messages (the claim protocol) is :class:`agent.mail.claim.Mailbox`, built on this.

Why one module of a little over 400 lines: every command the agent gives on its command connection goes through
one error translation (``_run``) and one selected-folder state (``_select``); split, each part would reach into the
other's private state.
"""

from __future__ import annotations

import contextlib
import functools
import imaplib
import re
import ssl
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any, Self, TypeVar

import imapclient
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from imapclient.imapclient import DELETED

from agent.config.settings import Folders, Imap
from agent.mail import folder_names as names
from agent.mail.port import HeaderInfo, Listing, ResolvedFolders, folder_attributes
from agent.mail.pulse import Pulse
from agent.mail.session import (
    FolderRefused,
    Login,
    MailboxError,
    ServerTrouble,
    bye_said,
    describe_error,
    drop,
    ended,
    imap_errors,
    open_client,
    refused,
)
from agent.mail.uidsets import text_of, uid_set

FETCH_CHUNK = 500  # UIDs per UID FETCH; keeps command lines well under common server limits
BODY_CHUNK = 100  # whole messages per UID FETCH: bounded memory for large mail
_T = TypeVar("_T")


class Connection:
    """The command connection. Not thread-safe: one worker thread at a time."""

    def __init__(
        self, imap: Imap, login: Login, *, ssl_context: ssl.SSLContext | None = None, pulse: Pulse | None = None
    ) -> None:
        self.imap = imap
        self.login = login
        self.ssl_context = ssl_context
        # What the connection moves, and a way to end it under a command stuck on a trickle (agent.mail.pulse)
        self.pulse = pulse or Pulse()
        self._client: IMAPClient | None = None
        self._selected: str | None = None
        self._capabilities: frozenset[str] = frozenset()
        self.held_folder: str | None = None  # agent.mail.port.MailboxPort.held_folder: set by resolve_folders

    # -- connection ------------------------------------------------------------------------------------
    def connect(self) -> None:
        self.close()
        self._client = open_client(self.imap, self.login, self.ssl_context, self.pulse)
        with imap_errors("CAPABILITY"):
            self._capabilities = frozenset(text_of(c).upper() for c in self._client.capabilities())

    def close(self) -> None:
        client, self._client, self._selected = self._client, None, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            client.logout()
        drop(client)

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def client(self) -> IMAPClient:
        if self._client is None:
            raise MailboxError("not connected to the IMAP server")
        return self._client

    def _has(self, capability: str) -> bool:
        return capability in self._capabilities

    @property
    def has_idle(self) -> bool:
        return self._has("IDLE")

    @property
    def has_move(self) -> bool:
        return self._has("MOVE")

    @property
    def has_uidplus(self) -> bool:
        return self._has("UIDPLUS")

    @property
    def has_special_use(self) -> bool:
        return self._has("SPECIAL-USE")

    def _run(self, what: str, action: Callable[[], _T]) -> _T:
        """Run one command; a broken connection is closed so that the next call says "not connected"."""
        try:
            return action()
        except (imaplib.IMAP4.abort, OSError, EOFError) as error:
            said = bye_said(self._client)  # a BYE read before the connection closed says why (a token ran out)
            self.close()
            raise ended(what, said or describe_error(error)) from error
        except (imaplib.IMAP4.error, ValueError) as error:
            raise refused(what, error) from error

    def _select(self, folder: str, *, fresh: bool = False) -> dict[bytes, Any]:
        if self._selected == folder and not fresh:
            return {}
        self._selected = None
        response: dict[bytes, Any] = self._run(f"SELECT {folder!r}", lambda: self.client.select_folder(folder))
        self._selected = folder
        self._selected_now(folder, response)
        return response

    def _selected_now(self, folder: str, response: dict[bytes, Any]) -> None:
        """Called after each SELECT with the server's answer (the claim protocol reads PERMANENTFLAGS)."""

    # -- folders ---------------------------------------------------------------------------------------
    def resolve_folders(self, folders: Folders, listing: Listing | None = None) -> ResolvedFolders:
        """The real names; creates the agent's folders (and Sent, if there is none) when missing. ``listing``: what
        a LIST just answered (the start's SPECIAL-USE check): the folders it names are not asked about one by one.
        A name listed as a placeholder (``\\Noselect``: the parent of a folder, itself deleted) is created too."""
        listing = self._run("LIST", lambda: self.client.list_folders()) if listing is None else listing
        own = (folders.outbox, folders.scheduled, folders.needs_attention, folders.sending, folders.notices)
        attributes = names.without_ghosts(
            folder_attributes(listing),
            (*own, folders.sent or "Sent"),
            lambda name: bool(self._run(f"STATUS {name!r}", lambda: self.selectable(name))),
        )
        listed = {name for name, flags in attributes.items() if names.usable(flags)}
        sent, found, like = (folders.sent, "config", ()) if folders.sent else names.find_sent(attributes)
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
        for name in (
            resolved.outbox,
            resolved.scheduled,
            resolved.needs_attention,
            resolved.sending,
            resolved.sent,
            resolved.notices,
        ):
            if name not in listed:
                self.ensure_folder(name)
        self.held_folder = resolved.scheduled
        return resolved

    def folder_list(self) -> dict[str, frozenset[str]]:
        """Every folder's name and LIST attributes (lowercased, e.g. ``\\sent``)."""
        return folder_attributes(self._run("LIST", lambda: self.client.list_folders()))

    def count(self, folder: str) -> int:
        """How many messages ``folder`` holds, by STATUS: the folder is not selected (nor touched)."""
        status = self._run(f"STATUS {folder!r}", lambda: self.client.folder_status(folder, ["MESSAGES"]))
        return int(status.get(b"MESSAGES", 0))

    def providers_own(self, folder: str, folders: dict[str, frozenset[str]] | None = None) -> str | None:
        """Why ``folder`` belongs to the provider's own mail program (Outlook's Outbox), or None
        (:func:`~agent.mail.folder_names.providers_own`); ``folders``: what :meth:`folder_list` just answered."""
        folders = self.folder_list() if folders is None else folders
        return names.providers_own(folder, folders, text_of(getattr(self.client, "welcome", b"") or b""))

    def special_drafts(self) -> str | None:
        """The folder the server marks SPECIAL-USE \\Drafts, if any (for commands: they do not touch the client)."""
        found: str | None = self._run("LIST", lambda: self.client.find_special_folder(imapclient.imapclient.DRAFTS))
        return found

    def ensure_folder(self, folder: str) -> None:
        """Create ``folder`` unless it is there (a placeholder of that name is not). A refusal (a NO: the connection
        is fine) is :class:`FolderRefused`, configuration, never a lost connection to retry."""
        if folder.upper() == "INBOX":
            return

        def exists() -> bool:
            listed = folder_attributes(self.client.list_folders("", folder))
            return any(names.usable(flags) for flags in names.without_ghosts(listed, listed, self.selectable).values())

        def create() -> None:
            if exists():
                return
            try:
                self.client.create_folder(folder)
            except imaplib.IMAP4.abort:
                raise
            except IMAPClientError as error:
                if not exists():  # another agent may have just made it
                    words = describe_error(error)
                    if names.refused_for_now(words):  # the server's trouble, not the name: tried again after a wait
                        raise ServerTrouble(f"CREATE {folder!r} failed for now: {words}") from error
                    raise FolderRefused(folder, words, names.prefix_asked(words) or self._personal_prefix()) from error
            with contextlib.suppress(IMAPClientError):
                self.client.subscribe_folder(folder)

        self._run(f"CREATE {folder!r}", create)

    def selectable(self, folder: str) -> bool:
        """Whether ``folder``, listed as the parent of another, is a folder too (a STATUS; ``names.without_ghosts``).
        A broken connection raises imaplib's ``abort``: callers run it as one of their commands."""
        try:
            self.client.folder_status(folder, ["MESSAGES"])
        except imaplib.IMAP4.abort:
            raise
        except IMAPClientError as error:
            words = describe_error(error)
            if names.refused_for_now(words):  # the server's trouble: never taken for a folder that is not there
                raise ServerTrouble(f"STATUS {folder!r} failed for now: {words}") from error
            return names.says_no_rights(words)  # there, but not hers to read; any other NO: not there
        return True

    def _personal_prefix(self) -> str | None:
        """The personal namespace's prefix (``INBOX.``), if the server says one (NAMESPACE)."""
        if not self._has("NAMESPACE"):
            return None
        with contextlib.suppress(IMAPClientError):
            personal = self.client.namespace().personal
            if personal and personal[0][0]:
                return text_of(personal[0][0])
        return None

    # -- reading ---------------------------------------------------------------------------------------
    def uids(self, folder: str) -> tuple[int, list[int]]:
        """(UIDVALIDITY, every UID in the folder), from a fresh SELECT."""
        response = self._select(folder, fresh=True)
        uids = self._run(f"UID SEARCH in {folder!r}", lambda: self.client.search("ALL"))
        return int(response[b"UIDVALIDITY"]), sorted(int(uid) for uid in uids)

    def headers(self, folder: str, uids: Sequence[int]) -> list[HeaderInfo]:
        """Size, flags, INTERNALDATE and header block of each UID still present (batched, in UID order)."""
        return [info for info, _ in self._infos(folder, uids, whole=False)]

    def messages(self, folder: str, uids: Sequence[int]) -> list[tuple[HeaderInfo, bytes]]:
        """:meth:`headers` and the whole message of each UID still present, in one FETCH per ``BODY_CHUNK``
        (the header block as the server gives it, not cut from the message: the same bytes :meth:`headers`
        reads, whatever a message's line endings)."""
        return self._infos(folder, uids, whole=True)

    def _infos(self, folder: str, uids: Sequence[int], *, whole: bool) -> list[tuple[HeaderInfo, bytes]]:
        self._select(folder)
        found: list[tuple[HeaderInfo, bytes]] = []
        wanted = sorted(set(uids))
        items = ["RFC822.SIZE", "FLAGS", "INTERNALDATE", "BODY.PEEK[HEADER]", *(["BODY.PEEK[]"] if whole else [])]
        step = BODY_CHUNK if whole else FETCH_CHUNK
        for start in range(0, len(wanted), step):
            chunk = wanted[start : start + step]
            asked = set(chunk)
            data: dict[int, dict[bytes, Any]] = self._run(
                f"UID FETCH in {folder!r}", functools.partial(self._fetch, chunk, items)
            )
            for uid, item in sorted(data.items()):
                if (
                    int(uid) not in asked
                    or item.get(b"BODY[HEADER]") is None
                    or (whole and item.get(b"BODY[]") is None)
                ):
                    continue  # an unsolicited FETCH (flag change), or NIL: expunged by another session meanwhile
                when = item.get(b"INTERNALDATE")
                info = HeaderInfo(
                    uid=int(uid),
                    size=int(item.get(b"RFC822.SIZE", 0)),
                    flags=frozenset(text_of(f) for f in item.get(b"FLAGS", ())),
                    headers=bytes(item[b"BODY[HEADER]"]),
                    internaldate=when.astimezone(UTC) if isinstance(when, datetime) else None,
                )
                found.append((info, bytes(item[b"BODY[]"]) if whole else b""))
        return found

    def _fetch(self, uids: list[int], items: list[str]) -> dict[int, dict[bytes, Any]]:
        result: dict[int, dict[bytes, Any]] = self.client.fetch(uids, items)
        return result

    def fetch(self, folder: str, uid: int) -> bytes | None:
        """The whole message, byte for byte, without setting \\Seen; None if it is gone."""
        self._select(folder)
        data = self._run(f"UID FETCH {uid} in {folder!r}", lambda: self.client.fetch([uid], ["BODY.PEEK[]"]))
        body = data.get(uid, {}).get(b"BODY[]")
        return None if body is None else bytes(body)  # NIL: expunged by another session meanwhile

    def _up_to_date(self, folder: str) -> None:
        """Select ``folder``, or — when it is selected already — NOOP first: Dovecot's SEARCH in a folder that
        stays selected does not see what another session appended until the server has told us (EXISTS)."""
        if self._selected == folder:
            self._run("NOOP", self.client.noop)
        else:
            self._select(folder)

    def find_by_message_id(self, folder: str, message_id: str) -> list[int]:
        self._up_to_date(folder)
        value = message_id.strip()
        uids = self._run(
            f"UID SEARCH in {folder!r}",
            lambda: self.client.search(["HEADER", "Message-ID", value], charset="UTF-8"),
        )
        return sorted(int(uid) for uid in uids)

    def uids_since(self, folder: str, since: date) -> tuple[int, list[int]]:
        """(UIDVALIDITY, the UIDs whose INTERNALDATE is on or after ``since``), from one fresh SELECT."""
        response = self._select(folder, fresh=True)
        uids = self._run(f"UID SEARCH in {folder!r}", lambda: self.client.search(["SINCE", since]))
        return int(response[b"UIDVALIDITY"]), sorted(int(uid) for uid in uids)

    # -- changing --------------------------------------------------------------------------------------
    def append(self, folder: str, raw: bytes, flags: Sequence[str] = (), when: datetime | None = None) -> int | None:
        """APPEND; the new UID where the server says (APPENDUID), else None."""
        response = self._run(
            f"APPEND to {folder!r}",
            lambda: self.client.append(folder, raw, flags=tuple(flags), msg_time=when),
        )
        match = re.search(rb"\[APPENDUID \d+ (\d+)\]", response or b"")
        return int(match.group(1)) if match else None

    def fetch_many(self, folder: str, uids: Sequence[int]) -> dict[int, bytes]:
        """The whole messages, byte for byte, without setting \\Seen; the UIDs that are gone are left out."""
        self._select(folder)
        found: dict[int, bytes] = {}
        wanted = sorted(set(uids))
        for start in range(0, len(wanted), BODY_CHUNK):
            chunk = wanted[start : start + BODY_CHUNK]
            asked = set(chunk)
            data = self._run(f"UID FETCH in {folder!r}", functools.partial(self._fetch, chunk, ["BODY.PEEK[]"]))
            for uid, item in data.items():
                if int(uid) in asked and item.get(b"BODY[]") is not None:  # NIL: expunged by another session
                    found[int(uid)] = bytes(item[b"BODY[]"])
        return found

    def flagged(self, folder: str) -> list[int]:
        """UIDs of the messages the student flagged in ``folder``."""
        self._up_to_date(folder)
        uids = self._run(f"UID SEARCH FLAGGED in {folder!r}", lambda: self.client.search(["FLAGGED", "UNDELETED"]))
        return sorted(int(uid) for uid in uids)

    def without_keyword(self, folder: str, keyword: str) -> list[int]:
        """UIDs of the messages in ``folder`` that do not carry ``keyword`` (not \\Deleted)."""
        self._up_to_date(folder)
        found = self._run(f"UID SEARCH UNKEYWORD in {folder!r}", lambda: self.client.search(["UNKEYWORD", keyword]))
        return sorted(int(uid) for uid in found)

    def _expunge(self, uids: list[int]) -> None:
        """UID EXPUNGE exactly ``uids`` (which the caller marked \\Deleted), where the server can."""
        if self.has_uidplus:
            self._run(f"UID EXPUNGE {uid_set(uids)}", lambda: self.client.uid_expunge(uid_set(uids)))
        # Without UIDPLUS the message stays flagged \Deleted: a bare EXPUNGE would remove the student's
        # other deleted mail too. The next client that expunges the folder removes it.

    def delete(self, folder: str, uid: int) -> None:
        """STORE \\Deleted and UID EXPUNGE that one UID."""
        self.delete_many(folder, [uid])

    def delete_many(self, folder: str, uids: Sequence[int]) -> None:
        """STORE \\Deleted and UID EXPUNGE exactly these UIDs (never the student's other deleted mail)."""
        wanted = sorted(set(uids))
        if not wanted:
            return
        self._select(folder)
        marks = uid_set(wanted)
        self._run(f"UID STORE {marks} +\\Deleted", lambda: self.client.add_flags(marks, [DELETED], silent=True))
        self._expunge(wanted)

    def set_flags(self, folder: str, uid: int, flags: Sequence[str]) -> None:
        """Add ``flags`` to the message (others stay)."""
        self.add_flags_many(folder, [uid], flags)

    def replace_flags_many(self, folder: str, uids: Sequence[int], flags: Sequence[str]) -> None:
        """Set the flags of these messages to exactly ``flags``."""
        wanted = sorted(set(uids))
        if wanted:
            self._select(folder)
            marks = uid_set(wanted)
            self._run(f"UID STORE {marks} FLAGS", lambda: self.client.set_flags(marks, list(flags), silent=True))

    def remove_flags(self, folder: str, uid: int, flags: Sequence[str]) -> None:
        self.remove_flags_many(folder, [uid], flags)

    def leave_folder(self, folder: str, uid: int) -> None:
        """Gmail (X-GM-EXT-1): remove the folder's label (never an EXPUNGE there: in Drafts it would discard the
        message, which also stands in other folders); elsewhere: delete this copy."""
        if not self._has("X-GM-EXT-1"):
            self.delete(folder, uid)
            return
        self._select(folder)
        special = {"\\DRAFTS": "\\Draft", "\\SENT": "\\Sent", "\\INBOX": "\\Inbox"}
        attributes = self.folder_list().get(folder, frozenset())
        label = next((special[a.upper()] for a in attributes if a.upper() in special), folder)
        self._run(
            f"STORE -X-GM-LABELS in {folder!r}", lambda: self.client.remove_gmail_labels([uid], [label], silent=True)
        )

    def add_flags_many(self, folder: str, uids: Sequence[int], flags: Sequence[str]) -> None:
        marks = uid_set(uids)
        if marks and flags:
            self._select(folder)
            self._run(f"UID STORE {marks} +FLAGS", lambda: self.client.add_flags(marks, list(flags), silent=True))

    def remove_flags_many(self, folder: str, uids: Sequence[int], flags: Sequence[str]) -> None:
        marks = uid_set(uids)
        if marks:
            self._select(folder)
            self._run(f"UID STORE {marks} -FLAGS", lambda: self.client.remove_flags(marks, list(flags), silent=True))
