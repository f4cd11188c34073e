"""Sending exactly once: claim, send, file — each step recorded in the ledger before it is taken.

A message is claimed by MOVing it into the Sending folder (of two agents on one account only one MOVE
succeeds). The ledger says ``sending`` before SMTP is spoken and ``accepted`` as soon as the server said
yes; filing in Sent and leaving the Sending folder come after (:mod:`agent.reconcile.sent_filing`). After a
crash, :func:`agent.reconcile.recovery.recover` finishes what was started: ``claimed`` is sent, ``accepted``
is filed, and ``sending`` — the one moment at which nobody can know whether the mentor got it — goes to Needs
attention with a notice that says *in doubt* (:mod:`agent.reconcile.attention`).

Between ``claimed`` and ``sending`` sits ``queued``, flushed to disk for a run of messages at once; the
``sending`` mark itself is not flushed, which lets a backlog go out without one disk flush per message.
A ``queued`` message is safe to send after a crash unless the machine itself restarted (a power cut can
lose the unflushed ``sending`` mark): then it counts as in doubt (:meth:`Ledger.queue`).

A backlog goes out over a few SMTP connections side by side (``[smtp] connections``). It is claimed in stages:
the first ``FIRST_CLAIM`` messages (one claim per folder, one body FETCH), then runs of ``CLAIM_RUN`` claimed
while the earlier ones go out, so that the first e-mail does not wait for thousands of MOVEs; a stage not claimed
when the sending stops stays where it was, untouched. The plain ones are filed in Sent with one MOVE per run of
``FILE_RUN``, the first runs while the rest still go out (the IMAP connection is idle then). When one
connection fails unexpectedly, the others finish the e-mail they are sending before the failure is raised:
one message's failure never leaves another in doubt. The
provider's sending limits are kept by :mod:`agent.reconcile.send_limits`.

A refused SMTP login (or a TLS set-up that cannot work) is no fault of any message: sending stops, what was
claimed goes back to Scheduled untouched (never to Needs attention: nothing was sent), the student gets one
notice, and the login is tried again at long intervals (:mod:`agent.reconcile.smtp_gate`) before anything is
claimed. An expired or revoked built-in sign-in is the same, except that it is tried again only once the student
has signed in again (``mentor-agent login`` stores a new grant): a grant that failed never goes to the server twice.

Why one module of ~420 lines: claim, the marks before and after each SMTP transaction, the last look at a
meeting's message before its own transaction and the filing runs are one protocol over the same rows and
connections; each step's safety rests on the order of the others, so they are kept where they can be read in
one go (the pieces that stand alone are already out: recovery, sent_filing, send_limits, smtp_gate).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from agent.crashpoints import crash_point
from agent.errors import LoginRefused, SignInNeeded, SignInUnavailable, TlsProblem
from agent.logs import named
from agent.mail.message_size import learn_size, refused_as_too_large
from agent.mail.smtp import InDoubtError, PermanentSendError, Sender, SendStopped, TransientSendError
from agent.reconcile import strangers
from agent.reconcile.attention import attention, retry_later
from agent.reconcile.context import World
from agent.reconcile.digest_delivery import (
    PART_ACCEPTED,
    PART_SENDING,
    back_to_scheduled,
    compose_release,
    divide,
    forget,
    in_own_part,
    load_parts,
    mark_part,
    record_received,
)
from agent.reconcile.edited import taken_in_again
from agent.reconcile.events import Cancelled, Sent, publish
from agent.reconcile.prepared import Prepared
from agent.reconcile.send_limits import sending_slot
from agent.reconcile.sent_filing import file_accepted
from agent.reconcile.smtp_gate import put_back, smtp_open, smtp_refused
from agent.rules.envelope import fingerprint, is_keyed, parse_envelope
from agent.rules.localtime import after
from agent.store.ledger import ACCEPTED, CANCELLED, CLAIMED, SENDING, Row

log = logging.getLogger("mentor_agent.delivery")

QUEUE_RUN = 50  # messages marked queued with one flush to disk (at most this many in doubt after a power cut)
FIRST_CLAIM = 100  # messages claimed before the first e-mail goes; the next stages are claimed meanwhile
CLAIM_RUN = 500  # messages claimed at once in a backlog's later stages
FILE_RUN = 250  # accepted messages filed in Sent while the rest still go out (the IMAP connection is idle then)
SIGN_IN_RETRY = timedelta(minutes=1)  # the sign-in server could not be reached: sending waits this long


class _Blocked(Exception):
    """Internal: the SMTP login was refused before ``unsent`` went; every worker stops. ``done``: the parts of
    a split release that went before it (to be filed)."""

    def __init__(
        self,
        error: LoginRefused | TlsProblem,
        unsent: list[Row],
        done: tuple[list[Row], list[Prepared]] | None = None,
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.unsent = unsent
        self.done = done


@dataclass(frozen=True)
class Item:
    """What goes out as one e-mail: a single message, or several as one digest."""

    rows: list[Row]
    follow_up: bool = False


@dataclass(frozen=True)
class LastLook:
    """The look right before its own SMTP transaction at each message about a meeting (Message-ID in ``about``):
    ``stop`` takes back those that must not go now (an invitation past its notice, a CANCEL after its meeting
    began: :func:`agent.reconcile.invite_deadline.gate`) and returns their keys. A slow transaction before it in the
    same pass cannot make one leave late; one that starts in time and ends late cannot be helped."""

    about: frozenset[str]
    stop: Callable[[list[Row]], Awaitable[set[str]]]

    def concerns(self, item: Item) -> bool:
        return any(row.message_id in self.about for row in item.rows)


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
            ledger.update_each({row.key: {"state": CLAIMED} for row in group})
        located = [
            (row, row.uid if row.uid is not None else await world.locate(folder, row.key, None)) for row in group
        ]
        moved = await world.imap(world.mailbox.move_many, folder, [uid for _, uid in located if uid], folders.sending)
        placed: dict[str, int | None] = {}
        missing = []
        for row, uid in located:
            if uid is None or uid not in moved:
                missing.append(row)
                continue
            new_uid = moved[uid]
            placed[row.key] = new_uid if new_uid is not None else await world.locate(folders.sending, row.key, None)
        if missing and folder == folders.outbox:
            placed |= await _claim_placed(world, missing)
        for row in missing:
            if row.key not in placed:
                _gone(world, row, folder)
        with ledger.transaction():
            ledger.update_each({key: {"folder": folders.sending, "uid": new_uid} for key, new_uid in placed.items()})
        crash_point("claimed")
        fresh = ledger.get_many(placed)  # as they stand now, in one query
        claimed.update((key, fresh[key]) for key in placed if key in fresh)
    return claimed


async def _claim_placed(world: World, rows: list[Row]) -> dict[str, int | None]:
    """Claim, from Scheduled, messages the ledger still has in the Outbox: a daemon killed between the MOVE that
    placed them there and its ledger update (:func:`agent.reconcile.intake._schedule` records the move after it)
    left them so. Without this they were cancelled as gone and stayed in Scheduled, never sent. {key: UID in
    Sending} of those found there and moved."""
    folders = world.folders
    found = [(row, await world.locate(folders.scheduled, row.key, None, same=True)) for row in rows]
    there = {uid: row for row, uid in found if uid is not None}
    if there:  # one another agent on the account placed there holds it: not this one's to claim
        infos = await world.imap(world.mailbox.headers, folders.scheduled, sorted(there))
        for info in infos:
            if strangers.held_by_another(world, info.flags):
                del there[info.uid]
    if not there:
        return {}
    moved = await world.imap(world.mailbox.move_many, folders.scheduled, sorted(there), folders.sending)
    placed: dict[str, int | None] = {}
    for uid, row in there.items():
        if uid in moved:
            new_uid = moved[uid]
            placed[row.key] = new_uid if new_uid is not None else await world.locate(folders.sending, row.key, None)
            log.info(
                "%s: found in %s, where it was placed before a restart", named(row.key, row.subject), folders.scheduled
            )
    return placed


def _gone(world: World, row: Row, folder: str) -> None:
    world.ledger.update(row.key, state=CANCELLED, detail=f"gone from {folder} before it was sent")
    world.ledger.log("cancelled", mentor=row.mentor, message=row.key, detail=f"no longer in {folder}")
    log.info("%s: gone from %s before sending; not sent", named(row.key, row.subject), folder)
    publish(Cancelled(row.key, f"gone from {folder} before it was sent"))


async def deliver_all(
    world: World,
    items: Sequence[Item],
    last_look: LastLook | None = None,
    meanwhile: Callable[[Callable[[str], Awaitable[bool]]], Awaitable[None]] | None = None,
) -> None:
    """Send several items: claimed in stages (the later ones while the first go out), a few SMTP connections,
    filing in Sent in runs.

    Each message is still marked ``sending`` (on disk) just before its own SMTP transaction and
    ``accepted`` just after, so a crash anywhere leaves at most one message in doubt. A message about a meeting
    is looked at again right before its own transaction (``last_look``), before it is marked ``queued``.
    ``meanwhile``: IMAP work of the same pass done while the e-mails go out (the IMAP connection is idle then),
    once every stage is claimed (the sending waits on the claims, ``meanwhile`` on nothing); not run when nothing
    was claimed. It is given ``sent(key)``, which waits until that message's fate is known: True once the SMTP
    server accepted it, False if it was not (refused, stopped, in doubt, never claimed). Its failure does not cut
    the sending short: it is raised once the e-mails went, as a failure of the sending would be.
    """
    if not await smtp_open(world):
        return  # the SMTP login was refused: everything stays where it is until the next try works
    try:
        login = world.smtp_login()  # before anything is claimed: a sign-in that fails moves no message
    except SignInNeeded as error:
        await smtp_refused(world, error, [])
        return
    except SignInUnavailable as error:
        world.held_until = after(world.now(), SIGN_IN_RETRY)
        log.warning("SMTP not tried: %s; nothing is sent before %s", error, world.held_until.isoformat("T", "seconds"))
        return
    stages = _stages(items)
    bodies: dict[int, bytes] = {}
    waiting: list[Item] = []
    while stages and not waiting and not world.stopping.is_set():  # the first stage with something to send
        waiting = await _claimed_stage(world, stages.pop(0), bodies)
    if not waiting:
        return
    claiming = asyncio.Event()  # set when more were claimed, or when the claiming is over

    async def next_stage() -> None:
        """Wait until the stage being claimed is (or the claiming is over)."""
        claiming.clear()
        await claiming.wait()

    accepted: list[tuple[list[Row], list[Prepared]]] = []
    queued: set[int] = set()  # id() of the items marked queued on disk
    blocked: list[tuple[list[Row], LoginRefused | TlsProblem]] = []  # refused login: what it stopped before
    held: list[bool] = []  # the provider's daily limit reached: the sending waits (world.held_until)
    failed: list[Exception] = []  # an unexpected failure (a MailboxError): the others finish their e-mail first
    filed = 0  # accepted[:filed] is filed (or being filed) already
    fate: dict[str, asyncio.Future[bool]] = {}  # what ``meanwhile`` waits on: {key: accepted by SMTP}
    beside_failed: list[Exception] = []

    def settle(rows: Sequence[Row], accepted_now: bool) -> None:
        for row in rows:
            future = fate.get(row.key)
            if future is not None and not future.done():
                future.set_result(accepted_now)

    async def sent(key: str) -> bool:
        if key not in fate:
            return False
        return await fate[key]

    async def file_some() -> None:
        """A backlog's first runs are filed in Sent while the rest still goes out: the IMAP connection has
        nothing else to do then. A failure stops the sending after the e-mails in flight, as any other does;
        what was accepted and not filed is filed by recover() (the ledger says accepted)."""
        nonlocal filed
        if len(accepted) - filed < FILE_RUN or failed or blocked:
            return
        run, filed = accepted[filed:], len(accepted)
        try:
            await file_accepted(world, run)
        except Exception as error:
            failed.append(error)

    async def worker() -> None:
        async with Sender(world.settings.smtp, login, stopping=world.stopping) as sender:
            # On stop the rest stay claimed, first after restart; on a refused login they go back.
            while not world.stopping.is_set() and not blocked and not failed:
                if not waiting:
                    if not stages:
                        break
                    await next_stage()  # its claim is under way beside the sending
                    continue
                item = waiting.pop(0)
                if last_look is not None and last_look.concerns(item):
                    stopped = await last_look.stop(item.rows)  # claimed, not queued: it can still be taken back
                    if stopped:
                        rows = [row for row in item.rows if row.key not in stopped]
                        if not rows:
                            continue
                        item = replace(item, rows=rows)
                if not await sending_slot(world):
                    waiting.insert(0, item)
                    held.append(True)  # no further stage is claimed: they wait where they are
                    break  # the provider's daily limit: the rest wait (claimed), see world.held_until
                if id(item) not in queued:  # this one and the next few, with one flush to disk
                    later = [w for w in waiting[: QUEUE_RUN - 1] if last_look is None or not last_look.concerns(w)]
                    run = [item, *later]  # one about a meeting is queued in its own turn, after its last look
                    world.ledger.queue(row.key for member in run for row in member.rows)
                    queued.update(id(member) for member in run)
                    crash_point("queued")
                try:
                    done = await _deliver_one(world, sender, item, bodies)
                except _Blocked as refusal:
                    if refusal.done is not None:
                        accepted.append(refusal.done)
                        settle(refusal.done[0], True)
                    blocked.append((refusal.unsent, refusal.error))
                    return
                except Exception as error:  # never cut another worker's e-mail short: it would be in doubt
                    failed.append(error)
                    return
                if done is not None:
                    accepted.append(done)
                    settle(done[0], True)
                settle(item.rows, False)
                if done is not None:
                    await file_some()

    async def claim_rest() -> None:
        """The later stages, claimed while the first ones go out; stopped (left where they are, untouched) when
        the sending stops or is held by the provider's daily limit, or when no worker is left to send them.
        Their bodies are fetched before they are given to the workers."""
        try:
            while stages and running[0] and not (world.stopping.is_set() or blocked or failed or held):
                stage = stages[0]
                try:
                    more = await _claimed_stage(world, stage, bodies)
                except Exception as error:  # as a worker's failure: the others finish their e-mail first
                    failed.append(error)
                    return
                finally:
                    stages.pop(0)  # claimed (or tried): never claimed again in this pass
                waiting.extend(more)
                claiming.set()
        finally:
            stages.clear()
            claiming.set()

    count = min(world.settings.smtp.connections, len(waiting) + sum(len(stage) for stage in stages))
    running = [count]

    async def one_worker() -> None:
        try:
            await worker()
        finally:
            running[0] -= 1
            if not running[0]:  # every worker is done: what did not go is known now
                for future in fate.values():
                    if not future.done():
                        future.set_result(False)

    async def beside() -> None:
        if meanwhile is None:
            return
        while stages:  # the claims first: the sending waits on them, ``meanwhile`` on nothing
            await next_stage()
        try:
            await meanwhile(sent)
        except Exception as error:
            beside_failed.append(error)

    loop = asyncio.get_running_loop()
    if meanwhile is not None:  # every message of the pass, claimed yet or not: one never claimed was not sent
        fate.update({row.key: loop.create_future() for item in items for row in item.rows})
    try:
        # A few connections side by side: each message still has its own sending/accepted marks.
        async with asyncio.TaskGroup() as workers:
            for _ in range(count):
                workers.create_task(one_worker())
            workers.create_task(claim_rest())
            workers.create_task(beside())
    except BaseExceptionGroup as failures:
        raise failures.exceptions[0] from None
    if failed:
        # Raised once every other worker's e-mail went (or failed on its own), as one call would raise it (a
        # MailboxError makes the daemon reconnect); what was accepted is filed by recover() then, and what never
        # started was only queued: recover() sends it.
        raise failed[0]
    with world.ledger.transaction():  # stopped before their turn: certainly not sent
        for item in waiting:
            if id(item) in queued:
                for row in item.rows:
                    world.ledger.update(row.key, state=CLAIMED)
    if blocked:
        back = [row for unsent, _ in blocked for row in unsent] + [row for item in waiting for row in item.rows]
        await put_back(world, back, blocked[0][1])
        await smtp_refused(world, blocked[0][1], back)
    else:  # several messages left claimed would go one e-mail each: they wait to go as one digest again
        several = [row for item in waiting if len(item.rows) > 1 for row in item.rows]
        await back_to_scheduled(world, several, "not sent yet: it goes again with the rest of its digest")
    await file_accepted(world, accepted[filed:])
    if beside_failed:
        raise beside_failed[0]


def _stages(items: Sequence[Item]) -> list[list[Item]]:
    """The items in claiming order, cut in stages: a first small one, so that the sending starts at once, then
    runs of ``CLAIM_RUN`` messages claimed while the earlier ones go out (an item is never cut)."""
    stages: list[list[Item]] = []
    size = 0
    for item in items:
        if not stages or size >= (FIRST_CLAIM if len(stages) == 1 else CLAIM_RUN):
            stages.append([])
            size = 0
        stages[-1].append(item)
        size += len(item.rows)
    return stages


async def _claimed_stage(world: World, stage: list[Item], bodies: dict[int, bytes]) -> list[Item]:
    """Claim one stage's messages and fetch their bodies (into ``bodies``); its items as claimed, in order."""
    claimed = await claim(world, [row for item in stage for row in item.rows])
    ready = [Item([claimed[r.key] for r in item.rows if r.key in claimed], item.follow_up) for item in stage]
    ready = [item for item in ready if item.rows]
    uids = [row.uid for item in ready for row in item.rows if row.uid is not None]
    if uids:
        bodies.update(await world.imap(world.mailbox.fetch_many, world.folders.sending, uids))
    return ready


async def _deliver_one(
    world: World, sender: Sender, item: Item, bodies: dict[int, bytes]
) -> tuple[list[Row], list[Prepared]] | None:
    raws: list[tuple[Row, bytes]] = []
    for row in item.rows:
        raw = bodies.get(row.uid) if row.uid is not None else None
        if raw is not None and not is_keyed(raw, row.key):
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
            await attention(world, [row], "it vanished from the Sending folder before it could be sent", doubt=False)
            continue
        read = parse_envelope(raw)
        readdressed = set(read.recipients) != set(row.recipients)  # the cheap look first: fingerprints when it says so
        if readdressed and row.fingerprint and (content := fingerprint(raw)) != row.fingerprint and row.uid is not None:
            # Changed after it was decided (an edit found only now: after a crash, a renumbering): to someone else.
            why = "changed after it was planned, to other recipients: taken in again from the Outbox"
            await taken_in_again(world, row, world.folders.sending, row.uid, content, why)
            continue
        unsigned = read.unsigned  # taken in by a version that did not check From: never sent so
        if unsigned:
            await attention(world, [row], "; ".join(unsigned), doubt=False)
            continue
        raws.append((row, raw))
    if not raws:
        return None
    prepared, recipients, rows = await compose_release(world, raws, item.follow_up)
    return await _send(world, sender, rows, prepared, recipients, item.follow_up)


async def _own_copy(world: World, row: Row) -> tuple[Row, bytes | None]:
    sending = world.folders.sending
    uid = await world.locate(sending, row.key, None)
    raw = await world.imap(world.mailbox.fetch, sending, uid) if uid is not None else None
    if raw is None or not is_keyed(raw, row.key):
        return row, None
    world.ledger.update(row.key, uid=uid)
    return replace(row, uid=uid), raw


async def _send(
    world: World, sender: Sender, rows: list[Row], prepared: list[Prepared], recipients: list[str], follow_up: bool
) -> tuple[list[Row], list[Prepared]] | None:
    """One item over the open connection; what the server accepted (then it is to be filed), or None.

    A release split into several e-mails that fails part-way: the parts that went are accepted and filed, the
    messages of the part that failed are handled as the error says, and those of the parts never started go back
    to Scheduled, to go again as one digest when the mentor's rules allow (never one e-mail each at once); a
    refused login puts the part that failed back too, and stops sending. Nothing is sent twice.
    """
    ledger = world.ledger
    item = prepared[0].message_id
    # Committed before SMTP is spoken: kept by a killed daemon; a power cut is covered by the queued mark (on disk).
    # With when it is handed to SMTP: if it ends in doubt, it counts as sent to her from then (agent.store.in_doubt).
    handed = world.now()
    if len(rows) == 1:
        ledger.update(rows[0].key, state=SENDING, item=item, sent_at=handed)  # one statement: commits on its own
    else:
        with ledger.transaction():
            for row in rows:
                ledger.update(row.key, state=SENDING, item=item, sent_at=handed)
    crash_point("sending")
    refused: dict[str, str] = {}
    parts_sent = 0
    failed: list[Row] = []  # the messages of the e-mail that failed (all of them for a single e-mail)
    rest: list[Row] = []  # the messages of the parts of a split release never started
    several = len(rows) > 1  # a digest: what was not sent goes as one again, never one e-mail each
    login: LoginRefused | TlsProblem | None = None  # refused part-way: the rest goes back, sending stops
    try:
        for index, part in enumerate(prepared):
            if len(prepared) > 1:  # a split release: each part's progress on disk, for recover()
                mark_part(world, item, index, PART_SENDING)
            delivery = await sender.send(part.wire, world.settings.student.address, recipients)
            if len(prepared) > 1:
                mark_part(world, item, index, PART_ACCEPTED)
                crash_point("part_accepted")
            refused.update(delivery.refused)
            parts_sent += 1
    except (LoginRefused, TlsProblem) as error:
        if not parts_sent:  # refused before anything was sent: the message goes back, untouched
            raise _Blocked(error, rows) from error
        # Part-way: what went is filed, the rest goes back to Scheduled untouched (no fault of any message).
        rows, failed, rest = _part_way(world, item, rows, parts_sent)
        login = error
    except SendStopped:  # stopped while a retry waited: not sent, so it goes again after the restart
        rows, failed, rest = _part_way(world, item, rows, parts_sent)
        if several:
            await back_to_scheduled(world, failed + rest, "not sent yet: mentor-agent stopped before it went")
        else:
            _claim_again(world, failed)  # a single message goes first after the restart
        log.info("%s: not sent, mentor-agent is stopping; it goes after the restart", item)
    except PermanentSendError as error:
        rows, failed, rest = _part_way(world, item, rows, parts_sent)
        if len(failed) > 1 and refused_as_too_large(error.reply):
            # A digest too large for the server (it said less, or nothing, or changed): none of her messages is at
            # fault. Below that size from now on, they go again in smaller e-mails, paced as the rest was.
            learn_size(world.settings.smtp, len(prepared[parts_sent].wire))
            log.warning("%s: the mail server refused the digest as too large (%s): it goes again smaller", item, error)
            await back_to_scheduled(
                world, failed + rest, f"the mail server refused the digest as too large ({error.reply})"
            )
        else:
            await attention(world, failed, f"the mail server refused it: {error.reply}", doubt=False)
            await back_to_scheduled(world, rest, _NEVER_STARTED)
    except InDoubtError as error:
        rows, failed, rest = _part_way(world, item, rows, parts_sent)
        failed = in_own_part(world, item, failed, parts_sent)
        await attention(world, failed, f"the connection broke while the server was accepting it ({error})", doubt=True)
        await back_to_scheduled(world, rest, _NEVER_STARTED)
    except TransientSendError as error:
        rows, failed, rest = _part_way(world, item, rows, parts_sent)
        await retry_later(world, failed + rest, str(error))
    if not rows:  # nothing went: the copies kept for filing are let go, as recover() does
        for part in prepared if len(prepared) > 1 else []:
            forget(world, part.message_id)
        if login is not None:
            raise _Blocked(login, failed + rest)
        return None
    prepared = prepared[:parts_sent]
    sent_at = world.now()
    with ledger.transaction():
        for row in rows:
            ledger.update(row.key, state=ACCEPTED, sent_at=sent_at, detail="")
        mentor = rows[0].mentor
        if mentor:
            # Every e-mail of a split digest is ours and one the mentor got: each counts, none again from Sent.
            record_received(world, mentor, item, sent_at, rows, [p.message_id for p in prepared], follow_up=follow_up)
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
    if login is not None:
        raise _Blocked(login, failed + rest, done=(rows, prepared))
    return rows, prepared


_NEVER_STARTED = "not sent yet: an earlier e-mail of its digest failed; it goes again with the rest"


def _part_way(world: World, item: str, rows: list[Row], parts_sent: int) -> tuple[list[Row], list[Row], list[Row]]:
    """After a failure: (the messages whose e-mail the server accepted, those of the one that failed, those of
    the parts never started). Only a split release can have gone part-way, or failed at a part before others."""
    parts = load_parts(world, item)
    if parts is None:
        return [], rows, []
    return divide(rows, parts, parts_sent)


def _claim_again(world: World, rows: list[Row]) -> None:
    """Never handed to SMTP: claimed again, so that they go on the next pass (and first after a restart)."""
    with world.ledger.transaction():
        for row in rows:
            world.ledger.update(row.key, state=CLAIMED, item=None)
