"""Held questions as the agenda of the next meeting: mark, propose, file (see :mod:`agent.rules.agenda`).

1. **hold** (from ``intake.carry_out``): a message over the limit for an ``over_limit = "agenda"`` mentor, or
   one with ``[agenda]`` in its subject, is marked ``digest = "agenda"`` in the ledger (state ``scheduled``, no
   due time) and moved to Scheduled. From then on the pacing engine never sees it: it is never e-mailed.
2. **propose** (:func:`pass_once`): when no meeting round with that mentor is open, the waiting questions are
   marked ``agenda:<token>`` in one transaction, then a round starts with ``source = "agenda:<token>"``,
   its invitation's DESCRIPTION listing them (subject and first line each). When a meeting with her is
   already agreed and ahead, they go with that meeting's updated invitation instead
   (:mod:`agent.reconcile.agenda_ahead`). A crash between the two finds
   the marked questions and no round of that source, and proposes then; a round is never started twice.
   Questions that come while that round's invitations all still wait in Scheduled **join** it, and those
   the student takes out of Scheduled are **taken off** (:mod:`agent.reconcile.agenda_changes`): one
   transaction (:func:`agent.store.agenda.join_invitation`) gives the round the longer description and new
   REQUESTs to append, points its offers at them and cancels the old ones, which then leave Scheduled. A crash
   after it leaves the old ones cancelled (never sent) and the new ones in the round's todo (appended by the
   meeting desk). Once an invitation has left, new questions wait for the next round.
3. **file**: once SMTP accepted an invitation of that round (the meeting desk's ``mark_sent``), each question's
   row gets ``item`` = the invitation's Message-ID (it is delivered: never sent again, even if flagged), the
   invitation's ``items`` row lists it as a member, and then it is moved from Scheduled to Sent (\\Seen) and
   becomes ``done``, and the student is told. A crash in between finds ``item`` set and finishes the move.
   A question that left Scheduled meanwhile (the student deleted it) is simply marked done: it went.

When no time can be offered, or the round ends without any invitation having left (called off, refused by
the mail server), the questions go back to e-mail (``detail`` starts with ``agenda off:``, so they are not
taken onto an agenda again) and the student is told. A question the student flags before its invitation
left goes at once by e-mail, as any flagged message does.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime

from agent.logs import named
from agent.reconcile.agenda_filing import file_questions, in_doubt, release
from agent.reconcile.attention import attention
from agent.reconcile.context import World
from agent.rules import agenda
from agent.rules.pacing import Decision
from agent.rules.policy import LoadedPolicy
from agent.store.agenda import on_agenda, taken_off
from agent.store.ledger import CANCELLED, SCHEDULED, Row
from agent.store.rounds import MeetingStore, Stored

log = logging.getLogger("mentor_agent.agenda")


def kept(row: Row) -> bool:
    """Whether the pacing engine must leave ``row`` alone: it is on an agenda (delivered, or not flagged)."""
    return agenda.on_agenda(row.digest) and (row.item is not None or not row.forced)


def _to_her_alone(row: Row) -> bool:
    """An agenda reaches only the mentor: a Cc'd colleague never got the question (her own address aside)."""
    return not row.mentor_addresses or set(row.recipients) - {row.sender} <= set(row.mentor_addresses)


def _eligible(row: Row) -> bool:
    """Whether ``row`` may go as a question on an agenda: not a reply to her, nor flagged, nor back to e-mail
    already, and to her alone."""
    return _to_her_alone(row) and not (row.standalone or row.forced or row.detail.startswith(agenda.OFF))


def tagged(loaded: LoadedPolicy, rows: Sequence[Row]) -> list[Row]:
    """Messages the student marked ``[agenda]``, for a mentor with meeting windows."""
    if not loaded.policy.meetings.windows:
        return []
    return [row for row in rows if agenda.tagged(row.subject) and _eligible(row)]


def no_agenda(loaded: LoadedPolicy, subject: str, others: Sequence[str] = ()) -> str | None:
    """Why a message marked ``[agenda]`` cannot go to ``loaded``'s mentor (no meeting windows, so no agenda; or
    ``others`` it is also to, whom an agenda never reaches; sent as it is, the tag would reach her in the Subject),
    or None."""
    if not agenda.tagged(subject):
        return None
    if others:
        return (
            f"“[agenda]” puts it on the next meeting's agenda, which only {loaded.name} sees, and it is also to "
            f"{', '.join(others)}; take [agenda] out of the subject to send it as an e-mail to all of them"
        )
    if loaded.policy.meetings.windows:
        return None
    return (
        f"“[agenda]” puts it on the next meeting's agenda, and {loaded.name}'s policy ({loaded.path}) has no "
        "[meetings] windows to meet in; take [agenda] out of the subject to send it as an e-mail, or add windows"
    )


def over_limit(
    loaded: LoadedPolicy, decisions: Sequence[Decision], rows: Mapping[str, Row], now: datetime
) -> list[Row]:
    """With ``over_limit = "agenda"``: the messages the plan holds over a limit."""
    if loaded.policy.email.over_limit != "agenda":
        return []
    return [rows[d.id] for d in decisions if agenda.over_limit(d, now) and _eligible(rows[d.id])]


def edited(world: World, row: Row, raw: bytes) -> None:
    """A question on an agenda that she edited in Scheduled (``raw``): while its invitation still waits, it joins it
    again as edited (the invitation is rebuilt with its new text; it went with the old one, under the new subject).
    Edited so that an agenda cannot carry it (a file added, someone else added), it is taken off, to go by e-mail."""
    from agent.reconcile.agenda_changes import waiting_requests

    token = agenda.token_of(row.digest)
    if token is None or row.item is not None:
        return
    now = world.ledger.get(row.key) or row
    why = agenda.only_as_written(raw)
    if why is None and not _to_her_alone(now):
        why = "it is also to someone an agenda never reaches"
    if why is not None:
        world.ledger.update(row.key, detail=f"{agenda.OFF} {why}")  # taken off at the agenda's next pass
        log.info("%s: edited so that an agenda cannot carry it (%s): goes by e-mail", named(row.key, now.subject), why)
        return
    store = MeetingStore(world.ledger)
    stored = store.by_source(agenda.source(token))
    if stored is not None and waiting_requests(world, store, stored) is not None:
        world.ledger.update(row.key, digest=agenda.PENDING)


async def hold(world: World, loaded: LoadedPolicy, rows: Sequence[Row]) -> list[Row]:
    """Mark ``rows`` as waiting for a meeting agenda (first, so a crash never e-mails them) and put them in
    Scheduled. Those only valid as written (a signed or encrypted part inside) go back to e-mail instead, the
    student told: they are returned, as they are now, for the engine to pace."""
    refused = await _only_as_written(world, rows)
    if refused:
        why = next(iter(refused.values()))
        release(world, [r for r in rows if r.key in refused], why)
        title, lines = agenda.released_lines(loaded.name, [r.subject for r in rows if r.key in refused], why)
        await world.notify(title, lines, about=next(r.message_id for r in rows if r.key in refused))
    back = [r for r in map(world.ledger.get, refused) if r is not None]
    rows = [r for r in rows if r.key not in refused]
    ledger = world.ledger
    with ledger.transaction():
        for row in rows:
            ledger.update(
                row.key,
                state=SCHEDULED,
                due=None,
                digest=agenda.PENDING,
                reason=agenda.held_reason(loaded.name),
                told="agenda",
            )
            ledger.log("agenda", mentor=loaded.id, message=row.key, detail="held for the next meeting's agenda")
    for row in rows:
        log.info("%s → %s: %s", named(row.key, row.subject), loaded.name, agenda.held_reason(loaded.name))
    await _to_scheduled(world, rows)
    return back


async def _only_as_written(world: World, rows: Sequence[Row]) -> dict[str, str]:
    """The rows whose message may only go as written, and why (read from the message itself)."""
    found: dict[str, str] = {}
    for row in rows:
        uid = await world.locate(row.folder, row.key, row.uid) if row.folder else None
        raw = await world.imap(world.mailbox.fetch, row.folder, uid) if uid is not None and row.folder else None
        why = agenda.only_as_written(raw) if raw else None
        if why:
            found[row.key] = why
    return found


async def _to_scheduled(world: World, rows: Sequence[Row]) -> bool:
    """Questions still in the Outbox (just held, or a crash came before the move) go to Scheduled. True when
    any was there."""
    ledger = world.ledger
    folders = world.folders
    in_outbox = [row for row in rows if row.folder == folders.outbox and row.uid is not None]
    if not in_outbox:
        return False
    moved = await world.imap(world.mailbox.move_many, folders.outbox, [r.uid for r in in_outbox], folders.scheduled)
    with ledger.transaction():
        for row in in_outbox:
            if row.uid in moved:
                ledger.update(row.key, folder=folders.scheduled, uid=moved[row.uid])
            else:
                ledger.update(row.key, state=CANCELLED, detail="removed from the Outbox before it was scheduled")
    return True


async def pass_once(world: World) -> datetime | None:
    """Propose for waiting questions, file delivered ones, give back the rest. Returns "now" when it changed
    something the next pass should see (an invitation in the Outbox, a question back to e-mail)."""
    waiting_by_mentor = on_agenda(world.ledger)
    dropped_by_mentor = taken_off(world.ledger)
    if not waiting_by_mentor and not dropped_by_mentor:
        return None
    # The meeting desk and the agenda's rounds load with the first question held for an agenda: a daemon that
    # never holds one (most) does not pay for them at start (issue 21).
    from agent.reconcile import agenda_ahead
    from agent.reconcile.agenda_changes import drop, joinable, rebuild, tidy_replaced

    store = MeetingStore(world.ledger)
    again = False
    wake: datetime | None = None
    for loaded in world.book:
        # Only her questions: a file of her name that names no address of the mentor they were for (rewritten for
        # someone else) puts nothing of hers on another's agenda; the intake holds them and tells (policy_of)
        rows = [
            r
            for r in waiting_by_mentor.get(loaded.id, [])
            if world.book.pacing(r.mentor, r.mentor_addresses or r.recipients) is loaded
        ]
        dropped = dropped_by_mentor.get(loaded.id, [])
        if not rows and not dropped:
            continue
        await tidy_replaced(world, loaded.id)
        if dropped and await drop(world, store, loaded, dropped):
            again = True
            rows = [r for r in map(world.ledger.get, [r.key for r in rows]) if r is not None and r.state == SCHEDULED]
        if await _to_scheduled(world, [r for r in rows if r.item is None]):
            rows = [r for r in map(world.ledger.get, [r.key for r in rows]) if r is not None and r.state == SCHEDULED]
        flagged = [r for r in rows if r.forced and r.item is None]
        if flagged:  # the student wants it now: it goes by e-mail (carry_out no longer keeps it)
            release(world, flagged, "you flagged it to go now")
            again = True
        rows = [r for r in rows if r not in flagged]
        waiting = [r for r in rows if r.digest == agenda.PENDING]
        open_round = joinable(world, store, loaded.id) if waiting else None
        if waiting and open_round is not None:
            await rebuild(world, store, loaded, open_round, waiting)
            waiting, again = [], True
            rows = [_reread(world, r) for r in rows]
        ahead = agenda_ahead.agreed_ahead(store, loaded.id, world.now()) if waiting else None
        if waiting and ahead is not None:  # a meeting is agreed: they go with it, not with a new one
            with world.ledger.transaction():
                for row in waiting:
                    world.ledger.update(
                        row.key,
                        digest=agenda.attached(agenda_ahead.token_for(ahead[0])),
                        reason=agenda_ahead.reason(loaded, ahead[1]),
                    )
            rows = [r for r in rows if r not in waiting] + [_reread(world, r) for r in waiting]
        elif waiting and not _round_open(store, loaded.id):
            fresh = uuid.uuid4().hex[:16]
            with world.ledger.transaction():
                for row in waiting:
                    world.ledger.update(row.key, digest=agenda.attached(fresh))
            rows = [r for r in rows if r not in waiting] + [_reread(world, r) for r in waiting]
        by_token: dict[str, list[Row]] = defaultdict(list)
        for row in rows:
            found = agenda.token_of(row.digest)
            if found is not None:
                by_token[found].append(row)
        for token, members in by_token.items():
            if token.startswith(agenda_ahead.NEXT):
                changed, due = await agenda_ahead.follow(
                    world, store, loaded, token.removeprefix(agenda_ahead.NEXT), members
                )
                again = again or changed
                wake = due if wake is None or (due is not None and due < wake) else wake
                continue
            again = await _follow(world, store, loaded, token, members) or again
    return world.now() if again else wake


def _reread(world: World, row: Row) -> Row:
    return world.ledger.get(row.key) or row


def _round_open(store: MeetingStore, mentor: str) -> bool:
    return any(
        s.mentor == mentor and s.state is not None and (s.state.outcome == "open" or s.todo)
        for s in store.open_rounds()
    )


async def _follow(world: World, store: MeetingStore, loaded: LoadedPolicy, token: str, members: list[Row]) -> bool:
    from agent.reconcile.agenda_changes import sent_invitation

    stored = store.by_source(agenda.source(token))
    if stored is None:
        return await _propose(world, loaded, token, members)
    delivered = [r for r in members if r.item is not None]
    if delivered:  # a crash after marking them delivered: finish filing
        await file_questions(world, loaded, delivered, str(delivered[0].item))
        return True
    sent = sent_invitation(store, stored)
    if sent is not None:
        await file_questions(world, loaded, members, sent)
        return True
    if stored.state is not None and not stored.open and not stored.todo and _in_doubt(world, store, stored):
        # The invitation may have reached her, and the questions with it: never sent again by e-mail on a guess.
        # They are in doubt as it is, in Needs attention (moved back to the Outbox, each is taken in afresh).
        why = "it went as the agenda of a meeting invitation whose sending is in doubt"
        await attention(world, members, why, doubt=True)
        return True
    if stored.state is not None and not stored.open and not stored.todo:
        release(world, members, "the invitation did not go out")
        title, lines = agenda.released_lines(
            loaded.name, [r.subject for r in members], "the meeting invitation did not go out"
        )
        await world.notify(title, lines, about=members[0].message_id)
        return True
    return False


def _in_doubt(world: World, store: MeetingStore, stored: Stored) -> bool:
    """Whether an invitation of the round was handed to the mail server and its answer lost (in doubt)."""
    assert stored.state is not None
    requests = (store.request_id(offer.uid) for offer in stored.state.offers)
    return any(request is not None and in_doubt(world, request) for request in requests)


async def _propose(world: World, loaded: LoadedPolicy, token: str, members: list[Row]) -> bool:
    from agent.reconcile.agenda_changes import questions_of
    from agent.reconcile.meeting_desk import propose

    questions = await questions_of(world, members)
    student = world.settings.student.name or "the student"
    proposal = await propose(
        world,
        loaded,
        topic=agenda.topic(questions),
        description=agenda.describe(questions, student),
        source=agenda.source(token),
        about=members[0].message_id,
    )
    if not proposal.offered:
        release(world, members, f"no meeting time: {proposal.problem}")
        title, lines = agenda.released_lines(loaded.name, [r.subject for r in members], "no meeting time is free")
        await world.notify(title, lines, about=members[0].message_id)
        return True
    world.ledger.log(
        "agenda proposed", mentor=loaded.id, detail=f"round {proposal.round_id}, {len(members)} question(s)"
    )
    title, lines = agenda.proposed_lines(loaded.name, [q.subject for q in questions])
    await world.notify(title, lines, about=members[0].message_id)
    return True
