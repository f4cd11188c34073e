"""What one reconcile pass works with: the mailbox, its folders, the ledger, the policies and the clock."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from agent.config.settings import Settings
from agent.mail.port import MailboxPort, ResolvedFolders
from agent.mail.session import CommandRefused, FolderRefused, Login, MailboxError, MessageGone
from agent.mail.stalls import paced
from agent.reconcile.events import Notice, publish
from agent.rules.envelope import fingerprint, is_keyed, parse_envelope, split_key
from agent.rules.limits import DAY, Limits, limits_for, with_overrides
from agent.rules.notices import build_notice, notice_id
from agent.rules.policy import PolicyBook
from agent.rules.refusals import Gate
from agent.store import owed_notices
from agent.store.ledger import Ledger
from agent.store.owed_notices import OwedNotice

log = logging.getLogger("mentor_agent")
T = TypeVar("T")
SENT_LOOK_DELAYS = (0.0, 0.3, 0.7, 1.5, 2.5)  # seconds between looks for a provider's copy in Sent


def aside_id(kind: str, key: str, uid: int) -> str:
    """The id (``World.owe``'s ``made``) of the notice of the message ``key`` set aside from ``uid``: the same when a
    stop brings the same message to be set aside again, another for a copy she moves back (a new UID)."""
    return f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:16]}-{uid}"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class World:
    settings: Settings
    mailbox: MailboxPort  # agent.mail.claim.Mailbox (IMAP), or the tests' in-memory fake
    folders: ResolvedFolders
    ledger: Ledger
    book: PolicyBook
    smtp_login: Callable[[], Login | None]
    clock: Callable[[], datetime] = utc_now
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # SMTP login refused: nothing is sent until its next try works (kept by the daemon across reconnects).
    smtp_gate: Gate = field(default_factory=lambda: Gate("SMTP"))
    _imap_turn: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    # UIDs the agent itself filed, per folder, so that the history scan need not read them back.
    filed: dict[str, set[int]] = field(default_factory=dict, repr=False)
    # Drafts in the Outbox (Gmail's label door) still settling: {UID: first seen} (doors/autosaves.py).
    outbox_drafts: dict[int, datetime] = field(default_factory=dict, repr=False)
    # Whether the provider files SMTP submissions in Sent itself: None until seen (file_in_sent = "auto").
    provider_files_sent: bool | None = None
    # The provider's sending limits: moments of recent sends (loaded from the ledger's log on first use),
    # when sending is held until (the daily limit is reached), and what the student was told of them.
    # Accepted messages whose Sent copy is still awaited from the provider: {key: (UID in Sending, the
    # delivery.Prepared sent, until when)}; the ledger says accepted meanwhile (a restart files them).
    filing_later: dict[str, tuple[int, Any, datetime]] = field(default_factory=dict, repr=False)
    sends: list[datetime] | None = field(default=None, repr=False)
    held_until: datetime | None = None
    limit_told: set[str] = field(default_factory=set, repr=False)

    @property
    def sending_limits(self) -> Limits | None:
        smtp = self.settings.smtp
        return with_overrides(limits_for(smtp.provider, smtp.host), smtp.max_per_minute, smtp.max_per_day)

    def recent_sends(self) -> list[datetime]:
        """When the agent sent in the last day (each message once), as the limits count them."""
        if self.sends is None:
            self.sends = self.ledger.sent_since(self.now() - DAY)
        return self.sends

    def now(self) -> datetime:
        return self.clock()

    def smtp_grant(self) -> str:
        """The version of the stored SMTP sign-in ("" without built-in sign-in): a new one is worth a try."""
        smtp = self.settings.smtp
        if not smtp.oauth2:
            return ""
        from agent.mail.oauth import grant_version

        return grant_version(smtp, username=smtp.username, state_dir=self.settings.state_dir)

    async def imap(self, action: Callable[..., T], *args: Any) -> T:
        """Run a blocking Mailbox call in a worker thread, one at a time: the connection is not shared. One stuck
        on a server that trickles ends the connection (:class:`~agent.mail.stalls.TooSlow`)."""
        async with self._imap_turn:
            return await paced(
                self.mailbox.pulse,
                asyncio.to_thread(action, *args),
                window=2 * self.settings.imap.timeout,
                what=getattr(action, "__name__", "a command").strip("_").replace("_", " "),
            )

    @property
    def file_in_sent(self) -> bool:
        """Whether we may put what we sent in Sent ourselves ("never": the provider always does)."""
        return self.settings.smtp.file_in_sent != "never"

    @property
    def look_in_sent(self) -> bool:
        """``auto``: whether the provider filed a submission in Sent is seen by looking for its Message-ID
        there (after a short wait), never guessed from the server's name."""
        return self.settings.smtp.file_in_sent == "auto"

    async def in_sent(self, message_ids: Sequence[str], *, wait: bool) -> set[str]:
        """The Message-IDs found in Sent; with ``wait`` (``auto``), looked for again for a few seconds, since a
        provider files a submission a moment after accepting it. Once a provider was seen not to file one in
        time, later looks in this session do not wait (nothing is gained); once it was seen filing, they do."""
        wanted = list(dict.fromkeys(message_ids))
        found: set[str] = set()
        delays = SENT_LOOK_DELAYS if wait and self.provider_files_sent is not False else (0.0,)
        for delay in delays:
            if delay:
                await asyncio.sleep(delay)
            for message_id in [m for m in wanted if m not in found]:
                if await self.imap(self.mailbox.find_by_message_id, self.folders.sent, message_id):
                    found.add(message_id)
            if len(found) == len(wanted):
                break
        if wait and wanted:
            if found:
                self.provider_files_sent = True
            elif self.provider_files_sent is None:
                self.provider_files_sent = False
                log.info(
                    "the provider did not file a sent message in %s within %.0f s: mentor-agent files them",
                    self.folders.sent,
                    sum(delays),
                )
        return found

    async def notify(
        self,
        title: str,
        lines: list[str],
        about: str | None = None,
        *,
        message_id: str | None = None,
    ) -> bool:
        """APPEND a notice into the student's notices folder; whether it is there now. A failure is logged, never
        raised.

        Owed until it is in her mailbox (:meth:`owe`, then :meth:`tell`), so that one refused (a full mailbox, a
        moment's NO), cut or stopped before is told by a later pass (:meth:`tell_owed_notices`), once.
        ``message_id``: the notice's own, given by a caller that tells it again itself (:meth:`notify_once`):
        appended once, not kept."""
        if message_id is None:
            return await self.tell(self.owe(title, lines, about))
        try:
            await self._append(title, about, self._notice(title, lines, about, message_id))
        except MailboxError as error:
            log.warning("could not append the notice %r: %s", title, error)
            return False
        return True

    async def _append(self, title: str, about: str | None, raw: bytes) -> None:
        """APPEND a notice to her notices folder, logged and published once it is there."""
        await self.imap(self.mailbox.append, self.folders.notices, raw)
        log.info("notice: %s", title)
        publish(Notice(title, about))

    def owe(
        self,
        title: str,
        lines: list[str],
        about: str | None = None,
        *,
        made: str | None = None,
        while_in: tuple[str, str, int] | None = None,
        told_log: tuple[str, str | None, str, str] | None = None,
    ) -> OwedNotice:
        """Keep a notice as owed (in the ledger, before its APPEND: written in the caller's transaction, with the
        mark that it is told), under a new Message-ID of its own or, with ``made``, one made of what it tells (a
        caller that may write it again after a stop: it is looked for before it is appended). ``while_in``: (folder,
        ledger key, the UID it is moved from) of the message it is about, owed only while it is still there (a "Not
        sent" she has acted on is not told late: :meth:`move_owed`). ``told_log``: the
        caller's mark that it is told (event, mentor, message, detail), logged when it is. :meth:`tell` it."""
        own = notice_id(self.settings.student.address, made or f"notice-{secrets.token_hex(16)}")
        raw = self._notice(title, lines, about, own)
        return owed_notices.owe(self.ledger, own, title, about, raw, while_in=while_in, told_log=told_log)

    async def tell(self, notice: OwedNotice) -> bool:
        """APPEND an owed notice (one made of what it tells: unless it is there already); whether it is there. A
        failure is logged, never raised: the notice stays owed."""
        try:
            return await self._tell(notice)
        except MailboxError as error:
            log.warning("could not append the notice %r (it is told later): %s", notice.title, error)
            return False

    async def _tell(self, notice: OwedNotice) -> bool:
        """:meth:`tell`, False when the server refused it (NO), raising a failed connection (no answer)."""
        if notice.look_first and await self._look(notice) is not None:
            owed_notices.told(self.ledger, notice)
            return True
        try:
            await self._append(notice.title, notice.about, notice.raw)
        except CommandRefused as error:
            if "TRYCREATE" not in str(error).upper() or not await self._notices_folder_made():
                log.warning("the mail server refused the notice %r (it is told later): %s", notice.title, error)
                owed_notices.absent(self.ledger, notice)  # answered NO: not appended (a cut may have been)
                return False
            await self._append(notice.title, notice.about, notice.raw)
        owed_notices.told(self.ledger, notice)
        return True

    async def _look(self, notice: OwedNotice) -> int | None:
        """The UID of ``notice`` in her notices folder, if it is there. A NO to the look may be a folder she deleted
        while the agent runs: it is made again (as at the start), and looked in once more."""
        try:
            return await self.locate(self.folders.notices, notice.message_id, None)
        except CommandRefused:
            if not await self._notices_folder_made():
                raise
            return await self.locate(self.folders.notices, notice.message_id, None)

    async def _notices_folder_made(self) -> bool:
        """Make her notices folder unless it is there; whether it is (a refusal is logged)."""
        try:
            await self.imap(self.mailbox.ensure_folder, self.folders.notices)
        except FolderRefused as refused:
            log.warning("her notices folder cannot be made again: %s", refused)
            return False
        return True

    def forget(self, notice: OwedNotice) -> None:
        """Owe ``notice`` no more: what it would tell is moot (the message it is about is gone)."""
        owed_notices.dropped(self.ledger, notice)

    async def move_owed(self, folder: str, uid: int, target: str, notice: OwedNotice) -> OwedNotice | None:
        """Move the message ``key`` at ``uid`` to ``target`` with the notice of it owed already (:meth:`owe`, its
        ``while_in`` that folder: a lost answer to the MOVE, or a stop right after it, still tells her); the notice,
        with the message's place, to :meth:`tell`. None when the message is gone meanwhile: nothing to tell of it
        (the notice stays owed for the others it is about, if any)."""
        key = next((place[0] for place in notice.places if place[1] == uid), "")
        # The numbering before the move: renumbered between the two, the message is looked for by its key (a
        # numbering read after the move could be paired with a UID of the one before, and the notice dropped)
        validity, _ = await self.imap(self.mailbox.uids, target)
        try:
            new_uid = await self.imap(self.mailbox.move, folder, uid, target)
        except MessageGone:
            left = owed_notices.placed(self.ledger, notice, key, uid, None, None)
            if not left.places:
                self.forget(left)
            return None
        if new_uid is None:  # no UIDPLUS: looked for by its key
            return notice
        return owed_notices.placed(self.ledger, notice, key, uid, new_uid, validity)

    async def _still_in(self, notice: OwedNotice) -> bool:
        """Whether one of the messages ``notice`` is about is still where it was put (at its UID, where known)."""
        folder = notice.while_folder
        assert folder is not None
        numbering: int | None = None
        for key, _, uid, validity in notice.places:
            if uid is not None:
                if await self._at(folder, key, uid):
                    return True
                if numbering is None:
                    numbering, _ = await self.imap(self.mailbox.uids, folder)
                if numbering == validity:
                    continue  # not at its UID in the same numbering: it left
            if await self.locate(folder, key, None) is not None:  # its UID unknown, or the folder renumbered
                return True
        return False

    def _notice(self, title: str, lines: list[str], about: str | None, message_id: str) -> bytes:
        student = self.settings.student
        return build_notice(
            student_name=student.name,
            student_address=student.address,
            title=title,
            lines=lines,
            now=self.now(),
            about=about,
            message_id=message_id,
        )

    async def tell_owed_notices(self, *, look_only: bool = False) -> bool:
        """The notices owed (refused, cut, or a stop before them), oldest first, each once; whether all are in her
        mailbox now (a look or an APPEND that fails leaves the rest owed). One that may be there already (its
        APPEND's answer lost) is looked for first, by its Message-ID; one about a message she has since moved out
        of where it was (``while_in``: a "Not sent" she acted on) is owed no more.

        ``look_only``: between tries (a back-off), only look for those that may be there, so that one she files
        away from her inbox soon after is found before that, not told twice."""
        told = True
        for notice in owed_notices.owed(self.ledger):
            try:
                if look_only:
                    if not notice.absent:
                        found = await self._look(notice)
                        if found is None:
                            owed_notices.absent(self.ledger, notice)
                        else:
                            owed_notices.told(self.ledger, notice)
                    continue
                if notice.while_folder is not None and not await self._still_in(notice):
                    if not notice.absent and await self._look(notice) is not None:
                        owed_notices.told(self.ledger, notice)  # it reached her before (its answer lost, a stop)
                        continue
                    log.info("notice %r no longer owed: its message left %s", notice.title, notice.while_folder)
                    owed_notices.dropped(self.ledger, notice)
                    continue
                if not notice.absent and await self._look(notice) is not None:
                    owed_notices.told(self.ledger, notice)  # appended before, its answer lost (or a stop)
                    continue
                # One refused (too big for what her mailbox has left, say) does not hold back the others
                told = await self._tell(replace(notice, look_first=False)) and told
            except CommandRefused as error:  # a look answered NO (SEARCH refused): this one waits, not the others
                log.warning("could not look for the notice %r: %s", notice.title, error)
                told = False
            except MailboxError as error:
                log.warning("could not tell the notice %r: %s", notice.title, error)
                return False
        return told

    async def notify_once(self, title: str, lines: list[str], made: str, about: str | None = None) -> bool:
        """:meth:`notify` a notice that must be told once, under :func:`~agent.rules.notices.notice_id` of
        ``made``; whether it is in her mailbox (appended now, or found there from before). A notice tried again
        after an APPEND whose answer never came (a drop, a cut for a trickle, a kill) is found, not told twice; a look
        that fails raises (the caller's next pass tries again)."""
        own = notice_id(self.settings.student.address, made)
        if await self.locate(self.folders.notices, own, None) is not None:
            return True
        return await self.notify(title, lines, about=about, message_id=own)

    async def _at(self, folder: str, key: str, uid: int) -> bool:
        """Whether the message with ledger ``key`` is at ``uid`` in ``folder`` (a variant key is its text too: the
        whole message is read for it)."""
        if split_key(key)[1] is not None:
            whole = await self.imap(self.mailbox.fetch_many, folder, [uid])
            return uid in whole and is_keyed(whole[uid], key)
        headers = await self.imap(self.mailbox.headers, folder, [uid])
        return bool(headers) and is_keyed(headers[0].headers, key)

    async def locate(self, folder: str, key: str, hint: int | None, *, same: bool = False) -> int | None:
        """The UID of the message with ledger ``key`` in ``folder`` (checking ``hint`` first), if it is there.

        ``same``: also a message found alone by its Message-ID must have the row's content (its fingerprint), for a
        look where a move of ours may not have happened at all: another message with the same Message-ID (issue
        20) can be the only one there. Without it, one alone is taken for the row's, as before fingerprints."""
        base, content = split_key(key)
        if hint is not None and await self._at(folder, key, hint):
            return hint
        if not base.startswith("sha256:"):
            found = await self.imap(self.mailbox.find_by_message_id, folder, base)
            if content is None and len(found) < 2 and not (same and found):
                return found[0] if found else None
            # Two messages share this Message-ID (issue 20): the one with this key's content, i.e. its fingerprint.
            row = self.ledger.get(key) if content is None else None
            wanted = content or (row.fingerprint if row is not None else "")
            whole = await self.imap(self.mailbox.fetch_many, folder, found) if wanted else {}
            match = next((uid for uid, raw in sorted(whole.items()) if fingerprint(raw) == wanted), None)
            if match is None and content is None and not (same and wanted):
                return found[0] if found else None  # as before fingerprints: the first with its Message-ID
            return match
        _, uids = await self.imap(self.mailbox.uids, folder)
        for info in await self.imap(self.mailbox.headers, folder, uids):
            if parse_envelope(info.headers).key == key:
                return info.uid
        return None
