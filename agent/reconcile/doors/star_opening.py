"""``setup`` opens the star door: the drafts flagged at that moment are kept as the door's baseline (the Drafts
folder's UIDVALIDITY, their UIDs, the time), so that a draft the student stars after setup and before the daemon's
first pass is taken, and a flag that was there at setup (a reminder) is not. The daemon's first pass finds the
baseline in the ledger (:meth:`agent.reconcile.doors.drafts.DraftDoor._flagged_before_door`)."""

from __future__ import annotations

from dataclasses import dataclass

from agent.reconcile.context import World
from agent.reconcile.doors.drafts import DraftDoor
from agent.reconcile.doors.flag_baseline import door_account, keep_modseqs
from agent.reconcile.doors.reminders import keep_prints
from agent.rules.envelope import parse_envelope
from agent.store import taken_drafts


@dataclass(frozen=True)
class Opened:
    folder: str
    flagged: int  # drafts to a mentor flagged at the opening: left alone until flagged again
    subjects: tuple[str, ...]


async def open_star_door(world: World, *, again: bool) -> Opened | None:
    """Record the baseline (``again``: the door opens now, after being shut; else only where none was recorded).
    None: no Drafts folder, or the door was opened before."""
    folder = await DraftDoor().find_folder(world)
    if folder is None:
        return None
    account = door_account(world, folder)
    validity, uids = await world.imap(world.mailbox.uids, folder)
    known = taken_drafts.opened(world.ledger, account)
    if not again and known is not None and known[0] == validity:
        return None
    flagged = set(await world.imap(world.mailbox.flagged, folder)) & set(uids)
    taken_drafts.open_door(world.ledger, account, validity, flagged, world.now())
    await keep_modseqs(world, folder, validity, flagged)  # a star set again before the first pass is seen
    await keep_prints(world, folder, validity, flagged)  # a new save of one that keeps its star stays old
    infos = await world.imap(world.mailbox.headers, folder, sorted(flagged)) if flagged else []
    envelopes = [parse_envelope(info.headers) for info in infos]
    to_mentors = [e for e in envelopes if any(world.book.for_address(a) for a in e.recipients)]
    return Opened(folder, len(to_mentors), tuple(e.subject or "(no subject)" for e in to_mentors))
