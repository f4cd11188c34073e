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
import hashlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from agent.config.settings import Settings
from agent.crashpoints import crash_point
from agent.logs import named
from agent.mail.client import Connection
from agent.mail.pulse import Pulse
from agent.mail.session import Login, MailboxError
from agent.mail.stalls import paced
from agent.rules.envelope import Envelope, domain_of, fingerprint, parse_envelope, variant_key
from agent.rules.policy import PolicyBook
from agent.rules.submitted import Submitted, as_submitted, head_print
from agent.store.answers import last_logged, last_logged_at
from agent.store.ledger import ATTENTION, DONE, OPEN_STATES, Ledger

log = logging.getLogger("mentor_agent.submission")
SUBMITTED = "submitted"  # the ledger's log event: handed over by SMTP (the history scan knows its Message-ID)
# Handed over without a Message-ID (message: its head_print, detail: the key made for it): its program's Sent copy
SUBMITTED_HEAD = "submitted head"
# Every hand-over (message: a hash of its content and recipients, detail: the Message-ID it went by): a retry whose
# program gave it another Message-ID is known by it
SUBMITTED_PRINT = "submitted print"
# A hand-over: put in the Outbox, taken before, refused (another message had its Message-ID), or a new try of one
# cancelled or set aside
APPENDED, ALREADY, OTHER, AGAIN, IN_DOUBT = "appended", "already", "other", "again", "in doubt"
RETRY_WITHIN = timedelta(hours=1)  # the same bytes without a Message-ID again within this: a retry, not a new one
# The same text again this soon after an answered hand-over, under another Message-ID: a program that gave up
# waiting for the 250 and tried again (or Send pressed twice), not a new message
ANSWER_LOST = timedelta(minutes=5)


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
        handed = self._handed_as(content, envelope)
        key = handed or envelope.key  # the same text to the same people within the hour: a retry, whatever its id
        known = self._known(key, content)
        if known == ALREADY:
            log.info("%s: handed over again; already taken, so not a second time", what)
            return "250 2.0.0 mentor-agent has this message already"
        if known == IN_DOUBT:  # refused, so that her program says so: a 250 would pass for a second send
            log.warning("%s: handed over again while its send is in doubt: refused, not sent twice", what)
            return (
                "550 5.7.0 mentor-agent did not send this again: its earlier send is in doubt (it may have reached "
                "them). To send it anyway, move its copy from Needs attention back to your Mentor Outbox, or send it "
                "as a new message"
            )
        folder = self.settings.imap.folders.outbox
        if known != OTHER:  # before the APPEND: a kill between it and the 250 leaves the retry known by its text
            self.ledger.log(SUBMITTED_PRINT, message=_print(content, envelope), detail=envelope.key)
        pulse = Pulse()  # an APPEND stuck on a server that trickles is ended, and answered 451 (agent.mail.stalls)
        try:
            added = (
                known
                if known == OTHER
                else await paced(
                    pulse,
                    asyncio.to_thread(
                        self._append, folder, submitted.raw, key, content, again=known == AGAIN, pulse=pulse
                    ),
                    window=2 * self.settings.imap.timeout,
                    what="the handed-over message's APPEND",
                )
            )
        except (MailboxError, OSError, TimeoutError) as error:
            log.warning("%s: not taken (the Mentor Outbox cannot be reached: %s); answered 451", what, error)
            return "451 4.3.0 mentor-agent cannot reach your Mentor Outbox just now; your mail program will try again"
        if added == OTHER:
            log.warning(
                "%s: refused: another message with its Message-ID %s was handed over already", what, envelope.key
            )
            return (
                f"550 5.6.0 mentor-agent already took another message with the Message-ID {envelope.key}: if this is "
                "a new message, send it as a new one (a copy gets a Message-ID of its own); if it is that message "
                "again, it was taken (see your Mentor Outbox, Scheduled and Sent)"
            )
        crash_point("submission-appended")
        taken = key if added == ALREADY else envelope.key  # the Message-ID its copy in the Outbox has
        self.ledger.log(SUBMITTED, message=taken, detail=envelope.subject)
        if taken != envelope.key:  # a retry of an earlier try's copy: later tries are known by that one
            self.ledger.log(SUBMITTED_PRINT, message=_print(content, envelope), detail=taken)
        if parse_envelope(raw).message_id is None:  # its program's Sent copy has none: known by its header block
            self.ledger.log(SUBMITTED_HEAD, message=head_print(raw), detail=envelope.key)
        if added == APPENDED:
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

    def _handed_as(self, content: str, envelope: Envelope) -> str | None:
        """The Message-ID of an earlier hand-over of this message (``content``: its fingerprint, which leaves out Date
        and Message-ID; the same recipients and thread) that this one retries, though its program gave it another
        Message-ID (msmtp writes one anew on each try, a script another Date): one that never got as far as its 250
        (a kill, a 451) within RETRY_WITHIN, or one answered within ANSWER_LOST (the program gave up waiting for
        the answer, or Send was pressed twice). An answered one older than that: the same text is a new message."""
        found = last_logged(self.ledger, SUBMITTED_PRINT, _print(content, envelope))
        if found is None:
            return None
        at, key = found
        answered = last_logged_at(self.ledger, SUBMITTED, key)
        now = datetime.now(UTC)  # the log's own clock
        if answered is not None:
            return key if timedelta(0) <= now - answered <= ANSWER_LOST else None
        return key if timedelta(0) <= now - at <= RETRY_WITHIN else None

    def _known(self, key: str, content: str) -> str | None:
        """What the ledger says of this message (``content``: its fingerprint): ALREADY handed over (on its way or
        sent), OTHER (another message went by its Message-ID: taking this one could be a second copy of that one
        re-encoded, or losing a new one, so neither is guessed), or None (the folders tell: :meth:`_append`). One
        cancelled (`cancel` puts it in Drafts) or set aside in Needs attention is taken again, as a new try; one
        whose send is IN_DOUBT is not: it may have reached them (her program's retry, Send pressed again)."""
        row = self.ledger.get(key)
        if row is not None and row.fingerprint and row.fingerprint != content:
            row = self.ledger.get(variant_key(key, content))  # this one, taken before beside the other (issue 20)?
            if row is None:
                return OTHER
        if row is not None:
            if row.state in OPEN_STATES or row.state == DONE:
                return ALREADY
            if row.state == ATTENTION and row.sent_at is not None:
                return IN_DOUBT  # it may have reached them: sent again only as she decides (moved back to the Outbox)
            return AGAIN
        if last_logged_at(self.ledger, SUBMITTED, key) is not None:
            return None  # handed over, not yet taken in (or set aside before it was): the Outbox tells
        return OTHER if self.ledger.known_message_ids([key]) else None  # mail already sent by that Message-ID

    def _append(self, folder: str, raw: bytes, key: str, content: str, *, again: bool, pulse: Pulse) -> str:
        """APPEND unless a copy is there already (a retry after a lost 250), or on its way: a retry can come while
        the intake, which took the first copy in after the ledger was asked, has it in Sending (it was appended a
        second time, then set aside as already sent, with a "Not sent" notice). APPENDED, ALREADY (a copy with
        its Message-ID and content is there, or it was handed over and set aside before the intake kept it), or
        OTHER (another message with its Message-ID is there). ``again``: its row was cancelled or set aside, and
        she hands it over once more: a new try, taken unless a copy is there. In a worker thread: blocks."""
        with Connection(self.settings.imap, self.login(), pulse=pulse) as connection:
            if not key.startswith("sha256:"):
                found = self._copies(connection, folder, key) + self._sending_copies(connection, key)
                prints = {fingerprint(copy) for copy in found}
                if content in prints:
                    return ALREADY
                if prints:
                    return OTHER
                if not again and last_logged_at(self.ledger, SUBMITTED, key) is not None:
                    return ALREADY  # handed over before and set aside by the intake before it kept it (it told her)
            connection.append(folder, raw)
            return APPENDED

    def _sending_copies(self, connection: Connection, key: str) -> list[bytes]:
        """The messages on their way (Sending) with the Message-ID ``key``: none while there is no Sending folder
        yet (the daemon makes it as it logs in; the door opens before). A look that fails otherwise (a dropped line)
        is no answer: it raises, and the program is answered 451 and tries again."""
        sending = self.settings.imap.folders.sending
        try:
            return self._copies(connection, sending, key)
        except MailboxError:
            if sending in connection.folder_list():
                raise
            return []

    @staticmethod
    def _copies(connection: Connection, folder: str, key: str) -> list[bytes]:
        """The messages in ``folder`` with the Message-ID ``key``."""
        found = [connection.fetch(folder, uid) for uid in connection.find_by_message_id(folder, key)]
        return [raw for raw in found if raw is not None]


def _print(content: str, envelope: Envelope) -> str:
    """A hand-over's content (its fingerprint), recipients and the messages it answers, in one key for the log: two
    replies with the same words to two of the mentor's e-mails are two messages."""
    parts = [content, *sorted(envelope.recipients), "\0", *envelope.references]
    return "print:" + hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]
