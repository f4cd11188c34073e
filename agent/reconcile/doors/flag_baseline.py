"""The star door's baseline, watched across stops: a draft flagged before the door opened (a reminder, perhaps)
is never taken for that old flag; flagging it again while the agent watches (flag off, then on) hands it over.

While the agent is stopped (or not connected) nobody sees the flag go off and on. Where the server has CONDSTORE,
the MODSEQ of each baseline draft is kept (ledger ``meta``) at every pass that finds it changed; a draft whose MODSEQ
moved while the agent was away is NOT taken on that alone (reading it, \\Seen, or a label moves it too): the student
is told once to take the star off and set it again. The same while the agent watches: a star taken off and set
again between two of its passes is seen only as a MODSEQ moved; she is told once. Without CONDSTORE such a change
is not seen at all (a limit docs/handing-over.md states).
"""

from __future__ import annotations

import logging

from agent.reconcile.context import World
from agent.rules.envelope import parse_envelope
from agent.store import taken_drafts

log = logging.getLogger("mentor_agent.drafts")
MODSEQS = "draft baseline modseqs"  # meta key prefix: "UID:MODSEQ,..." of the baseline drafts still flagged


def door_account(world: World, folder: str) -> str:
    """Whose Drafts folder: the key of the star door's baseline in the ledger."""
    imap = world.settings.imap
    return f"{imap.username}@{imap.host}/{folder}"


def _parsed(value: str | None) -> dict[int, int]:
    pairs = (item.partition(":") for item in (value or "").split(",") if item)
    return {int(uid): int(seq) for uid, _, seq in pairs}


async def keep_modseqs(world: World, folder: str, validity: int, old: set[int]) -> dict[int, int] | None:
    """Record the MODSEQs of the baseline drafts ``old`` (setup, when it opens the door); None: no CONDSTORE."""
    seqs = await world.imap(world.mailbox.modseqs, folder, sorted(old)) if old else {}
    if seqs is not None:
        world.ledger.set_meta(f"{MODSEQS} {door_account(world, folder)}:{validity}", _joined(seqs))
    return seqs


def _joined(seqs: dict[int, int]) -> str:
    return ",".join(f"{uid}:{seq}" for uid, seq in sorted(seqs.items()))


async def changed_while_away(
    world: World, folder: str, validity: int, old: set[int], known: dict[int, int] | None
) -> dict[int, int] | None:
    """``known``: the MODSEQs this session has seen (None: none yet, so compare with what the last one kept).
    Tells of the baseline drafts changed meanwhile; returns the MODSEQs now (None: no CONDSTORE)."""
    seqs = await world.imap(world.mailbox.modseqs, folder, sorted(old)) if old else {}
    if seqs is None:
        return None
    account = door_account(world, folder)
    key = f"{MODSEQS} {account}:{validity}"
    kept = _parsed(world.ledger.meta_value(key)) if known is None else known
    moved = sorted(uid for uid, seq in seqs.items() if uid in kept and seq > kept[uid])
    fresh = [uid for uid in moved if uid not in taken_drafts.told_changed(world.ledger, account, validity)]
    if fresh:
        await _tell(world, folder, fresh, away=known is None)
        for uid in fresh:
            taken_drafts.tell_changed(world.ledger, account, validity, uid)
    if seqs != known:
        world.ledger.set_meta(key, _joined(seqs))
    return seqs


async def _tell(world: World, folder: str, uids: list[int], *, away: bool) -> None:
    infos = await world.imap(world.mailbox.headers, folder, uids)
    subjects = [parse_envelope(info.headers).subject or "(no subject)" for info in infos]
    if not subjects:
        return
    when = "while mentor-agent was stopped" if away else "between two of mentor-agent's looks"
    log.info("%d flagged draft(s) from before the star door changed %s", len(subjects), when)
    first = subjects[0] if len(subjects) == 1 else f"{len(subjects)} drafts"
    again = "star it again" if away else "star it again a few seconds later"
    await world.notify(
        f"A starred draft changed {'while mentor-agent was stopped' if away else 'and kept its star'}: {first}",
        [
            f"{'This starred draft' if len(subjects) == 1 else 'These starred drafts'} in {folder}, flagged before "
            f"the star door opened, changed {when} (its star taken off and set again, or perhaps only read or "
            f"labelled). It is not taken on that alone: if you meant to hand it over, remove the star and {again}.",
            "\n".join(f"- {subject}" for subject in subjects),
        ],
    )
