"""Sending exactly once: claim, send, file — each step recorded in the ledger before it is taken.

A message is claimed by MOVing it into the Sending folder (of two agents on one account only one MOVE
succeeds). The ledger says ``sending`` before SMTP is spoken and ``accepted`` as soon as the server said
yes; filing in Sent and leaving the Sending folder come after. After a crash, :func:`recover` finishes what
was started: ``claimed`` is sent, ``accepted`` is filed, and ``sending`` — the one moment at which nobody can
know whether the mentor got it — goes to Needs attention with a notice that says *in doubt*.

Between ``claimed`` and ``sending`` sits ``queued``, flushed to disk for a run of messages at once; the
``sending`` mark itself is not flushed, which lets a backlog go out without one disk flush per message.
A ``queued`` message is safe to send after a crash unless the machine itself restarted (a power cut can
lose the unflushed ``sending`` mark): then it counts as in doubt (:meth:`Ledger.queue`).

A backlog goes out over a few SMTP connections side by side (``[smtp] connections``), after one claim per
folder and one body FETCH per hundred messages; the plain ones are filed in Sent with one MOVE.

A refused SMTP login (or a TLS set-up that cannot work) is no fault of any message: sending stops, what was
claimed goes back to Scheduled untouched (never to Needs attention: nothing was sent), the student gets one
notice, and the login is tried again at long intervals (:mod:`agent.rules.refusals`) before anything is claimed.
An expired or revoked built-in sign-in is the same, except that it is tried again only once the student has
signed in again (``mentor-agent login`` stores a new grant): a grant that failed never goes to the server twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial

from agent.crashpoints import crash_point
from agent.errors import LoginRefused, SignInNeeded, SignInUnavailable, TlsProblem
from agent.logs import named
from agent.mail.imap import MailboxError, MessageGone
from agent.mail.smtp import InDoubtError, PermanentSendError, Sender, SendStopped, TransientSendError, try_login
from agent.reconcile.context import World
from agent.reconcile.digest_delivery import compose_digest, forget, load_saved
from agent.reconcile.events import Cancelled, Filed, Sent, publish
from agent.reconcile.prepared import Prepared, prepare
from agent.rules.envelope import parse_envelope
from agent.rules.limits import DAY, Limits, next_slot, sent_in, warning_due
from agent.rules.notices import HOW_TO_STEER
from agent.rules.refusals import schedule
from agent.store.ledger import ACCEPTED, ATTENTION, CANCELLED, CLAIMED, DONE, NEW, QUEUED, SCHEDULED, SENDING, Row

log = logging.getLogger("mentor_agent.delivery")

QUEUE_RUN = 50  # messages marked queued with one flush to disk (at most this many in doubt after a power cut)
RETRY_LATER = timedelta(minutes=10)
PACE_MARGIN = timedelta(seconds=1)  # a send counted at the provider a moment after it began
MAX_PACE_WAIT = timedelta(minutes=2)  # a longer wait for a provider's limit holds sending instead of blocking
SENT_WAIT = timedelta(seconds=5)  # how long a provider's copy in Sent is waited for before the agent files one
SENT_LOOK = timedelta(milliseconds=500)
LATE_FILING = timedelta(minutes=3)  # how long a provider may take to file a sent message in Sent
LATE_LOOK = timedelta(seconds=3)
LATE_WATCHED = 20  # self-filed copies watched at once for a late provider copy
SIGN_IN_RETRY = timedelta(minutes=1)  # the sign-in server could not be reached: sending waits this long
MAX_ROUNDS = 6  # transient failures: six rounds of retries about ten minutes apart, then Needs attention


class _Blocked(Exception):
    """Internal: the SMTP login was refused before this item was sent; every worker stops."""

    def __init__(self, error: LoginRefused | TlsProblem) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class Item:
    """What goes out as one e-mail: a single message, or several as one digest."""

    rows: list[Row]
    follow_up: bool = False


async def claim(world: World, rows: Sequence[Row]) -> dict[str, Row]:
    """Move the messages into Sending, in one command per folder; {key: claimed row}.

    A message missing from the answer is gone (deleted by the student, or claimed by another agent).
    """
    folders = world.folders
    ledger = world.ledger
    claimed: dict[str, Row] = {}
    todo: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        if row.folder == folders.sending and row.state == CLAIMED:
            claimed[row.key] = row  # claimed before a restart and never handed to SMTP
        elif row.folder is not None:
            todo[row.folder].append(row)
        else:
            _gone(world, row, "nowhere")
    for folder, group in todo.items():
        with ledger.transaction():
            for row in group:
                ledger.update(row.key, state=CLAIMED)
        located = [
            (row, row.uid if row.uid is not None else await world.locate(folder, row.key, None)) for row in group
        ]
        moved = await world.imap(world.mailbox.move_many, folder, [uid for _, uid in located if uid], folders.sending)
        placed: dict[str, int | None] = {}
        for row, uid in located:
            if uid is None or uid not in moved:
                _gone(world, row, folder)
                continue
            new_uid = moved[uid]
            placed[row.key] = new_uid if new_uid is not None else await world.locate(folders.sending, row.key, None)
        with ledger.transaction():
            for key, new_uid in placed.items():
                ledger.update(key, folder=folders.sending, uid=new_uid)
        crash_point("claimed")
        for key in placed:
            row_now = ledger.get(key)
            if row_now is not None:
                claimed[key] = row_now
    return claimed


def _gone(world: World, row: Row, folder: str) -> None:
    world.ledger.update(row.key, state=CANCELLED, detail=f"gone from {folder} before it was sent")
    world.ledger.log("cancelled", mentor=row.mentor, message=row.key, detail=f"no longer in {folder}")
    log.info("%s: gone from %s before sending; not sent", named(row.key, row.subject), folder)
    publish(Cancelled(row.key, f"gone from {folder} before it was sent"))


async def deliver_all(world: World, items: Sequence[Item]) -> None:
    """Send several items: one claim per folder, one body FETCH, one SMTP connection, one filing in Sent.

    Each message is still marked ``sending`` (on disk) just before its own SMTP transaction and
    ``accepted`` just after, so a crash anywhere leaves at most one message in doubt.
    """
    if not await _smtp_open(world):
        return  # the SMTP login was refused: everything stays where it is until the next try works
    try:
        login = world.smtp_login()  # before anything is claimed: a sign-in that fails moves no message
    except SignInNeeded as error:
        await _smtp_refused(world, error, [])
        return
    except SignInUnavailable as error:
        world.held_until = world.now() + SIGN_IN_RETRY
        log.warning("SMTP not tried: %s; nothing is sent before %s", error, world.held_until.isoformat("T", "seconds"))
        return
    claimed = await claim(world, [row for item in items for row in item.rows])
    ready = [Item([claimed[r.key] for r in item.rows if r.key in claimed], item.follow_up) for item in items]
    ready = [item for item in ready if item.rows]
    if not ready:
        return
    sending = world.folders.sending
    uids = [row.uid for item in ready for row in item.rows if row.uid is not None]
    bodies = await world.imap(world.mailbox.fetch_many, sending, uids)
    accepted: list[tuple[list[Row], list[Prepared]]] = []
    waiting = list(ready)
    queued: set[int] = set()  # id() of the items marked queued on disk
    blocked: list[tuple[Item, LoginRefused | TlsProblem]] = []  # refused login: the item it stopped at

    async def worker() -> None:
        async with Sender(world.settings.smtp, login, stopping=world.stopping) as sender:
            # On stop the rest stay claimed, first after restart; on a refused login they go back.
            while waiting and not world.stopping.is_set() and not blocked:
                item = waiting.pop(0)
                if not await _sending_slot(world):
                    waiting.insert(0, item)
                    break  # the provider's daily limit: the rest wait (claimed), see world.held_until
                if id(item) not in queued:  # this one and the next few, with one flush to disk
                    run = [item, *waiting[: QUEUE_RUN - 1]]
                    world.ledger.queue(row.key for member in run for row in member.rows)
                    queued.update(id(member) for member in run)
                    crash_point("queued")
                try:
                    done = await _deliver_one(world, sender, item, bodies)
                except _Blocked as refusal:
                    blocked.append((item, refusal.error))
                    return
                if done is not None:
                    accepted.append(done)

    try:
        # A few connections side by side: each message still has its own sending/accepted marks.
        async with asyncio.TaskGroup() as workers:
            for _ in range(min(world.settings.smtp.connections, len(ready))):
                workers.create_task(worker())
    except BaseExceptionGroup as failures:
        # Raise the first failure as one call would (a MailboxError makes the daemon reconnect); what was
        # accepted meanwhile is filed by recover() then.
        raise failures.exceptions[0] from None
    with world.ledger.transaction():  # stopped before their turn: certainly not sent
        for item in waiting:
            if id(item) in queued:
                for row in item.rows:
                    world.ledger.update(row.key, state=CLAIMED)
    if blocked:
        back = [row for item in [*(i for i, _ in blocked), *waiting] for row in item.rows]
        await _put_back(world, back, blocked[0][1])
        await _smtp_refused(world, blocked[0][1], back)
    await file_accepted(world, accepted)


async def _sending_slot(world: World) -> bool:
    """Wait until one more message stays within the provider's sending limits (a backlog is paced to the
    per-minute limit), and count it. False when the next slot is far off (the daily limit): sending is held
    until then, with a notice, rather than tripping the provider's limit."""
    limits = world.sending_limits
    if limits is None:
        return True
    sends = world.recent_sends()
    while not world.stopping.is_set():
        now = world.now()
        slot = next_slot(sends, now, limits, margin=PACE_MARGIN)
        if slot <= now:
            sends.append(now)
            await _tell_limits(world, limits, sends, now)
            return True
        if slot - now > MAX_PACE_WAIT:
            world.held_until = slot
            await _tell_limits(world, limits, sends, now, held=slot)
            return False
        await _tell_pacing(world, limits, slot)
        await asyncio.sleep(min((slot - now).total_seconds(), 1.0))
    return False


async def _tell_pacing(world: World, limits: Limits, slot: datetime) -> None:
    """Once a day: a backlog goes out more slowly than at once, to stay within a per-minute limit."""
    day = slot.astimezone(world.settings.student.zone).date().isoformat()
    if f"pace {day}" in world.limit_told:
        return
    world.limit_told.add(f"pace {day}")
    log.info("pacing to %s's limit of %s messages a minute", limits.title, limits.per_minute)
    await world.notify(
        f"Sending paced: {limits.title} accepts {limits.per_minute} messages a minute",
        [
            f"More messages are due than {limits.title} accepts in a minute ({limits.per_minute}). Rather than have "
            "the server refuse them, mentor-agent sends them over the next minutes; nothing is lost."
        ],
    )


async def _tell_limits(
    world: World, limits: Limits, sends: list[datetime], now: datetime, *, held: datetime | None = None
) -> None:
    """One notice a day before the daily limit is reached, and one when sending is held by it."""
    day = now.astimezone(world.settings.student.zone).date().isoformat()
    if held is not None and f"held {day}" not in world.limit_told:
        world.limit_told.add(f"held {day}")
        when = held.astimezone(world.settings.student.zone).strftime("%a %H:%M")
        log.warning("the %s sending limit is reached; sending is held until %s", limits.title, when)
        await world.notify(
            f"Sending paused until {when}: {limits.title}'s daily limit",
            [
                f"{limits.title} accepts about {limits.per_day} messages a day from one account, and mentor-agent "
                f"has sent {sent_in(sends, now, DAY)} in the last 24 hours. Rather than have the provider refuse "
                f"mail (or lock the account), the rest wait and go from {when}.",
                HOW_TO_STEER,
            ],
        )
    elif held is None and warning_due(sends, now, limits) and f"warn {day}" not in world.limit_told:
        world.limit_told.add(f"warn {day}")
        count = sent_in(sends, now, DAY)
        await world.notify(
            f"Close to {limits.title}'s daily sending limit ({count} of {limits.per_day})",
            [
                f"mentor-agent has sent {count} messages in the last 24 hours; {limits.title} accepts about "
                f"{limits.per_day} a day. After that, messages wait until the provider allows more."
            ],
        )


async def _deliver_one(
    world: World, sender: Sender, item: Item, bodies: dict[int, bytes]
) -> tuple[list[Row], list[Prepared]] | None:
    raws: list[tuple[Row, bytes]] = []
    for row in item.rows:
        raw = bodies.get(row.uid) if row.uid is not None else None
        if raw is not None and parse_envelope(raw).key != row.key:
            # The UID holds another message (a server's UID map gone wrong): never send it with this row's
            # envelope. Find this row's own message by its key.
            log.warning(
                "%s: UID %s in %s holds another message; looking it up by Message-ID",
                row.key,
                row.uid,
                world.folders.sending,
            )
            row, raw = await _own_copy(world, row)
        if raw is None:
            await _attention(world, [row], "it vanished from the Sending folder before it could be sent", doubt=False)
            continue
        raws.append((row, raw))
    if not raws:
        return None
    prepared, recipients = await _compose(world, raws)
    rows = [row for row, _ in raws]
    if await _send(world, sender, rows, prepared, recipients, item.follow_up):
        return rows, prepared
    return None


async def _own_copy(world: World, row: Row) -> tuple[Row, bytes | None]:
    sending = world.folders.sending
    uid = await world.locate(sending, row.key, None)
    raw = await world.imap(world.mailbox.fetch, sending, uid) if uid is not None else None
    if raw is None or parse_envelope(raw).key != row.key:
        return row, None
    world.ledger.update(row.key, uid=uid)
    return replace(row, uid=uid), raw


async def _compose(world: World, raws: list[tuple[Row, bytes]]) -> tuple[list[Prepared], list[str]]:
    if len(raws) == 1:
        row, raw = raws[0]
        return [prepare(raw, row)], list(row.recipients)

    composed = compose_digest(world, raws)
    if len(composed.prepared) > 1:
        title, lines = _split_notice(world, [row for row, _ in raws], composed.digests, composed.alone)
        await world.notify(title, lines, about=raws[0][0].message_id)
    return composed.prepared, composed.recipients


def _split_notice(world: World, rows: list[Row], digests: int, alone: list[Row]) -> tuple[str, list[str]]:
    limit = f"about {world.settings.digest.max_bytes / 1_000_000:g} MB, [digest] max_bytes"
    count = digests + len(alone)
    lines = []
    if alone:
        names = ", ".join(f"“{row.subject}”" for row in alone)
        one = len(alone) == 1
        lines.append(
            f"{names} {'is' if one else 'are'} larger than the digest limit ({limit}) on "
            f"{'its' if one else 'their'} own, so {'it goes' if one else 'they go'} alone, as you wrote "
            f"{'it' if one else 'them'}, not inside a digest."
        )
    if digests > 1:
        lines.append(
            f"The other waiting messages together are larger than the digest limit ({limit}), so they go "
            f"as {digests} digests."
        )
    elif digests == 1:
        lines.append("The other waiting messages go together as one digest.")
    lines.append(f"All {count} e-mails go at the same time and count as one against the agreement:")
    lines.append("\n".join(f"  • {row.subject}" for row in rows))
    title = (
        f"Sent on its own, too large for a digest: {alone[0].subject}"
        if alone
        else f"Digest split in {digests}: {rows[0].subject}"
    )
    return title, lines


async def _send(
    world: World, sender: Sender, rows: list[Row], prepared: list[Prepared], recipients: list[str], follow_up: bool
) -> bool:
    """One item over the open connection; True once the server accepted it (then it is to be filed)."""
    ledger = world.ledger
    item = prepared[0].message_id
    with ledger.transaction():  # kept by a killed daemon; a power cut is covered by the queued mark (on disk)
        for row in rows:
            ledger.update(row.key, state=SENDING, item=item)
    crash_point("sending")
    refused: dict[str, str] = {}
    parts_sent = 0
    try:
        for part in prepared:
            delivery = await sender.send(part.wire, world.settings.student.address, recipients)
            refused.update(delivery.refused)
            parts_sent += 1
    except (LoginRefused, TlsProblem) as error:
        if not parts_sent:  # refused before anything was sent: the message goes back, untouched
            raise _Blocked(error) from error
        await _attention(
            world,
            rows,
            f"only {parts_sent} of {len(prepared)} parts were sent before the server refused the login ({error})",
            doubt=False,
        )
        return False
    except SendStopped:  # stopped while a retry waited: not sent, so it goes first after the restart
        with ledger.transaction():
            for row in rows:
                ledger.update(row.key, state=CLAIMED)
        log.info("%s: not sent, mentor-agent is stopping; it goes after the restart", item)
        return False
    except PermanentSendError as error:
        await _attention(world, rows, f"the mail server refused it: {error.reply}", doubt=False)
        return False
    except InDoubtError as error:
        await _attention(world, rows, f"the connection broke while the server was accepting it ({error})", doubt=True)
        return False
    except TransientSendError as error:
        await _retry_later(world, rows, str(error))
        return False
    sent_at = world.now()
    with ledger.transaction():
        for row in rows:
            ledger.update(row.key, state=ACCEPTED, sent_at=sent_at, detail="")
        mentor = rows[0].mentor
        if mentor:
            # Every e-mail of a split digest is ours: history must not count a part again as found in Sent.
            members = [m for row in rows for m in (row.key, row.message_id)] + [p.message_id for p in prepared]
            ledger.add_item(mentor, item, sent_at, members, follow_up=follow_up)
        ledger.log("sent", mentor=mentor, message=item, detail=f"{len(rows)} message(s) to {', '.join(recipients)}")
    what = (
        named(rows[0].key, rows[0].subject)
        if len(rows) == 1
        else (
            f"a digest of {len(rows)} ({', '.join(named(row.key, row.subject) for row in rows)})"
            + (f" as {len(prepared)} e-mails" if len(prepared) > 1 else "")
        )
    )
    log.info("sent %s to %s", what, ", ".join(recipients))
    publish(Sent(tuple(row.key for row in rows), mentor or "", tuple(recipients), sent_at))
    crash_point("accepted")
    if refused:
        lines = [f"  • {address}: {answer}" for address, answer in refused.items()]
        await world.notify(
            f"Some recipients were refused: {rows[0].subject}",
            ["The message was sent, but the server refused these recipients:", "\n".join(lines)],
            about=rows[0].message_id,
        )
    return True


async def _smtp_open(world: World) -> bool:
    """Whether sending may go on: yes, unless the SMTP login was refused and its next try has not come or
    fails again. That try logs in only, before anything is claimed, so a refusal moves no message."""
    gate = world.smtp_gate
    now = world.now()
    if not gate.may_try(now):
        return False
    if not gate.closed:
        return True
    if gate.refusal is not None and gate.refusal.signed_out and world.smtp_grant() == gate.refusal.grant:
        gate.postpone(now)  # no new sign-in yet: the grant that failed is not tried again, and nothing is logged
        return False
    try:
        await try_login(world.settings.smtp, world.smtp_login())
    except (LoginRefused, TlsProblem) as error:
        refusal = gate.refused(now, error, world.smtp_grant() if isinstance(error, SignInNeeded) else "")
        log.warning(
            "SMTP %s again (try %d): %s; nothing is sent; next try at %s",
            refusal.what,
            refusal.tries,
            error,
            refusal.next_try.isoformat(timespec="seconds"),
        )
        world.ledger.set_status(**gate.status())
        return False
    except Exception as error:  # the server cannot be reached at all: we still do not know
        later = gate.postpone(now)
        log.warning(
            "SMTP login not tried again: %s; next try at %s",
            error,
            later.next_try.isoformat(timespec="seconds") if later else "once a message is due",
        )
        world.ledger.set_status(**gate.status())
        return False
    ended = gate.worked()
    log.info(
        "SMTP login works again (%s since %s): sending resumes",
        ended.what if ended else "refused",
        ended.since.isoformat(timespec="seconds") if ended else "?",
    )
    world.ledger.set_status(**gate.status())
    world.ledger.log("smtp login works", detail="sending resumes")
    return True


async def _put_back(world: World, rows: Sequence[Row], error: LoginRefused | TlsProblem) -> None:
    """Claimed but not sent (the login was refused first): back to Scheduled as they were, to go later."""
    folders = world.folders
    for row in rows:
        uid = await world.locate(folders.sending, row.key, row.uid)
        new_uid: int | None = None
        if uid is not None:
            try:
                new_uid = await world.imap(world.mailbox.move, folders.sending, uid, folders.scheduled)
            except MessageGone:
                new_uid = None
            if new_uid is None:
                new_uid = await world.locate(folders.scheduled, row.key, None)
        world.ledger.update(
            row.key, state=SCHEDULED, folder=folders.scheduled, uid=new_uid, detail=f"not sent yet: {error}"
        )
        world.ledger.log("waiting", mentor=row.mentor, message=row.key, detail=f"SMTP: {error}")


async def _smtp_refused(world: World, error: LoginRefused | TlsProblem, rows: Sequence[Row]) -> None:
    """Sending stops: the one notice, a log line, and the state ``status`` shows."""
    gate = world.smtp_gate
    if isinstance(error, SignInNeeded):
        await _smtp_signed_out(world, error, rows)
        return
    refusal = gate.refused(world.now(), error)
    at = refusal.next_try.isoformat(timespec="seconds")
    log.warning(
        "SMTP %s: %s; sending stops, every waiting message stays where it is; next try at %s", refusal.what, error, at
    )
    world.ledger.set_status(**gate.status())
    world.ledger.log("smtp refused", detail=str(error))
    minutes = ", ".join(f"{s / 60:g}" for s in schedule()[:-1])
    lines = [
        f"The outgoing mail server did not let mentor-agent in: {error}.",
        "Nothing is sent until this works again. Every waiting message stays where it is (Scheduled or the "
        "Outbox): none is lost, none goes twice, and there is nothing to move back."
        + (f" Waiting now: {len(rows)} message(s) that were due." if rows else ""),
        f"mentor-agent tries again after {minutes} minutes, then every {schedule()[-1] / 60:g} minutes, and "
        "sends as soon as it works. If your password changed, update it where mentor-agent reads it "
        "(password_command, the keyring or the systemd credential); `mentor-agent status` shows the next try.",
    ]
    title = (
        "Not sending: the mail server refused the login"
        if isinstance(error, LoginRefused)
        else "Not sending: TLS with the mail server failed"
    )
    await world.notify(title, lines)


async def _smtp_signed_out(world: World, error: SignInNeeded, rows: Sequence[Row]) -> None:
    """The sign-in for sending expired or was revoked: one notice, one log line; no retry until a new sign-in."""
    world.smtp_gate.refused(world.now(), error, world.smtp_grant())
    log.error("%s; nothing is sent until then, and mentor-agent goes on by itself after it", error)
    world.ledger.set_status(**world.smtp_gate.status())
    world.ledger.log("smtp refused", detail=str(error))
    await world.notify(
        "Not sending: sign in again (mentor-agent login)",
        [
            f"Your sign-in for sending mail has expired or was revoked: {error}.",
            "Nothing is sent until you sign in again. Every waiting message stays where it is (Scheduled or the "
            "Outbox): none is lost, none goes twice."
            + (f" Waiting now: {len(rows)} message(s) that were due." if rows else ""),
            "Run `mentor-agent login` on the computer where mentor-agent runs; sending resumes by itself as soon "
            "as the new sign-in is saved. Sign-ins end when a password changes, when the school's IT revokes "
            'them, or — for a Google project still in "Testing" — after 7 days.',
        ],
    )


async def file_accepted(world: World, accepted: Sequence[tuple[list[Row], list[Prepared]]]) -> None:
    """File what the server accepted. Plain messages in one go: MOVEd from Sending to Sent, or deleted from
    Sending where the provider filed the submission itself (``auto``: seen by looking for the Message-ID in
    Sent, ``never``: always so); digests and rewritten messages one by one. One copy in Sent, never two, never
    none."""
    folders = world.folders
    ledger = world.ledger
    plain = {rows[0].uid: (rows[0], prepared[0]) for rows, prepared in accepted if _plain(rows, prepared)}
    if plain:
        uids = [uid for uid in plain if uid is not None]
        by_provider: list[int] = []  # filed in Sent by the provider itself: ours would be a second copy
        ours: list[int] = []
        later: list[int] = []  # not there yet: looked for again for a few seconds (follow_filing)
        if not world.file_in_sent:
            by_provider = uids
        elif world.look_in_sent:
            found = await world.in_sent([plain[uid][1].message_id for uid in uids], wait=False)
            by_provider = [uid for uid in uids if plain[uid][1].message_id in found]
            rest = [uid for uid in uids if uid not in by_provider]
            if world.provider_files_sent is False:
                ours = rest
            else:
                later = rest
                if by_provider:
                    world.provider_files_sent = True
        else:
            ours = uids
        if ours:
            await _file_ours(world, [(uid, plain[uid][1]) for uid in ours])
        if by_provider:
            await world.imap(world.mailbox.discard_many, folders.sending, by_provider)
        deadline = world.now() + SENT_WAIT
        for uid in later:
            world.filing_later[plain[uid][0].key] = (uid, plain[uid][1], deadline)
        with ledger.transaction():
            for key_uid, (row, _) in plain.items():
                if key_uid not in later:
                    ledger.update(row.key, state=DONE, folder=folders.sent, uid=None)
        for key_uid, (row, _) in plain.items():
            if key_uid not in later:
                publish(Filed(row.key, folders.sent))
    for rows, prepared in accepted:
        if not _plain(rows, prepared):
            await file_sent(world, rows, prepared)


async def _file_ours(world: World, copies: Sequence[tuple[int, Prepared]]) -> None:
    """Move these messages from Sending to Sent (the student's own message, Bcc and all); one that is no longer
    in Sending is filed from the copy that was sent."""
    folders = world.folders
    uids = [uid for uid, _ in copies]
    await world.imap(world.mailbox.replace_flags_many, folders.sending, uids, ["\\Seen"])
    moved = await world.imap(partial(world.mailbox.move_many, claim=False), folders.sending, uids, folders.sent)
    world.filed.setdefault(folders.sent, set()).update(new for new in moved.values() if new is not None)
    for uid, prepared in copies:
        new_uid = moved.get(uid)
        if uid not in moved:  # no longer in Sending: file the copy we sent
            new_uid = await world.imap(world.mailbox.append, folders.sent, prepared.sent_copy, ["\\Seen"])
        if world.look_in_sent:
            _watch_late_filing(world, prepared.message_id, new_uid)


async def follow_filing(world: World) -> datetime | None:
    """Sent filing that waits on the provider (``auto``), without holding up the pass: a message whose copy the
    provider has filed leaves Sending; one whose copy did not come in time is filed by the agent; a copy the
    provider filed after that replaces ours. Returns when to look again (None: nothing to follow)."""
    if world.filing_later:
        now = world.now()
        waiting = dict(world.filing_later)
        found = await world.in_sent([prepared.message_id for _, prepared, _ in waiting.values()], wait=False)
        theirs = [key for key, (_, prepared, _) in waiting.items() if prepared.message_id in found]
        overdue = [key for key, (_, prepared, deadline) in waiting.items() if key not in theirs and now >= deadline]
        if theirs:
            world.provider_files_sent = True
            await world.imap(world.mailbox.discard_many, world.folders.sending, [waiting[k][0] for k in theirs])
        if overdue:
            if world.provider_files_sent is None:
                world.provider_files_sent = False
                log.info(
                    "the provider did not file a sent message in %s within %.0f s: mentor-agent files them",
                    world.folders.sent,
                    SENT_WAIT.total_seconds(),
                )
            await _file_ours(world, [(waiting[k][0], waiting[k][1]) for k in overdue])
        with world.ledger.transaction():
            for key in (*theirs, *overdue):
                world.filing_later.pop(key, None)
                world.ledger.update(key, state=DONE, folder=world.folders.sent, uid=None)
    tidy = await tidy_sent(world) if world.self_filed else None
    soon = world.now() + SENT_LOOK if world.filing_later else None
    return min((t for t in (soon, tidy) if t is not None), default=None)


def _watch_late_filing(world: World, message_id: str, uid: int | None) -> None:
    if uid is not None and len(world.self_filed) < LATE_WATCHED:
        world.self_filed[message_id] = (uid, world.now())


async def tidy_sent(world: World) -> datetime | None:
    """A provider that files a sent message in Sent later than we looked (``auto``): the copy we filed goes,
    so that Sent never holds two. Returns when to look again (None: nothing left to watch)."""
    now = world.now()
    sent = world.folders.sent
    for message_id, (uid, filed_at) in list(world.self_filed.items()):
        if now - filed_at > LATE_FILING:
            del world.self_filed[message_id]
            continue
        found = await world.imap(world.mailbox.find_by_message_id, sent, message_id)
        if uid in found and len(found) > 1:
            await world.imap(world.mailbox.discard_many, sent, [uid])
            del world.self_filed[message_id]
            world.provider_files_sent = True  # it does file them, late: wait for its copy from now on
            log.info("%s: the provider filed it in %s late; the agent's own copy removed", message_id, sent)
        elif uid not in found:
            del world.self_filed[message_id]  # the student moved or deleted it: nothing of ours to tidy
    return now + LATE_LOOK if world.self_filed else None


def _plain(rows: Sequence[Row], prepared: Sequence[Prepared]) -> bool:
    return len(rows) == 1 and len(prepared) == 1 and prepared[0].original and rows[0].uid is not None


async def file_sent(world: World, rows: Sequence[Row], prepared: Sequence[Prepared] | None) -> None:
    """After acceptance: one copy in Sent (unless the provider files it), then out of the Sending folder."""
    folders = world.folders
    missing = False
    if world.file_in_sent and rows:
        copies: list[tuple[str, bytes | None]] = [(p.message_id, p.sent_copy) for p in prepared or ()]
        if not copies:  # after a restart: from the Sending folder, or the digest kept on disk
            item = rows[0].item or rows[0].message_id
            copies = [(item, await _sending_copy(world, rows))]
        for message_id, copy in copies:
            present = message_id in await world.in_sent([message_id], wait=world.look_in_sent)
            if not present and copy is not None:
                filed = await world.imap(world.mailbox.append, folders.sent, copy, ["\\Seen"])
                if world.look_in_sent:
                    _watch_late_filing(world, message_id, filed)
            missing = missing or (not present and copy is None)
    for row in rows:
        uid = await world.locate(folders.sending, row.key, row.uid)
        if uid is not None and missing:  # no copy of what went out: file the originals themselves
            await world.imap(world.mailbox.move, folders.sending, uid, folders.sent)
        elif uid is not None:
            await world.imap(world.mailbox.discard_many, folders.sending, [uid])
        world.ledger.update(row.key, state=DONE, folder=folders.sent, uid=None)
        publish(Filed(row.key, folders.sent))
    if len(rows) > 1:
        forget(world, rows[0].item or "")


async def _sending_copy(world: World, rows: Sequence[Row]) -> bytes | None:
    if len(rows) != 1:
        return load_saved(world, rows[0].item or "")
    row = rows[0]
    uid = await world.locate(world.folders.sending, row.key, row.uid)
    raw = await world.imap(world.mailbox.fetch, world.folders.sending, uid) if uid else None
    return prepare(raw, row).sent_copy if raw is not None else None


async def _attention(world: World, rows: Sequence[Row], why: str, *, doubt: bool) -> None:
    """Move to Needs attention and tell the student. Nothing is retried from there."""
    folders = world.folders
    for row in rows:
        uid = await world.locate(folders.sending, row.key, row.uid) if row.folder == folders.sending else row.uid
        source = folders.sending if row.folder == folders.sending else row.folder
        new_uid = None
        if uid is not None and source:
            try:
                new_uid = await world.imap(world.mailbox.move, source, uid, folders.needs_attention)
            except MessageGone:
                new_uid = None
        world.ledger.update(row.key, state=ATTENTION, folder=folders.needs_attention, uid=new_uid, detail=why)
        world.ledger.log("in doubt" if doubt else "attention", mentor=row.mentor, message=row.key, detail=why)
        log.warning("%s: needs attention: %s", named(row.key, row.subject), why)
        if doubt:
            lines = [
                f"“{row.subject}” is IN DOUBT: it may or may not have reached {', '.join(row.recipients)}.",
                f"What happened: {why}.",
                "mentor-agent will not send it again by itself, so that nobody gets it twice. Check with the "
                "recipient or your Sent folder; to send it anyway, move it back to the Outbox.",
            ]
            title = f"In doubt: {row.subject}"
        else:
            lines = [
                f"“{row.subject}” was not sent: {why}.",
                "It is in the Needs attention folder. Fix it and move it back to the Outbox to try again.",
            ]
            title = f"Not sent: {row.subject}"
        await world.notify(title, lines, about=row.message_id)


async def _retry_later(world: World, rows: Sequence[Row], why: str) -> None:
    """A temporary failure: back to Scheduled to try again later, or to Needs attention after many rounds."""
    folders = world.folders
    attempts = max(row.attempts for row in rows) + 1
    if attempts >= MAX_ROUNDS:
        await _attention(world, rows, f"the mail server kept failing ({why}); tried {attempts} times", doubt=False)
        return
    due = world.now() + RETRY_LATER
    for row in rows:
        uid = await world.locate(folders.sending, row.key, row.uid)
        new_uid = await world.imap(world.mailbox.move, folders.sending, uid, folders.scheduled) if uid else None
        if new_uid is None and uid is not None:
            new_uid = await world.locate(folders.scheduled, row.key, None)
        world.ledger.update(
            row.key,
            state=SCHEDULED,
            folder=folders.scheduled,
            uid=new_uid,
            attempts=attempts,
            due=due,
            detail=f"temporary failure: {why}",
        )
        world.ledger.log("retry", mentor=row.mentor, message=row.key, detail=why)
    log.warning(
        "%s: temporary send failure (%s); trying again in %s", named(rows[0].key, rows[0].subject), why, RETRY_LATER
    )
    await world.notify(
        f"Delayed by a mail server problem: {rows[0].subject}",
        [
            f"Sending failed for a moment ({why}). mentor-agent tries again in about ten minutes "
            f"(attempt {attempts} of {MAX_ROUNDS}).",
            HOW_TO_STEER,
        ],
        about=rows[0].message_id,
    )


async def recover(world: World) -> None:
    """Finish what a crash interrupted (see the module docstring)."""
    ledger = world.ledger
    folders = world.folders
    queued = ledger.in_states(QUEUED)
    if queued:
        # Not yet marked sending: never handed to SMTP, unless the machine restarted and lost that mark.
        after_reboot = ledger.queued_before_reboot()
        with ledger.transaction():
            for row in queued:
                ledger.update(row.key, state=SENDING if after_reboot else CLAIMED)
        if after_reboot:
            log.warning("%d message(s) were next in line when the machine stopped: treated as in doubt", len(queued))
    for row in ledger.in_states(CLAIMED):
        uid = await world.locate(folders.sending, row.key, row.uid if row.folder == folders.sending else None)
        if uid is not None:
            ledger.update(row.key, folder=folders.sending, uid=uid)
            continue  # planned again below: it was never handed to SMTP, so it is safe to send
        origin = row.folder if row.folder and row.folder != folders.sending else folders.scheduled
        back = await world.locate(origin, row.key, None)
        if back is not None:
            ledger.update(row.key, state=SCHEDULED if row.mentor else NEW, folder=origin, uid=back)
        else:
            ledger.update(row.key, state=CANCELLED, detail="gone before it was sent")
            publish(Cancelled(row.key, "gone before it was sent"))
    by_item: dict[str, list[Row]] = {}
    for row in ledger.in_states(SENDING):
        by_item.setdefault(row.item or row.key, []).append(row)
    for item, rows in by_item.items():
        # A copy in Sent that the provider filed proves the server accepted it ("always": it never files).
        filed = set() if world.settings.smtp.file_in_sent == "always" else await world.in_sent([item], wait=False)
        if filed:
            # The provider filed it in Sent: the server did accept it.
            sent_at = world.now()
            with ledger.transaction():
                for row in rows:
                    ledger.update(row.key, state=ACCEPTED, sent_at=sent_at)
                if rows[0].mentor:
                    ledger.add_item(rows[0].mentor, item, sent_at, [m for r in rows for m in (r.key, r.message_id)])
            await file_sent(world, [ledger.get(r.key) or r for r in rows], None)
            continue
        await _attention(world, rows, "mentor-agent stopped while the mail server was receiving it", doubt=True)
    accepted: dict[str, list[Row]] = {}
    for row in ledger.in_states(ACCEPTED):
        accepted.setdefault(row.item or row.key, []).append(row)
    for rows in accepted.values():
        try:
            await file_sent(world, rows, None)
        except MailboxError as error:
            log.warning("could not file %s in Sent yet: %s", rows[0].item, error)
