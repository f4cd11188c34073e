"""The IMAP adapter: one command connection (:class:`Mailbox`) and IDLE-only connections (:class:`Watcher`).

Synchronous on purpose (imapclient blocks): the daemon calls it from worker threads. Every failure the daemon
should log and reconnect on comes out as :class:`MailboxError`, with a short message and never a password.
"""

from __future__ import annotations

import contextlib
import functools
import imaplib
import logging
import re
import secrets
import select
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import imapclient
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from imapclient.imapclient import DELETED, SENT, TRASH, _parse_untagged_response
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_random_exponential

from agent.config.settings import Folders, Imap
from agent.errors import ConnectionProblem, LoginRefused, TlsProblem
from agent.mail.connection_errors import Endpoint, client_context, plain_to_tls_advice, tls_advice
from agent.rules.envelope import message_ids, parse_envelope

__all__ = [
    "HeaderInfo",
    "ImapLoginRefused",
    "ImapTlsProblem",
    "Login",
    "Mailbox",
    "MailboxError",
    "MessageGone",
    "ResolvedFolders",
    "SessionExpired",
    "Watcher",
]

FETCH_CHUNK = 500  # UIDs per UID FETCH; keeps command lines well under common server limits
BODY_CHUNK = 100  # whole messages per UID FETCH: bounded memory for large mail
CONNECT_ATTEMPTS = 3
CLAIM_KEYWORD = "$MentorAgentClaim"  # + an agent's id: set (conditionally) on a message while that agent moves it
STALE_CLAIM = 60.0  # seconds: a claim keyword still there this long after we first saw it was abandoned
_CHANGES = {b"EXISTS", b"EXPUNGE", b"FETCH", b"RECENT", b"VANISHED"}
# What a message is known by when a UID map is checked: its Message-ID (the ledger's key for it).
_ID_ITEM = "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"
_T = TypeVar("_T")
log = logging.getLogger("mentor_agent.mailbox")


@dataclass(frozen=True)
class Login:
    username: str
    password: str | None = None
    oauth2_token: str | None = None

    def __repr__(self) -> str:  # never show secrets in logs or tracebacks
        return f"Login(username={self.username!r})"


@dataclass(frozen=True)
class HeaderInfo:
    uid: int
    size: int
    flags: frozenset[str]
    headers: bytes
    internaldate: datetime | None


@dataclass(frozen=True)
class ResolvedFolders:
    """The real folder names on this server."""

    inbox: str
    outbox: str
    scheduled: str
    needs_attention: str
    sending: str
    sent: str
    notices: str


class MailboxError(ConnectionProblem):
    """Anything the daemon should log and reconnect on."""


class ImapLoginRefused(MailboxError, LoginRefused):
    """The server refused the login: reconnecting at once cannot help (and risks locking the account)."""


class ImapTlsProblem(MailboxError, TlsProblem):
    """TLS cannot work as configured (certificate, or TLS and plain text mixed up): configuration."""


class MessageGone(MailboxError):
    """The message is no longer where we looked (another agent moved it, or the student deleted it)."""


class SessionExpired(MailboxError):
    """The server ended the session because the OAuth token ran out (Microsoft: ``* BYE Session invalidated -
    AccessTokenExpired``, imapsync #250): reconnect at once with a fresh token; not a failure to back off from."""


_EXPIRED = re.compile(r"AccessTokenExpired|token (has )?expired|expired token", re.IGNORECASE)


def _ended(what: str, text: str) -> MailboxError:
    """The error for a session the server ended with ``text``."""
    kind = SessionExpired if _EXPIRED.search(text) else MailboxError
    return kind(f"{what}: {text}")


class _ConnectFailed(MailboxError):
    """Could not reach the server; worth another attempt."""


def _describe(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text if len(text) <= 200 else text[:200] + "…"


@contextlib.contextmanager
def _errors(what: str) -> Iterator[None]:
    """Turn imapclient, imaplib, socket and TLS failures into MailboxError."""
    try:
        yield
    except MailboxError:
        raise
    except (IMAPClientError, imaplib.IMAP4.error, OSError, ValueError, EOFError) as error:
        raise MailboxError(f"{what}: {_describe(error)}") from error


def endpoint(imap: Imap) -> Endpoint:
    return Endpoint("imap", imap.host, imap.port, imap.security, imap.ca_file, imap.timeout)


def _open(imap: Imap, login: Login, ssl_context: ssl.SSLContext | None) -> IMAPClient:
    """Connect and log in, retrying only failures to reach the server (never a refusal or a TLS problem)."""
    end = endpoint(imap)

    @retry(
        stop=stop_after_attempt(CONNECT_ATTEMPTS),
        wait=wait_random_exponential(multiplier=0.2, max=5),
        retry=retry_if_exception(lambda error: isinstance(error, _ConnectFailed)),
        reraise=True,
    )
    def attempt() -> IMAPClient:
        where = f"{imap.host}:{imap.port}"
        timeout = imapclient.SocketTimeout(connect=imap.timeout, read=imap.timeout)
        context = ssl_context or client_context(imap.ca_file)
        try:
            client = IMAPClient(
                imap.host, port=imap.port, ssl=imap.security == "tls", ssl_context=context, timeout=timeout
            )
        except (OSError, IMAPClientError, imaplib.IMAP4.error) as error:
            advice = tls_advice(error, end)
            if advice is None and isinstance(error, TimeoutError):
                advice = plain_to_tls_advice(end)  # no greeting: is it a TLS port spoken to in plain text?
            if advice:
                raise ImapTlsProblem(advice) from error
            raise _ConnectFailed(f"imap: cannot connect to {where}: {_describe(error)}") from error
        try:
            client.normalise_times = False
            with contextlib.suppress(OSError):
                # imaplib writes a literal and its closing CRLF separately: without this, Nagle's algorithm
                # holds the CRLF back until the server's delayed ACK (about 40 ms per APPEND).
                client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if imap.security == "starttls":
                try:
                    client.starttls(context)
                except (IMAPClientError, imaplib.IMAP4.error, OSError, ValueError) as error:
                    advice = tls_advice(error, end)
                    if advice:
                        raise ImapTlsProblem(advice) from error
                    raise MailboxError(f"imap: STARTTLS with {where}: {_describe(error)}") from error
            _authenticate(client, imap, login, where)
        except BaseException:
            _drop(client)
            raise
        return client

    return attempt()


def _authenticate(client: IMAPClient, imap: Imap, login: Login, where: str) -> None:
    username = login.username or imap.username
    try:
        if login.oauth2_token:
            client.oauth2_login(username, login.oauth2_token)
        else:
            client.login(username, login.password or "")
    except (IMAPClientError, imaplib.IMAP4.error) as error:
        # The server's answer, never what we sent: the password must not reach a log.
        text = _server_words(error)
        if login.password:
            text = text.replace(login.password, "***")
        if "[UNAVAILABLE]" in text.upper():  # RFC 5530: a temporary failure on the server's side
            raise MailboxError(f"imap: login as {username!r} at {where} failed for now: {text}") from error
        raise ImapLoginRefused(f"imap: login as {username!r} refused by {where}: {text}") from error
    except OSError as error:
        raise MailboxError(f"imap: login at {where} failed: {_describe(error)}") from error


def _server_words(error: BaseException) -> str:
    """imapclient shows the server's answer as ``b'...'``: just the words."""
    text = _describe(error)
    if len(text) >= 3 and text[:2] in ("b'", 'b"') and text[-1] == text[1]:
        text = text[2:-1]
    return text


def _drop(client: IMAPClient) -> None:
    """Close a connection without caring whether the server is still there."""
    with contextlib.suppress(Exception):
        client.shutdown()


def _str(flag: bytes | str) -> str:
    return flag.decode("utf-8", "replace") if isinstance(flag, bytes) else str(flag)


class Mailbox:
    """The command connection. Not thread-safe: one worker thread at a time."""

    def __init__(
        self, imap: Imap, login: Login, *, ssl_context: ssl.SSLContext | None = None, agent_id: str | None = None
    ) -> None:
        self.imap = imap
        self.login = login
        self.ssl_context = ssl_context
        # Each agent claims with its own keyword, so that after a restart it recognises a claim it made itself
        # (killed between STORE and MOVE) and goes on at once; the daemon passes an id kept in its ledger.
        self.claim_keyword = CLAIM_KEYWORD + (agent_id or secrets.token_hex(4))
        self.force_copy_fallback = False  # tests set this to exercise COPY + STORE + UID EXPUNGE
        self._client: IMAPClient | None = None
        self._selected: str | None = None
        self._capabilities: frozenset[str] = frozenset()
        self._claims_seen: dict[tuple[str, int], float] = {}  # (folder, UID) -> when first seen claimed by others
        # Decided by looking, never by the server's name: whether CONDSTORE works when used (iCloud advertises
        # it and refuses it), and per folder whether a custom keyword is kept (PERMANENTFLAGS without \*, or
        # a STORE that the server accepts and then forgets, as at Microsoft 365).
        self._condstore_works = True
        self._keywords_kept: dict[str, bool] = {}
        self.remapped = 0  # UID maps (COPYUID) found wrong and rebuilt by Message-ID, this connection
        self._trash: str | None = None  # Gmail's Trash folder, once looked up ("" where there is none)

    # -- connection ------------------------------------------------------------------------------------
    def connect(self) -> None:
        self.close()
        self._client = _open(self.imap, self.login, self.ssl_context)
        with _errors("CAPABILITY"):
            self._capabilities = frozenset(_str(c).upper() for c in self._client.capabilities())
        self._condstore_works = True
        self._keywords_kept = {}

    def close(self) -> None:
        client, self._client, self._selected = self._client, None, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            client.logout()
        _drop(client)

    def __enter__(self) -> Mailbox:
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
            self.close()
            raise _ended(what, _describe(error)) from error
        except (imaplib.IMAP4.error, ValueError) as error:
            raise MailboxError(f"{what}: {_describe(error)}") from error

    def _select(self, folder: str, *, fresh: bool = False) -> dict[bytes, Any]:
        if self._selected == folder and not fresh:
            return {}
        self._selected = None
        response: dict[bytes, Any] = self._run(f"SELECT {folder!r}", lambda: self.client.select_folder(folder))
        self._selected = folder
        permanent = response.get(b"PERMANENTFLAGS")
        if permanent is not None and folder not in self._keywords_kept:
            # RFC 3501: \* means new keywords can be kept; without PERMANENTFLAGS every flag is permanent.
            self._keywords_kept[folder] = any(_str(f) in ("\\*", self.claim_keyword) for f in permanent)
        return response

    @property
    def uses_claims(self) -> bool:
        """Whether a claim keyword is usable at all here (CONDSTORE advertised and not refused)."""
        return self._has("CONDSTORE") and self._condstore_works

    def _claims_work(self, folder: str) -> bool:
        return self.uses_claims and self._keywords_kept.get(folder, True)

    # -- folders ---------------------------------------------------------------------------------------
    def resolve_folders(self, folders: Folders) -> ResolvedFolders:
        """The real names; creates the agent's folders (and Sent, if there is none) when missing."""
        sent = folders.sent or self._run("LIST", lambda: self.client.find_special_folder(SENT))
        resolved = ResolvedFolders(
            inbox=folders.inbox,
            outbox=folders.outbox,
            scheduled=folders.scheduled,
            needs_attention=folders.needs_attention,
            sending=folders.sending,
            sent=sent or "Sent",
            notices=folders.notices,
        )
        for name in (
            resolved.outbox,
            resolved.scheduled,
            resolved.needs_attention,
            resolved.sending,
            resolved.sent,
            resolved.notices,
        ):
            self.ensure_folder(name)
        return resolved

    def folder_list(self) -> dict[str, frozenset[str]]:
        """Every folder's name and LIST attributes (lowercased, e.g. ``\\sent``)."""
        listing = self._run("LIST", lambda: self.client.list_folders())
        return {_str(name): frozenset(_str(flag).lower() for flag in flags) for flags, _sep, name in listing}

    def count(self, folder: str) -> int:
        """How many messages ``folder`` holds, by STATUS: the folder is not selected (nor touched)."""
        status = self._run(f"STATUS {folder!r}", lambda: self.client.folder_status(folder, ["MESSAGES"]))
        return int(status.get(b"MESSAGES", 0))

    def providers_own(self, folder: str) -> str | None:
        """Why ``folder`` belongs to the provider's own mail program (Outlook's Outbox, where Outlook parks mail
        while it sends), or None. Decided by what the server shows: a ``\\Outbox`` attribute, a Microsoft
        Exchange greeting, or Exchange's own folder set (Sent Items, Deleted Items, Junk Email) beside it."""
        folders = self.folder_list()
        if folder not in folders:
            return None
        if "\\outbox" in folders[folder]:
            return f"the server marks {folder!r} as its own \\Outbox"
        if folder.casefold() != "outbox":
            return None
        welcome = _str(getattr(self.client, "welcome", b"") or b"").lower()
        if "microsoft exchange" in welcome or "outlook" in welcome:
            return f"this is a Microsoft server, where {folder!r} is Outlook's own Outbox"
        if {"sent items", "deleted items", "junk email"} <= {name.casefold() for name in folders}:
            return (
                f"the mailbox has Exchange's folders (Sent Items, Deleted Items, Junk Email): {folder!r} is "
                "Outlook's own Outbox"
            )
        return None

    def special_drafts(self) -> str | None:
        """The folder the server marks SPECIAL-USE \\Drafts, if any (for commands: they do not touch the client)."""
        found: str | None = self._run("LIST", lambda: self.client.find_special_folder(imapclient.imapclient.DRAFTS))
        return found

    def ensure_folder(self, folder: str) -> None:
        if folder.upper() == "INBOX":
            return

        def create() -> None:
            if not self.client.folder_exists(folder):
                try:
                    self.client.create_folder(folder)
                except IMAPClientError:
                    if not self.client.folder_exists(folder):  # another agent may have just made it
                        raise
                with contextlib.suppress(IMAPClientError):
                    self.client.subscribe_folder(folder)

        self._run(f"CREATE {folder!r}", create)

    # -- reading ---------------------------------------------------------------------------------------
    def uids(self, folder: str) -> tuple[int, list[int]]:
        """(UIDVALIDITY, every UID in the folder), from a fresh SELECT."""
        response = self._select(folder, fresh=True)
        uids = self._run(f"UID SEARCH in {folder!r}", lambda: self.client.search("ALL"))
        return int(response[b"UIDVALIDITY"]), sorted(int(uid) for uid in uids)

    def headers(self, folder: str, uids: Sequence[int]) -> list[HeaderInfo]:
        """Size, flags, INTERNALDATE and header block of each UID still present (batched, in UID order)."""
        self._select(folder)
        found: list[HeaderInfo] = []
        wanted = sorted(set(uids))
        items = ["RFC822.SIZE", "FLAGS", "INTERNALDATE", "BODY.PEEK[HEADER]"]
        for start in range(0, len(wanted), FETCH_CHUNK):
            chunk = wanted[start : start + FETCH_CHUNK]
            data: dict[int, dict[bytes, Any]] = self._run(
                f"UID FETCH in {folder!r}", functools.partial(self._fetch, chunk, items)
            )
            for uid, item in sorted(data.items()):
                if b"BODY[HEADER]" not in item:
                    continue  # an unsolicited FETCH (flag change) for another message
                when = item.get(b"INTERNALDATE")
                found.append(
                    HeaderInfo(
                        uid=int(uid),
                        size=int(item.get(b"RFC822.SIZE", 0)),
                        flags=frozenset(_str(f) for f in item.get(b"FLAGS", ())),
                        headers=bytes(item[b"BODY[HEADER]"]),
                        internaldate=when.astimezone(UTC) if isinstance(when, datetime) else None,
                    )
                )
        return found

    def _fetch(self, uids: list[int], items: list[str]) -> dict[int, dict[bytes, Any]]:
        result: dict[int, dict[bytes, Any]] = self.client.fetch(uids, items)
        return result

    def fetch(self, folder: str, uid: int) -> bytes | None:
        """The whole message, byte for byte, without setting \\Seen; None if it is gone."""
        self._select(folder)
        data = self._run(f"UID FETCH {uid} in {folder!r}", lambda: self.client.fetch([uid], ["BODY.PEEK[]"]))
        item = data.get(uid)
        if item is None or b"BODY[]" not in item:
            return None
        return bytes(item[b"BODY[]"])

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

    def search_since(self, folder: str, since: date) -> list[int]:
        self._up_to_date(folder)
        uids = self._run(f"UID SEARCH in {folder!r}", lambda: self.client.search(["SINCE", since]))
        return sorted(int(uid) for uid in uids)

    # -- changing --------------------------------------------------------------------------------------
    def append(self, folder: str, raw: bytes, flags: Sequence[str] = (), when: datetime | None = None) -> int | None:
        """APPEND; the new UID where the server says (APPENDUID), else None."""
        response = self._run(
            f"APPEND to {folder!r}",
            lambda: self.client.append(folder, raw, flags=tuple(flags), msg_time=when),
        )
        match = re.search(rb"\[APPENDUID \d+ (\d+)\]", response or b"")
        return int(match.group(1)) if match else None

    def move(self, folder: str, uid: int, target: str) -> int | None:
        """Move one message; its UID in ``target`` where the server says (COPYUID), else None.

        Raises MessageGone when the UID is no longer in ``folder`` or another agent claimed it first.
        """
        moved = self.move_many(folder, [uid], target)
        if uid not in moved:
            raise MessageGone(f"UID {uid} is no longer in {folder!r} (or another agent claimed it)")
        return moved[uid]

    def move_many(self, folder: str, uids: Sequence[int], target: str, *, claim: bool = True) -> dict[int, int | None]:
        """Move messages in one command; {source UID: UID in ``target`` (None if it cannot be told)}.

        A UID missing from the answer was not moved: it is gone, or another agent claimed it first.
        Dovecot's MOVE is not atomic between sessions (two racing MOVEs both answer OK and leave two
        copies), so with ``claim``, where the server offers CONDSTORE and keeps custom keywords, the messages
        are first claimed with one conditional STORE (UNCHANGEDSINCE) of a private keyword: of several
        agents, exactly one succeeds for each message. ``claim=False`` is for the agent's own Sending folder,
        which no student edits. Where keywords or CONDSTORE are missing (Microsoft 365, Yahoo, iCloud) the
        messages are moved without a claim: those servers' MOVE does not leave two copies.

        The server's UID map (COPYUID) is never taken on trust: the destination's Message-IDs are read back
        and a map in the wrong order (Yahoo, MailKit #1405) is rebuilt by Message-ID.
        Without MOVE (iCloud): COPY, check the copies, STORE \\Deleted, UID EXPUNGE those UIDs — never a
        bare EXPUNGE.
        """
        wanted = sorted(set(uids))
        if not wanted:
            return {}
        self._select(folder)
        present, identities = self._present(folder, wanted)
        ours: list[int] | None = None
        if claim and self._claims_work(folder):
            ours = self._claim(folder, present)
        if ours is None:  # no claim here: keywords or CONDSTORE are missing
            ours = sorted(present)
        if not ours:
            return {}
        untagged = self.client._imap.untagged_responses
        untagged.pop("COPYUID", None)
        where = f"{len(ours)} message(s) {folder!r} -> {target!r}"
        if self.has_move and not self.force_copy_fallback:
            self._run(f"UID MOVE {where}", lambda: self.client.move(_uid_set(ours), target))
            mapping = _copyuid(untagged.pop("COPYUID", None))
            moved = self._checked_map(folder, target, ours, mapping, identities)
        else:
            self._run(f"UID COPY {where}", lambda: self.client.copy(_uid_set(ours), target))
            mapping = _copyuid(untagged.pop("COPYUID", None))
            moved = self._checked_map(folder, target, ours, mapping, identities)
            copied = sorted(moved)
            if copied:  # only what is certainly in the target leaves the source
                self._select(folder)
                marks = _uid_set(copied)
                self._run(f"UID STORE {where} +\\Deleted", lambda: self.client.add_flags(marks, [DELETED], silent=True))
                self._expunge(copied)
        if claim and self._claims_work(folder) and moved:
            new_uids = [new for new in moved.values() if new is not None]
            with contextlib.suppress(MailboxError):  # cosmetic: the move itself has succeeded
                if new_uids:
                    self.remove_flags_many(target, new_uids, [self.claim_keyword])
        return moved

    def _checked_map(
        self, folder: str, target: str, ours: list[int], mapping: dict[int, int], identities: dict[int, str]
    ) -> dict[int, int | None]:
        """{source UID: target UID} for the messages that reached ``target``, checked against Message-ID.

        A server's COPYUID can pair sources and destinations in the wrong order (Yahoo): every pair is read
        back, and a wrong map is rebuilt from the destination's Message-IDs (the ledger's key, a hash of the
        header block for a message without one). A message whose place cannot be told maps to None (the
        caller looks it up by its key). Without UIDPLUS nothing is known: every one maps to None.
        """
        if not mapping:
            if self.has_uidplus:
                return {}  # the server moved nothing: every one of them was gone
            return dict.fromkeys(ours)
        pairs = {uid: mapping[uid] for uid in ours if uid in mapping}
        found = self._identities(target, sorted(set(pairs.values())))
        if all(found.get(new) == identities.get(old) for old, new in pairs.items()):
            return dict(pairs)
        self.remapped += 1
        log.warning(
            "the server's UID map for %d message(s) %r -> %r does not match their Message-IDs; rebuilt by Message-ID",
            len(pairs),
            folder,
            target,
        )
        at: dict[str, list[int]] = {}
        for new, identity in found.items():
            at.setdefault(identity, []).append(new)
        rebuilt: dict[int, int | None] = {}
        for old in pairs:
            places = at.get(identities.get(old, ""), [])
            rebuilt[old] = places[0] if len(places) == 1 else None
        return rebuilt

    def _identities(self, folder: str, uids: Sequence[int]) -> dict[int, str]:
        """{UID: Message-ID, or the ledger's hash key for a message without one} in ``folder``."""
        wanted = sorted(set(uids))
        if not wanted:
            return {}
        self._select(folder)
        found: dict[int, str] = {}
        for start in range(0, len(wanted), FETCH_CHUNK):
            chunk = wanted[start : start + FETCH_CHUNK]
            data = self._run(f"UID FETCH in {folder!r}", functools.partial(self._fetch, chunk, [_ID_ITEM]))
            found.update(_identities_in(data, set(chunk)))
        return self._hash_missing(folder, wanted, found)

    def _hash_missing(self, folder: str, wanted: Sequence[int], found: dict[int, str]) -> dict[int, str]:
        """Fill in the hash key (as the ledger makes it) for messages that have no Message-ID."""
        missing = [uid for uid in wanted if uid not in found]
        if missing:
            for info in self.headers(folder, missing):
                found[info.uid] = parse_envelope(info.headers).key
        return found

    def _present(self, folder: str, uids: list[int]) -> tuple[dict[int, int | None], dict[int, str]]:
        """{UID: MODSEQ (None without CONDSTORE)} of the messages still in the folder and not \\Deleted, and
        {UID: identity} of the same (Message-ID, or the ledger's hash key), to check a UID map against."""
        present: dict[int, int | None] = {}
        identities: dict[int, str] = {}
        stale: list[int] = []
        abandoned: set[str] = set()
        for start in range(0, len(uids), FETCH_CHUNK):
            chunk = uids[start : start + FETCH_CHUNK]
            asked = set(chunk)
            data = self._fetch_present(folder, chunk)
            condstore = self.uses_claims
            identities.update(_identities_in(data, asked))
            for uid, item in data.items():
                flags = item.get(b"FLAGS")
                if flags is None or int(uid) not in asked or DELETED in flags:
                    continue  # gone, deleted, or an unsolicited FETCH about something else
                claims = {_str(f) for f in flags if _str(f).lower().startswith(CLAIM_KEYWORD.lower())}
                foreign = claims - {self.claim_keyword}
                if foreign:
                    first = self._claims_seen.setdefault((folder, int(uid)), time.monotonic())
                    if time.monotonic() - first >= STALE_CLAIM:
                        stale.append(int(uid))
                        abandoned |= foreign
                    continue  # being moved by another agent right now
                self._claims_seen.pop((folder, int(uid)), None)
                present[int(uid)] = int(item[b"MODSEQ"][0]) if condstore and b"MODSEQ" in item else None
        if stale:
            # A claim nobody finished (its agent died between STORE and MOVE): free the message for next time.
            self.remove_flags_many(folder, stale, sorted(abandoned))
            for uid in stale:
                self._claims_seen.pop((folder, uid), None)
        identities = {uid: identity for uid, identity in identities.items() if uid in present}
        return present, self._hash_missing(folder, sorted(present), identities)

    def _fetch_present(self, folder: str, chunk: list[int]) -> dict[int, dict[bytes, Any]]:
        if not self.uses_claims:
            return self._run(f"UID FETCH in {folder!r}", functools.partial(self._fetch, chunk, ["FLAGS", _ID_ITEM]))
        try:
            return self._run(
                f"UID FETCH in {folder!r}", functools.partial(self._fetch, chunk, ["FLAGS", "MODSEQ", _ID_ITEM])
            )
        except MailboxError:
            if self._client is None:
                raise  # the connection broke: not an answer about CONDSTORE
            # CONDSTORE advertised but refused when used (iCloud refuses SELECT ... (CONDSTORE), MailKit #970).
            log.info("the server refused MODSEQ although it advertises CONDSTORE: moving without claims")
            self._condstore_works = False
            return self._run(f"UID FETCH in {folder!r}", functools.partial(self._fetch, chunk, ["FLAGS", _ID_ITEM]))

    def _claim(self, folder: str, present: dict[int, int | None]) -> list[int] | None:
        """Claim the messages for this agent; the UIDs it may move (no other agent will). None when claims
        turn out not to work here (the conditional STORE refused, or the keyword not kept): move unclaimed.

        Two steps. A conditional STORE of this agent's keyword (UNCHANGEDSINCE the highest MODSEQ seen; RFC
        7162 names in MODIFIED whatever changed since), then, after a NOOP, a FETCH of the flags: a message
        that shows another agent's keyword too is given up (and our keyword taken off). Dovecot can let two
        racing conditional STOREs both succeed, but of two agents that each STORE and then read, at least one
        reads the other's keyword, so at most one goes on to MOVE.
        """
        if not present:
            return []
        imap = self.client._imap
        for stale in ("MODIFIED", "FETCH"):
            imap.untagged_responses.pop(stale, None)
        # Every change made after our FETCH has a MODSEQ above the highest we saw, so one bound serves all.
        bound = max(m or 0 for m in present.values())
        wanted = sorted(present)

        def store() -> list[int]:
            typ, _ = imap.uid(
                "STORE", _uid_set(wanted), f"(UNCHANGEDSINCE {bound})", "+FLAGS.SILENT", f"({self.claim_keyword})"
            )
            imap.untagged_responses.pop("FETCH", None)
            if typ != "OK":
                raise MailboxError("UID STORE (claim) refused")
            refused: set[int] = set()
            for code in imap.untagged_responses.pop("MODIFIED", None) or ():
                refused |= _expand(code)
            return [uid for uid in wanted if uid not in refused]

        try:
            stored = self._run(f"UID STORE {len(wanted)} message(s) (claim)", store)
        except MailboxError:
            if self._client is None:
                raise
            log.info("the server refused a conditional STORE (CONDSTORE): moving without claims")
            self._condstore_works = False
            return None
        if not stored:
            return []
        self._run("NOOP", self.client.noop)  # see every change committed before this point
        kept: list[int] = []
        seen: set[str] = set()
        for start in range(0, len(stored), FETCH_CHUNK):
            chunk = stored[start : start + FETCH_CHUNK]
            data = self._run(f"UID FETCH in {folder!r}", functools.partial(self._fetch, chunk, ["FLAGS"]))
            for uid in chunk:
                flags = {_str(f) for f in data.get(uid, {}).get(b"FLAGS", ())}
                ours = self.claim_keyword in flags and "\\Deleted" not in flags
                if ours and not any(
                    f.lower().startswith(CLAIM_KEYWORD.lower()) and f != self.claim_keyword for f in flags
                ):
                    kept.append(uid)
                seen.update(flags)
        if not any(flag.lower().startswith(CLAIM_KEYWORD.lower()) for flag in seen):
            # The STORE was accepted, yet no message shows any claim: this folder does not keep custom keywords
            # (Microsoft 365 drops them silently, MailKit #702). Read back, not guessed: move without claims.
            log.info("%r does not keep custom keywords: moving without claims", folder)
            self._keywords_kept[folder] = False
            return None
        given_up = sorted(set(stored) - set(kept))
        if given_up:
            with contextlib.suppress(MailboxError):
                self.remove_flags_many(folder, given_up, [self.claim_keyword])
        return kept

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
                if int(uid) in asked and b"BODY[]" in item:
                    found[int(uid)] = bytes(item[b"BODY[]"])
        return found

    def flagged(self, folder: str) -> list[int]:
        """UIDs of the messages the student flagged in ``folder``."""
        self._up_to_date(folder)
        uids = self._run(f"UID SEARCH FLAGGED in {folder!r}", lambda: self.client.search(["FLAGGED", "UNDELETED"]))
        return sorted(int(uid) for uid in uids)

    def _expunge(self, uids: list[int]) -> None:
        if self.has_uidplus:
            self._run(f"UID EXPUNGE {_uid_set(uids)}", lambda: self.client.uid_expunge(_uid_set(uids)))
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
        marks = _uid_set(wanted)
        self._run(f"UID STORE {marks} +\\Deleted", lambda: self.client.add_flags(marks, [DELETED], silent=True))
        self._expunge(wanted)

    def discard_many(self, folder: str, uids: Sequence[int]) -> None:
        """Remove the agent's own copies (e.g. from Sending once the provider filed the sent message in Sent).

        At Gmail (X-GM-EXT-1) folders are labels: an EXPUNGE only takes the label off and the message stays in
        All Mail, a stray copy with no label. There it is moved to the Trash folder, which is how Gmail deletes.
        """
        if self._has("X-GM-EXT-1"):
            if self._trash is None:
                self._trash = self._run("LIST", lambda: self.client.find_special_folder(TRASH)) or ""
            if self._trash:
                self.move_many(folder, uids, self._trash, claim=False)
                return
        self.delete_many(folder, uids)

    def set_flags(self, folder: str, uid: int, flags: Sequence[str]) -> None:
        """Add ``flags`` to the message (others stay)."""
        self._select(folder)
        self._run(f"UID STORE {uid} +FLAGS", lambda: self.client.add_flags([uid], list(flags)))

    def replace_flags_many(self, folder: str, uids: Sequence[int], flags: Sequence[str]) -> None:
        """Set the flags of these messages to exactly ``flags``."""
        wanted = sorted(set(uids))
        if wanted:
            self._select(folder)
            marks = _uid_set(wanted)
            self._run(f"UID STORE {marks} FLAGS", lambda: self.client.set_flags(marks, list(flags), silent=True))

    def remove_flags(self, folder: str, uid: int, flags: Sequence[str]) -> None:
        self.remove_flags_many(folder, [uid], flags)

    def remove_flags_many(self, folder: str, uids: Sequence[int], flags: Sequence[str]) -> None:
        marks = _uid_set(uids)
        if marks:
            self._select(folder)
            self._run(f"UID STORE {marks} -FLAGS", lambda: self.client.remove_flags(marks, list(flags), silent=True))


def _identities_in(data: dict[int, dict[bytes, Any]], asked: set[int]) -> dict[int, str]:
    """{UID: Message-ID} from a FETCH of BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]; messages without one left out."""
    found: dict[int, str] = {}
    for uid, item in data.items():
        if int(uid) not in asked:
            continue
        for name, value in item.items():
            if isinstance(name, bytes) and name.upper().startswith(b"BODY[HEADER.FIELDS") and value:
                text = bytes(value).decode("utf-8", "replace")
                ids = message_ids(re.sub(r"\r?\n[ \t]+", " ", text))
                if ids:
                    found[int(uid)] = ids[0]
    return found


def _expand(value: Any) -> set[int]:
    """The UIDs of an IMAP sequence set such as ``3:5,9`` (bytes or str)."""
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
    found: set[int] = set()
    for part in text.strip().split(","):
        low, _, high = part.partition(":")
        if low.isdigit() and (not high or high.isdigit()):
            a, b = int(low), int(high or low)
            found.update(range(min(a, b), max(a, b) + 1))
    return found


def _ordered(value: str) -> list[int]:
    """A sequence set's UIDs in the order written (COPYUID pairs source and destination in this order)."""
    found: list[int] = []
    for part in value.split(","):
        low, _, high = part.partition(":")
        if not low.isdigit() or (high and not high.isdigit()):
            return []
        a, b = int(low), int(high or low)
        found.extend(range(a, b + 1) if a <= b else range(a, b - 1, -1))
    return found


def _uid_set(uids: Sequence[int]) -> str:
    """``[1, 2, 3, 7]`` as ``1:3,7``: short command lines for large batches."""
    ordered = sorted(set(uids))
    parts: list[str] = []
    first = 0
    while first < len(ordered):
        last = first
        while last + 1 < len(ordered) and ordered[last + 1] == ordered[last] + 1:
            last += 1
        parts.append(str(ordered[first]) if first == last else f"{ordered[first]}:{ordered[last]}")
        first = last + 1
    return ",".join(parts)


def _copyuid(values: list[Any] | None) -> dict[int, int]:
    """{source UID: destination UID} from ``COPYUID validity source-set destination-set`` response codes."""
    mapping: dict[int, int] = {}
    for value in values or ():
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
        parts = text.split()
        if len(parts) >= 3:
            sources, targets = _ordered(parts[1]), _ordered(parts[2])
            if len(sources) == len(targets):
                mapping.update(zip(sources, targets, strict=True))
    return mapping


class Watcher:
    """A second connection that only IDLEs on one folder and says when something changed there.

    Call :meth:`start` (or just :meth:`wait`), then scan the folder with the Mailbox, then :meth:`wait`:
    IDLE is kept open between calls, so a change made while you were scanning is still reported.
    """

    def __init__(self, imap: Imap, login: Login, folder: str, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.imap = imap
        self.login = login
        self.folder = folder
        self.ssl_context = ssl_context
        self.use_idle = True  # tests set False to exercise polling
        self._client: IMAPClient | None = None
        self._idle_since: float | None = None

    def start(self) -> None:
        """Connect, select the folder and begin IDLE (if not already)."""
        if self._client is not None:
            return
        client = _open(self.imap, self.login, self.ssl_context)
        self._client = client
        try:
            with _errors(f"SELECT {self.folder!r}"):
                client.select_folder(self.folder, readonly=True)
                self.use_idle = self.use_idle and client.has_capability("IDLE")
            if self.use_idle:
                self._idle()
        except BaseException:
            self.close()
            raise

    def wait(self, timeout: float) -> bool:
        """True as soon as the server reports a change in the folder; False after ``timeout`` seconds."""
        self.start()
        deadline = time.monotonic() + timeout
        try:
            return self._wait_idle(deadline) if self.use_idle else self._wait_poll(deadline)
        except MailboxError:
            self.close()
            raise
        except (IMAPClientError, imaplib.IMAP4.error, OSError, ValueError) as error:
            self.close()
            raise MailboxError(f"watching {self.folder!r}: {_describe(error)}") from error

    def _idle(self) -> None:
        assert self._client is not None
        with _errors("IDLE"):
            self._client.idle()
        self._idle_since = time.monotonic()

    def _wait_idle(self, deadline: float) -> bool:
        client = self._client
        assert client is not None and self._idle_since is not None
        empty_reads = 0
        while True:
            now = time.monotonic()
            if now >= deadline:
                return False
            renew_at = self._idle_since + self.imap.idle_renew
            if now >= renew_at:
                _text, responses = client.idle_done()
                self._idle()
                if _changed(responses):
                    return True
                continue
            if _already_read(client, self.imap.timeout):
                # The server's report came with an earlier line ("+ idling" after a renewal, often in the same
                # packet) and waits in imaplib's buffer, where select() on the socket cannot see it.
                responses = _buffered_lines(client, self.imap.timeout)
            else:
                readable, _, _ = select.select([client.socket()], [], [], min(deadline, renew_at) - now)
                if not readable:
                    continue
                responses = client.idle_check(timeout=0)
            if not responses:
                # imapclient swallows EOF: a readable socket that yields nothing twice is a closed one.
                empty_reads += 1
                if empty_reads >= 2:
                    raise MailboxError(f"the server closed the IDLE connection on {self.folder!r}")
                time.sleep(0.01)
                continue
            empty_reads = 0
            byes = [r for r in responses if isinstance(r, tuple) and r[:1] == (b"BYE",)]
            if byes:
                said = " ".join(_str(part) for part in byes[0][1:] if isinstance(part, bytes | str)).strip()
                raise _ended(f"the server ended the IDLE connection on {self.folder!r}", said or "BYE")
            if _changed(responses):
                return True

    def _wait_poll(self, deadline: float) -> bool:
        client = self._client
        assert client is not None
        while True:
            with _errors("NOOP"):
                _text, responses = client.noop()
            if _changed(responses):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(self.imap.poll_interval, remaining))

    def close(self) -> None:
        client, self._client, self._idle_since = self._client, None, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            client.shutdown()


def _already_read(client: IMAPClient, timeout: float) -> bool:
    """Whether bytes from the server were already taken off the socket, by imaplib's buffered reader or by
    the TLS layer: ``select()`` does not see those, so waiting on the socket would wait for the next report."""
    sock = client.socket()
    if isinstance(sock, ssl.SSLSocket) and sock.pending() > 0:
        return True
    reader = client._imap.file
    sock.setblocking(False)
    try:
        return bool(reader.peek(1))  # from the buffer; if that is empty, one read that does not wait
    except (BlockingIOError, ssl.SSLWantReadError):
        return False
    finally:
        sock.settimeout(timeout)


def _buffered_lines(client: IMAPClient, timeout: float) -> list[Any]:
    """The untagged lines already read (and the rest of a line begun), parsed as ``idle_check`` parses them."""
    found: list[Any] = []
    while _already_read(client, timeout):
        found.append(_parse_untagged_response(client._imap._get_line()))
    return found


def _changed(responses: Sequence[Any]) -> bool:
    return any(isinstance(r, tuple) and len(r) >= 2 and r[1] in _CHANGES for r in responses)
