"""What each mentor has received and answered, read back from the mailbox.

The agreement is about what the mentor receives, not about which program sent it: mail to a mentor found in
Sent that the agent did not send counts against the budget. Replies from a mentor in INBOX that answer one of
those messages (In-Reply-To/References) lower the "unanswered" count, if a person wrote them (docs/answers.md).
Both are rescanned on every start and reconnect, so a reply that came while the agent was down still counts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from agent.mail.port import HeaderInfo
from agent.mail.session import CommandRefused
from agent.reconcile.context import World
from agent.reconcile.doors.early_copies import submitted_without_id, take_out_early_copies
from agent.reconcile.doors.sent_herself import cancel_held
from agent.reconcile.not_answers import (
    Reports,
    read_bounce,
    tell_by_subject_alone,
    tell_unauthenticated,
    tell_unknown_address,
)
from agent.reconcile.sent_counts import count_found, where_found
from agent.reconcile.went_after_all import settle_doubts
from agent.rules.authenticity import auth_problem
from agent.rules.envelope import Envelope, parse_envelope
from agent.store.answers import NOT_AN_ANSWER, logged, sent_times
from agent.store.in_doubt_kept import taken_back

log = logging.getLogger("mentor_agent.history")
MEETING_REQUEST = "meeting request"  # logged about a "[meeting]" request as the meeting desk files it
LOOK_BACK = timedelta(days=35)
RETRY_UNMATCHED = timedelta(days=1)  # how long a reply of hers that matches nothing yet is looked at again


@dataclass
class Seen:
    """UIDs already read per folder (reset when UIDVALIDITY changes or on reconnect)."""

    uids: dict[str, tuple[int, set[int]]] = field(default_factory=dict)
    # Her replies (and delivery reports, and replies from addresses not in a policy) that matched nothing yet,
    # per folder, looked at again on the next passes; the reports among them already read, by UID.
    waiting: dict[str, dict[int, HeaderInfo]] = field(default_factory=dict)
    reports: Reports = field(default_factory=dict)
    unreadable: set[str] = field(default_factory=set)  # Sent look-alikes the server would not let the agent read

    def new(self, folder: str, validity: int, uids: list[int]) -> list[int]:
        known_validity, known = self.uids.get(folder, (validity, set()))
        if known_validity != validity:
            known = set()
        fresh = [uid for uid in uids if uid not in known]
        self.uids[folder] = (validity, known | set(fresh))
        return fresh

    def again(self, folder: str, uid: int) -> None:
        """Read ``uid`` again on the next pass."""
        self.uids.get(folder, (0, set()))[1].discard(uid)


async def new_headers(world: World, seen: Seen, folder: str) -> list[HeaderInfo]:
    """Headers of the recent messages in ``folder`` not read before (one batched FETCH)."""
    since = (world.now() - LOOK_BACK).date()
    validity, uids = await world.imap(world.mailbox.uids_since, folder, since)  # one SELECT, one SEARCH
    ours = world.filed.pop(folder, set())
    fresh = [uid for uid in seen.new(folder, validity, uids) if uid not in ours]
    return await world.imap(world.mailbox.headers, folder, fresh) if fresh else []


async def scan_sent(world: World, seen: Seen) -> int:
    """Record mail to a mentor that is in Sent but was not sent by the agent. Returns how many were found.

    Where the server marks no Sent folder and several are named like one (``folders.sent_like``), her other
    programs may file in any of them: each is read as Sent is, for her mail to count and her programs' copies of
    what the agent holds or sent to be known."""
    found = await _scan_sent(world, seen, world.folders.sent)
    for folder in world.folders.sent_like:
        try:
            found += await _scan_sent(world, seen, folder)
        except CommandRefused as error:  # one she can list but not read: never a reason to stop sending
            if folder not in seen.unreadable:
                seen.unreadable.add(folder)
                log.warning(
                    "%r, named like a Sent folder, cannot be read (%s): mail in it is not counted", folder, error
                )
    return found


async def _scan_sent(world: World, seen: Seen, folder: str) -> int:
    """:func:`scan_sent` in one folder."""
    infos = await new_headers(world, seen, folder)
    if not infos:
        return 0
    envelopes = [(info, parse_envelope(info.headers)) for info in infos]
    # A program's own copy of what it handed over without a Message-ID: known by its header block as submitted
    envelopes = [(info, submitted_without_id(world, info, e) or e) for info, e in envelopes]
    ours = world.ledger.known_message_ids(e.message_id for _, e in envelopes if e.message_id)
    # A send in doubt whose message was taken in again: its copy (under a Message-ID the agent made for it, say)
    links = taken_back(world.ledger)
    ours |= {e.message_id for _, e in envelopes if e.message_id in links}
    await take_out_early_copies(
        world, [f for f in envelopes if f[1].message_id in ours], lambda u: seen.again(folder, u), folder
    )
    # A held door message she also sent from her mail program: not sent again, counted below as sent without the agent
    ours -= await cancel_held(world, [f for f in envelopes if f[1].message_id in ours], folder)
    # A send in doubt whose copy turns up now: it went (counted already: not counted below as sent without the agent)
    await settle_doubts(world, [f for f in envelopes if f[1].message_id in ours], links)
    # A message this agent cancelled (and never sent) whose copy is here went without it: her program after she
    # cancelled it here, another agent on the account that took it first. It counts.
    ours -= world.ledger.only_cancelled(ours)
    found = 0
    where = where_found(world, folder)
    # Read again at the next pass while the message under its Message-ID waits here: if this agent then finds it gone
    # (another agent on the account took it first, or she took it back and sent it herself), the copy counts then
    waiting = world.ledger.waiting_ids(ours)
    for info, envelope in envelopes:
        if envelope.message_id in waiting:
            seen.again(folder, info.uid)
        if envelope.message_id in ours or (envelope.key.startswith("sha256:") and world.ledger.get(envelope.key)):
            continue
        if world.ledger.logged(MEETING_REQUEST, envelope.key):
            continue  # a "[meeting]" request the desk filed here: it became an invitation, never went itself
        found += count_found(world, info, envelope, where)
    return found


async def scan_replies(world: World, seen: Seen) -> int:
    """Record replies from mentors to what they received from the student. Returns how many are new.

    Only a person's answer counts (:mod:`agent.rules.answer_kind`): auto-replies and read receipts are logged
    and left; a delivery report about a message to her is told to the student (:mod:`.not_answers`). A reply of
    hers, a delivery report or a reply from an address not in a policy that matches nothing yet (the phone's copy
    of what it answers is not in Sent yet) is looked at again on the next passes, for a day."""
    inbox = world.folders.inbox
    fresh = await new_headers(world, seen, inbox)
    waiting = seen.waiting.setdefault(inbox, {})
    if not fresh and not waiting:
        return 0
    from agent.rules.answer_kind import classify  # with the first mail read there (issue 21: not before a backlog)

    infos = [*waiting.values(), *fresh]
    waiting.clear()
    ours = world.ledger.item_owners()
    times = sent_times(world.ledger)
    found = 0
    for info in infos:
        envelope = parse_envelope(info.headers)
        if envelope.agent_kind:
            continue
        verdict = classify(info.headers)
        if verdict.kind == "delivery-report":
            if await read_bounce(world, info, ours, seen.reports) == "not ours" and _young(world, info, envelope):
                waiting[info.uid] = info
            continue
        if not envelope.references:
            continue
        mentor = world.book.for_address(envelope.sender) if envelope.sender else None
        if not envelope.sender and envelope.references:
            log.info("%s: its From names no one address cleanly: nobody's answer", envelope.key)
        if mentor is None:
            if verdict.answer and not any(ref in ours for ref in envelope.references):
                if _young(world, info, envelope):
                    waiting[info.uid] = info
            elif verdict.answer:
                await tell_unknown_address(world, envelope, ours)
            continue  # only a mentor's own mail can count as an answer; strangers change nothing
        if not envelope.message_id:
            continue
        if (problem := auth_problem(envelope.authentication, envelope.sender)) is not None:
            if not logged(world.ledger, NOT_AN_ANSWER, envelope.message_id):
                world.ledger.log(NOT_AN_ANSWER, mentor=mentor.id, message=envelope.message_id, detail=problem)
                log.warning("%s is not counted as %s's answer: %s", envelope.key, mentor.name, problem)
                if verdict.answer and any(ref in ours for ref in envelope.references):
                    await tell_unauthenticated(world, envelope, mentor, problem)
            continue
        addresses = mentor.policy.mentor.addresses
        answered = [ref for ref in envelope.references if ref in ours and _received_by(ours[ref], mentor.id, addresses)]
        if not answered:
            if verdict.answer and _young(world, info, envelope):
                waiting[info.uid] = info
            continue
        if not verdict.answer:
            if not logged(world.ledger, NOT_AN_ANSWER, envelope.message_id):
                log.info("%s from %s is not her answer (%s)", verdict.kind, mentor.name, verdict.sign)
                if verdict.sign.startswith("Subject:"):  # no header says so: she may have typed it, she is told
                    await tell_by_subject_alone(world, envelope, mentor, verdict.sign)
                    continue
                world.ledger.log(NOT_AN_ANSWER, mentor=mentor.id, message=envelope.message_id, detail=verdict.sign)
            continue
        # The newest message she answered is the one In-Reply-To names (the thread's others are older);
        # without it, the newest one referred to. A reply answers it and, by the engine's rule, all before it.
        named_ = [ref for ref in envelope.in_reply_to if ref in answered]
        target = named_[0] if named_ else max(answered, key=lambda ref: times.get(ref, world.now()))
        # When it arrived at her server's side of the world (INTERNALDATE), not her clock; and never before
        # what it answers went, whatever either clock says.
        at = min(info.internaldate or envelope.date or world.now(), world.now())
        if target in times:
            at = max(at, times[target])
        if world.ledger.add_reply(mentor.id, envelope.message_id, at, target, addresses=addresses):
            world.ledger.log("reply", mentor=mentor.id, message=envelope.message_id, detail=envelope.subject)
            log.info("reply from %s to %s", mentor.name, target)
            found += 1
    for uid in set(seen.reports) - set(waiting):
        del seen.reports[uid]  # read and done with: kept only while it waits
    return found


def _young(world: World, info: HeaderInfo, envelope: Envelope) -> bool:
    """Whether mail that matches nothing yet is recent enough to be looked at again on the next passes."""
    arrived = info.internaldate or envelope.date
    return arrived is not None and world.now() - arrived < RETRY_UNMATCHED


def _received_by(owner: tuple[str, frozenset[str]], mentor_id: str, addresses: tuple[str, ...]) -> bool:
    """Whether an item went to this mentor: by her addresses (a renamed policy file changes nothing), or by
    her policy id for an item recorded before addresses were kept."""
    policy_id, received_by = owner
    return bool(received_by & set(addresses)) if received_by else policy_id == mentor_id
