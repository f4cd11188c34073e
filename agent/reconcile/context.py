"""What one reconcile pass works with: the mailbox, its folders, the ledger, the policies and the clock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from agent.config.settings import Settings
from agent.mail.imap import Login, Mailbox, MailboxError, ResolvedFolders
from agent.reconcile.events import Notice, publish
from agent.rules.envelope import parse_envelope
from agent.rules.notices import build_notice
from agent.rules.policy import PolicyBook
from agent.rules.refusals import Gate
from agent.store.ledger import Ledger

log = logging.getLogger("mentor_agent")
T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class World:
    settings: Settings
    mailbox: Mailbox
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

    def now(self) -> datetime:
        return self.clock()

    async def imap(self, action: Callable[..., T], *args: Any) -> T:
        """Run a blocking Mailbox call in a worker thread, one at a time: the connection is not shared."""
        async with self._imap_turn:
            return await asyncio.to_thread(action, *args)

    @property
    def file_in_sent(self) -> bool:
        """Whether we APPEND what we sent to Sent: not for providers that file submissions themselves."""
        choice = self.settings.smtp.file_in_sent
        if choice != "auto":
            return choice == "always"
        host = self.settings.smtp.host.lower()
        return not any(
            host.endswith(provider)
            for provider in ("gmail.com", "googlemail.com", "office365.com", "outlook.com", "mail.me.com", "icloud.com")
        )

    async def notify(self, title: str, lines: list[str], about: str | None = None) -> None:
        """APPEND a notice into the student's notices folder. A failure is logged, never raised."""
        student = self.settings.student
        raw = build_notice(
            student_name=student.name,
            student_address=student.address,
            title=title,
            lines=lines,
            now=self.now(),
            about=about,
        )
        try:
            await self.imap(self.mailbox.append, self.folders.notices, raw)
            log.info("notice: %s", title)
            publish(Notice(title, about))
        except MailboxError as error:
            log.warning("could not append the notice %r: %s", title, error)

    async def locate(self, folder: str, key: str, hint: int | None) -> int | None:
        """The UID of the message with ledger ``key`` in ``folder`` (checking ``hint`` first), if it is there."""
        if hint is not None:
            headers = await self.imap(self.mailbox.headers, folder, [hint])
            if headers and parse_envelope(headers[0].headers).key == key:
                return hint
        if not key.startswith("sha256:"):
            found = await self.imap(self.mailbox.find_by_message_id, folder, key)
            return found[0] if found else None
        _, uids = await self.imap(self.mailbox.uids, folder)
        for info in await self.imap(self.mailbox.headers, folder, uids):
            if parse_envelope(info.headers).key == key:
                return info.uid
        return None
