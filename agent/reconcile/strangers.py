"""Mail in Scheduled that the agent did not put there: she moved or saved it there herself (she took Scheduled
for "send later"), or her mail program saved an edit of a waiting message as a new one, or she dragged a message
back from Needs attention. Only what the agent holds goes from Scheduled, so such a message would wait there for
ever, unsent and untold. It is left where it is (hers to move) and she is told, once for each message, in one
notice per look: to send it within the agreement, she moves it to the Outbox.

What another agent on the same account holds is not hers to be told of: an agent marks what it moves into
Scheduled (:data:`agent.mail.port.HELD_KEYWORD` and its id, with its claim, before the move): a marked message
that this agent's ledger does not know is left alone, and one another agent marked is never taken in again or
claimed by this one (:func:`held_by_another`). Where the server keeps no keywords (Microsoft 365) a second agent
cannot tell the first one's held mail from hers, and tells her of it: a notice too many, never a message of hers
left untold.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
import weakref
from collections.abc import Collection, Iterable, Sequence

from agent.mail.port import HELD_KEYWORD, HeaderInfo, held_marks
from agent.mail.session import CommandRefused
from agent.reconcile.context import World
from agent.rules.envelope import Envelope
from agent.rules.notices import notice_id
from agent.store.ledger import ATTENTION, Row

log = logging.getLogger("mentor_agent.intake")

TOLD = "not held: told"  # logged about a message's key once she is told it is in Scheduled and will not go
TRIED = "not held: notice tried"  # ... a notice naming it whose APPEND failed (its Message-ID: the detail)
SHOWN = 5  # subjects named in one notice; the rest counted


def is_stranger(info: HeaderInfo, row: Row | None, *, namesakes: bool) -> bool:
    """Whether the message ``info`` in Scheduled (``row``: the ledger's row for its key) is none the agent holds:
    unknown and unmarked, or one the ledger has in Needs attention (a mark it kept from before is stale then).
    Never one whose Message-ID an open message of ours shares (``namesakes``: a second one under it is held by its
    content's key)."""
    if namesakes or (row is not None and row.state != ATTENTION):
        return False
    return row is not None or not held_marks(info.flags)


_MARKED: weakref.WeakKeyDictionary[object, set[int]] = weakref.WeakKeyDictionary()  # per session: marked by us


async def mark_held(world: World, folder: str, held: Collection[int]) -> None:
    """Mark with this agent's held keyword what it holds in ``folder`` (UIDs ``held``) without it: an edit of hers
    it took for the held message, or mail held before marks were kept. Unmarked, a second agent on the account
    took it for a stranger. Each at most once a session (a server that keeps no keywords forgets them)."""
    done = _MARKED.setdefault(world.mailbox, set())
    if not held or set(held) <= done:
        return
    keyword = world.mailbox.held_keyword
    todo = sorted((set(await world.imap(world.mailbox.without_keyword, folder, keyword)) & set(held)) - done)
    if todo:
        with contextlib.suppress(CommandRefused):  # a mark only
            await world.imap(world.mailbox.add_flags_many, folder, todo, [keyword])
    done.update(held)


def never_held(world: World, row: Row) -> bool:
    """Whether this agent cancelled ``row`` as gone from the Outbox before it held it: another agent on the account
    took it first (or she took it back), and a copy in Scheduled is not this agent's to take in or set aside."""
    outbox = world.folders.outbox
    return row.detail in (f"gone from {outbox} before it was sent", "removed from the Outbox before it was scheduled")


def held_by_another(world: World, flags: Iterable[str]) -> bool:
    """Whether a message in Scheduled with these ``flags`` is held by another agent on the account (its mark, and
    none of this one's): never this one's to take in again as her edit, or to claim as its own placed before a
    restart (the two agents each set it aside, or one sent what the other held back)."""
    marks = held_marks(flags)
    others = {mark[len(HELD_KEYWORD) :] for mark in marks} - {world.mailbox.held_keyword[len(HELD_KEYWORD) :].lower()}
    world.mailbox.other_agents |= others  # she is told another agent works here (agent.reconcile.other_agents)
    return bool(marks) and world.mailbox.held_keyword.lower() not in marks


async def tell_strangers(
    world: World, folder: str, found: Sequence[tuple[HeaderInfo, Envelope]], *, another: bool = False
) -> None:
    """She is told of the messages in ``found`` not told of before (one notice). ``another``: they are held by
    another agent on the account, or by one whose records are gone (a new computer, its state deleted): the
    notice says both, since this agent cannot tell which."""
    ledger = world.ledger
    fresh = [(info, envelope) for info, envelope in found if not ledger.logged(TOLD, _told_key(info, envelope))]
    if another:  # seen there a while first: the agent that marked it may be about to take it out (a stale mark)
        fresh = [pair for pair in fresh if _seen_a_while(world, _told_key(*pair))]
    fresh = [pair for pair in fresh if not await _told_unanswered(world, _told_key(*pair))]
    if not fresh:
        return
    subjects = [f"“{envelope.subject or '(no subject)'}”" for _, envelope in fresh]
    why = "held by another mentor-agent" if another else "not put there by mentor-agent"
    for subject in subjects:
        log.warning("%s is in %s, %s: it does not go from there", subject, folder, why)
    many = len(fresh) > 1
    first = fresh[0][1].subject or "(no subject)"
    if another:
        title = (
            f"{len(fresh)} messages held by another mentor-agent" if many else f"Held by another mentor-agent: {first}"
        )
    else:
        title = f"{len(fresh)} messages will not go from {folder}" if many else f"Will not go from {folder}: {first}"
    made = hashlib.sha256("\0".join(sorted(_told_key(i, e) for i, e in fresh)).encode()).hexdigest()[:24]
    own = notice_id(world.settings.student.address, f"{made}.not-held")
    with ledger.transaction():  # before the APPEND: stored, and its answer lost or a stop, it is looked for next time
        for info, envelope in fresh:
            ledger.log(TRIED, message=_told_key(info, envelope), detail=own)
    if not await world.notify(
        title, _lines(world, folder, subjects, another), about=fresh[0][1].message_id, message_id=own
    ):
        return
    with ledger.transaction():
        for info, envelope in fresh:
            ledger.log(TOLD, message=_told_key(info, envelope))


def _lines(world: World, folder: str, subjects: list[str], another: bool) -> list[str]:
    more = f" and {len(subjects) - SHOWN} more" if len(subjects) > SHOWN else ""
    what = f"{', '.join(subjects[:SHOWN])}{more} are" if len(subjects) > 1 else f"{subjects[0]} is"
    it, goes = ("them", "these do not go by themselves") if len(subjects) > 1 else ("it", "this does not go by itself")
    outbox = world.folders.outbox
    if another:
        return [
            f"{what} in your {folder} folder, held by another mentor-agent on this account, not by this one. That "
            f"one sends {it} at {'their' if len(subjects) > 1 else 'its'} time, if it still runs.",
            f"If it no longer runs (a new computer, or its records deleted), {goes}: move {it} to {outbox}, and "
            f"this one sends {it} within your agreement. Two mentor-agents on one account keep separate records "
            "of what your mentors received: run one.",
        ]
    return [
        f"{what} in your {folder} folder, but mentor-agent did not put {it} there (moved or saved there by you "
        f"or your mail program, or an edit of a waiting message saved as a new one). Only what mentor-agent "
        f"holds goes from {folder}: {goes}.",
        f"To send {it} within your agreement, move {it} to {outbox}; otherwise move {it} anywhere else, or delete.",
    ]


_FIRST_SEEN: weakref.WeakKeyDictionary[object, dict[str, float]] = weakref.WeakKeyDictionary()
ANOTHER_WAIT = 600.0  # seconds a message held by another agent is seen in Scheduled before she is told of it


def _seen_a_while(world: World, key: str) -> bool:
    first = _FIRST_SEEN.setdefault(world.mailbox, {}).setdefault(key, time.monotonic())
    return time.monotonic() - first >= ANOTHER_WAIT


async def _told_unanswered(world: World, key: str) -> bool:
    """Whether a notice naming ``key`` whose APPEND went unanswered is in her mailbox after all (then: told)."""
    for own in world.ledger.details(TRIED, key):
        if await world.locate(world.folders.notices, own, None) is not None:
            world.ledger.log(TOLD, message=key)
            return True
    return False


def _told_key(info: HeaderInfo, envelope: Envelope) -> str:
    """What she was told of: the message's key and its header block (a program that keeps a draft's Message-ID
    across saves makes another message under it, told of too)."""
    return f"{envelope.key} {hashlib.sha256(info.headers).hexdigest()[:16]}"
