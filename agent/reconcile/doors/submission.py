"""The submission door: a message the mail program sent to the agent (SMTP) goes into the Mentor Outbox.

The answer is 250 only once the message is in the Outbox (the student sees it there, and the intake takes it from
there as if she had dropped it in); an Outbox that cannot be reached (IMAP down, a full mailbox) is 451, so that
the mail program keeps the message and tries again. A second hand-over of the same message (the program never
heard the 250: a kill -9 between the APPEND and the answer, a dropped line) is recognised by its Message-ID, in
the ledger or in the Outbox, and answered 250 without a second copy: nothing is sent twice.

Mail to no mentor goes the same way and leaves at once (``pass_through``): the agent can be the program's only
outgoing server. With ``pass_through = false`` such mail is refused (550) rather than left waiting unseen.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from agent.config.settings import Settings
from agent.crashpoints import crash_point
from agent.logs import named
from agent.mail.client import Connection
from agent.mail.session import Login, MailboxError
from agent.rules.envelope import domain_of, fingerprint, parse_envelope, variant_key
from agent.rules.policy import PolicyBook
from agent.rules.submitted import Submitted, as_submitted, head_print
from agent.store.answers import last_logged_at
from agent.store.ledger import DONE, OPEN_STATES, Ledger

log = logging.getLogger("mentor_agent.submission")
SUBMITTED = "submitted"  # the ledger's log event: handed over by SMTP (the history scan knows its Message-ID)
# Handed over without a Message-ID (message: its head_print, detail: the key made for it): its program's Sent copy
SUBMITTED_HEAD = "submitted head"
RETRY_WITHIN = timedelta(hours=1)  # the same bytes without a Message-ID again within this: a retry, not a new one


class SubmissionDesk:
    """Takes what the listener received; one hand-over at a time (a retry waits for the first to end)."""

    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        book: Callable[[], PolicyBook],
        login: Callable[[], Login],
        wake: Callable[[], None],
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.book = book
        self.login = login
        self.wake = wake
        self.clock = clock
        self._turn = asyncio.Lock()

    async def hand_over(self, mail_from: str, rcpt_tos: Sequence[str], raw: bytes) -> str:
        async with self._turn:
            return await self._hand_over(rcpt_tos, raw)

    async def _hand_over(self, rcpt_tos: Sequence[str], raw: bytes) -> str:
        domain = domain_of(self.settings.student.address)
        submitted = self._submitted(raw, rcpt_tos, domain)
        envelope = submitted.envelope
        what = named(envelope.key, envelope.subject)
        if submitted.not_in_envelope:
            listed = ", ".join(submitted.not_in_envelope)
            log.warning("%s: refused: its header names %s, whom the envelope leaves out", what, listed)
            return (
                f"550 5.5.0 mentor-agent sends each message once, to all its recipients: its header names {listed} "
                "but the envelope does not; send it with all recipients at once"
            )
        if envelope.problems:  # what the intake would set aside: said now, to the program, not after a 250
            why = "; ".join(envelope.problems)
            log.warning("%s: refused: %s", what, why)
            return f"550 5.6.0 mentor-agent cannot send this message: {why}"
        book = self.book()
        to_mentor = any(book.for_address(a) is not None for a in envelope.recipients)
        if not to_mentor and not self.settings.pass_through:
            log.warning("%s: refused: to no mentor, and pass_through is off", what)
            return "550 5.7.1 not to a mentor, and pass_through is off: send it from your own mail server"
        content = fingerprint(submitted.raw)
        if self._had(envelope.key, content):
            log.info("%s: handed over again; already taken, so not a second time", what)
            return "250 2.0.0 mentor-agent has this message already"
        folder = self.settings.imap.folders.outbox
        try:
            added = await asyncio.to_thread(self._append, folder, submitted.raw, envelope.key, content)
        except (MailboxError, OSError, TimeoutError) as error:
            log.warning("%s: not taken (the Mentor Outbox cannot be reached: %s); answered 451", what, error)
            return "451 4.3.0 mentor-agent cannot reach your Mentor Outbox just now; your mail program will try again"
        crash_point("submission-appended")
        self.ledger.log(SUBMITTED, message=envelope.key, detail=envelope.subject)
        if parse_envelope(raw).message_id is None:  # its program's Sent copy has none: known by its header block
            self.ledger.log(SUBMITTED_HEAD, message=head_print(raw), detail=envelope.key)
        if added:
            bcc = f" (Bcc from the envelope: {', '.join(submitted.added_bcc)})" if submitted.added_bcc else ""
            log.info("%s: submitted by the mail program, put in %s%s", what, folder, bcc)
        else:
            log.info("%s: handed over again and already in %s; not a second copy", what, folder)
        self.wake()
        return f"250 2.0.0 taken by mentor-agent, in your {folder}"

    def _submitted(self, raw: bytes, rcpt_tos: Sequence[str], domain: str) -> Submitted:
        """``raw`` made ready. Without a Message-ID the same bytes get the same one made (a retry after a lost 250
        is the same message), but only within RETRY_WITHIN of when they were first handed over: the same note
        sent again later (a script, a week on) is a new message, with a Message-ID of the next generation."""
        generation = 0
        while True:
            submitted = as_submitted(raw, rcpt_tos, domain=domain, now=self.clock(), generation=generation)
            if parse_envelope(raw).message_id is not None:
                return submitted
            at = last_logged_at(self.ledger, SUBMITTED, submitted.envelope.key)
            if at is None or datetime.now(UTC) - at <= RETRY_WITHIN:  # the log's own clock
                return submitted
            generation += 1

    def _had(self, key: str, content: str) -> bool:
        """Whether this message (``content``: its fingerprint) was handed over already: on its way or sent, or handed
        over and not yet taken in. One cancelled (`cancel` puts it in Drafts) or set aside in Needs attention is taken
        again, as a new try. Another message with the same Message-ID (a program or script that reuses one) is not
        this one: it is taken, and goes with a Message-ID of its own (the intake keys it by its content)."""
        row = self.ledger.get(key)
        if row is not None and row.fingerprint and row.fingerprint != content:
            row = self.ledger.get(variant_key(key, content))  # this one, taken before beside the other?
            if row is None:
                return False
        if row is not None:
            return row.state in OPEN_STATES or row.state == DONE
        if last_logged_at(self.ledger, SUBMITTED, key) is not None:
            return False  # handed over, not yet taken in: the Outbox says whether it is this one (_append)
        return bool(self.ledger.known_message_ids([key]))

    def _append(self, folder: str, raw: bytes, key: str, content: str) -> bool:
        """APPEND unless a copy is there already (a retry after a lost 250), or on its way: a retry can come while
        the intake, which took the first copy in after the ledger was asked, has it in Sending (it was appended a
        second time, then set aside as already sent, with a "Not sent" notice). A copy is this message only with its
        content (``content``: its fingerprint), not its Message-ID alone. In a worker thread: blocks."""
        with Connection(self.settings.imap, self.login()) as connection:
            # A look that fails (Sending not there yet, a dropped line) is no answer: 451, the program tries again.
            if not key.startswith("sha256:") and any(
                self._copy_in(connection, where, key, content) for where in (folder, self.settings.imap.folders.sending)
            ):
                return False
            connection.append(folder, raw)
            return True

    @staticmethod
    def _copy_in(connection: Connection, folder: str, key: str, content: str) -> bool:
        """Whether ``folder`` holds a copy of this message: its Message-ID and its content."""
        for uid in connection.find_by_message_id(folder, key):
            raw = connection.fetch(folder, uid)
            if raw is not None and fingerprint(raw) == content:
                return True
        return False
