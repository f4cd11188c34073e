"""What each mentor has received and answered, read back from the mailbox.

The agreement is about what the mentor receives, not about which program sent it: mail to a mentor found in
Sent that the agent did not send counts against the budget. Replies from a mentor in INBOX that answer one of
those messages (In-Reply-To/References) lower the "unanswered" count. Both are rescanned on every start and
reconnect, so a reply that came while the agent was down still counts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from agent.logs import named
from agent.mail.port import HeaderInfo
from agent.reconcile.context import World
from agent.reconcile.doors.early_copies import take_out_early_copies
from agent.rules.envelope import parse_envelope

log = logging.getLogger("mentor_agent.history")
LOOK_BACK = timedelta(days=35)


@dataclass
class Seen:
    """UIDs already read per folder (reset when UIDVALIDITY changes or on reconnect)."""

    uids: dict[str, tuple[int, set[int]]] = field(default_factory=dict)

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
    uids = await world.imap(world.mailbox.search_since, folder, since)
    validity, _ = await world.imap(world.mailbox.uids, folder)
    ours = world.filed.pop(folder, set())
    fresh = [uid for uid in seen.new(folder, validity, uids) if uid not in ours]
    return await world.imap(world.mailbox.headers, folder, fresh) if fresh else []


async def scan_sent(world: World, seen: Seen) -> int:
    """Record mail to a mentor that is in Sent but was not sent by the agent. Returns how many were found."""
    infos = await new_headers(world, seen, world.folders.sent)
    if not infos:
        return 0
    envelopes = [(info, parse_envelope(info.headers)) for info in infos]
    ours = world.ledger.known_message_ids(e.message_id for _, e in envelopes if e.message_id)
    folder = world.folders.sent
    await take_out_early_copies(
        world, [f for f in envelopes if f[1].message_id in ours], lambda u: seen.again(folder, u)
    )
    found = 0
    for info, envelope in envelopes:
        if envelope.message_id in ours or (envelope.key.startswith("sha256:") and world.ledger.get(envelope.key)):
            continue
        mentors = {p.id: p for p in map(world.book.for_address, envelope.to + envelope.cc + envelope.bcc) if p}
        at = envelope.date or info.internaldate
        if at is None:
            continue
        for mentor, loaded in mentors.items():
            world.ledger.add_item(
                mentor,
                envelope.message_id or envelope.key,
                at,
                [envelope.message_id or envelope.key],
                source="sent-folder",
                addresses=loaded.policy.mentor.addresses,
            )
            world.ledger.log(
                "counted",
                mentor=mentor,
                message=envelope.key,
                detail=f"found in Sent, sent without the agent: {envelope.subject}",
            )
            log.info(
                "counted %s to %s (found in Sent, sent without the agent)",
                named(envelope.key, envelope.subject),
                mentor,
            )
            found += 1
    return found


async def scan_replies(world: World, seen: Seen) -> int:
    """Record replies from mentors to what they received from the student. Returns how many are new."""
    infos = await new_headers(world, seen, world.folders.inbox)
    if not infos:
        return 0
    ours = world.ledger.item_owners()
    found = 0
    for info in infos:
        envelope = parse_envelope(info.headers)
        mentor = world.book.for_address(envelope.sender) if envelope.sender else None
        if mentor is None or not envelope.message_id:
            continue  # only a mentor's own mail can count as an answer; strangers change nothing
        addresses = mentor.policy.mentor.addresses
        answered = [ref for ref in envelope.references if ref in ours and _received_by(ours[ref], mentor.id, addresses)]
        at = envelope.date or info.internaldate
        if not answered or at is None:
            continue
        # A reply answers the newest of our messages it refers to (and, by the engine's rule, all before it).
        if world.ledger.add_reply(
            mentor.id, envelope.message_id, min(at, world.now()), answered[-1], addresses=addresses
        ):
            world.ledger.log("reply", mentor=mentor.id, message=envelope.message_id, detail=envelope.subject)
            log.info("reply from %s to %s", mentor.name, answered[-1])
            found += 1
    return found


def _received_by(owner: tuple[str, frozenset[str]], mentor_id: str, addresses: tuple[str, ...]) -> bool:
    """Whether an item went to this mentor: by her addresses (a renamed policy file changes nothing), or by
    her policy id for an item recorded before addresses were kept."""
    policy_id, received_by = owner
    return bool(received_by & set(addresses)) if received_by else policy_id == mentor_id
