"""Mail to a mentor found in Sent (or a folder named like it) that the agent did not send: it counts against the
agreement, once, for every mentor it went to (:func:`count_found`). The history scan counts what it reads there
(:mod:`agent.reconcile.history`); a held door message she sent herself is counted as it is cancelled
(:mod:`agent.reconcile.doors.sent_herself`), before its copy moves, so that a stop and her deleting the Sent copy
cannot leave her send uncounted."""

from __future__ import annotations

import logging

from agent.logs import named
from agent.mail.port import HeaderInfo
from agent.reconcile.context import World
from agent.rules.addresses import normal_address
from agent.rules.envelope import Envelope
from agent.store.ledger import SENT_FOLDER

log = logging.getLogger("mentor_agent.history")


def count_found(world: World, info: HeaderInfo, envelope: Envelope, where: str) -> int:
    """Count ``envelope`` (its copy ``info`` found in ``where``: "Sent" or a look-alike's name) for each mentor it
    went to; how many mentors it was newly counted for (0: to no mentor, no date, or counted before)."""
    recipients = envelope.to + envelope.cc + envelope.bcc
    mentors = {p.id: p for p in map(world.book.for_address, recipients) if p}
    # When her server stored it (INTERNALDATE), not by her program's Date, as for the mentor's replies: a phone a day
    # behind made it count yesterday (two in her day of one). Never later than now: a program may APPEND its copy with
    # a time of its own, and one a year ahead held every message to the mentor for a year
    at = info.internaldate or envelope.date
    if at is None or not mentors:
        return 0
    at = min(at, world.now())
    # One item for every mentor it went to, known by each one's addresses: each of them got it.
    written = {a for loaded in mentors.values() for a in written_to(loaded.policy.mentor.addresses, recipients)}
    message = envelope.message_id or envelope.key
    if not world.ledger.add_item(min(mentors), message, at, [message], source=SENT_FOLDER, addresses=sorted(written)):
        return 0  # counted before (Sent is read again at each start): said once
    for mentor in mentors:
        world.ledger.log(
            "counted",
            mentor=mentor,
            message=envelope.key,
            detail=f"found in {where}, sent without the agent: {envelope.subject}",
        )
        log.info(
            "counted %s to %s (found in %s, sent without the agent)",
            named(envelope.key, envelope.subject),
            mentor,
            where,
        )
    return len(mentors)


def where_found(world: World, folder: str) -> str:
    """How :func:`count_found` names ``folder``: "Sent", or a look-alike's name quoted."""
    return "Sent" if folder == world.folders.sent else repr(folder)


def written_to(addresses: tuple[str, ...], recipients: tuple[str, ...]) -> tuple[str, ...]:
    """Her addresses the message was written to (all of them when none is named as written)."""
    named_ = {normal_address(a) for a in recipients}
    return tuple(a for a in addresses if normal_address(a) in named_) or addresses
