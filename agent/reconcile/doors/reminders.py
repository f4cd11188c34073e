"""The star door's baseline carried over to new saves: a draft flagged before the door opened (a reminder) that the
student opens and types on is saved again by her mail program as a new message (a new UID), and most programs
keep its star. That new save is the same reminder, never a hand-over: it stays in the baseline when it has the
Message-ID of a baseline draft, or its recipients and subject and its text or an edit of it
(:mod:`agent.rules.draft_edits`). She is told; taking the star off and setting it again hands it over.

What each baseline draft was is kept in the ledger (``draft baseline print``, words as short hashes, never her
text), from the opening on; a baseline draft whose star she took off while it stood (seen) carries nothing over.
Only a save first seen flagged is looked at: one seen without its star that she stars later is a hand-over.
"""

from __future__ import annotations

import logging

from agent.reconcile.context import World
from agent.reconcile.doors.flag_baseline import door_account
from agent.rules.draft_edits import is_edit, signature, word_prints
from agent.rules.envelope import parse_envelope
from agent.store import taken_drafts

log = logging.getLogger("mentor_agent.drafts")


async def keep_prints(world: World, folder: str, validity: int, uids: set[int]) -> None:
    """Keep what the baseline drafts ``uids`` are (at the opening, and for each new save carried over)."""
    raws = await world.imap(world.mailbox.fetch_many, folder, sorted(uids)) if uids else {}
    where = f"{door_account(world, folder)}:{validity}"
    for uid, raw in sorted(raws.items()):
        envelope = parse_envelope(raw)
        taken_drafts.keep_print(world.ledger, where, uid, envelope.key, signature(envelope), word_prints(raw))


async def carried_over(world: World, folder: str, validity: int, candidates: set[int]) -> set[int]:
    """Of the drafts first seen flagged now (``candidates``), the new saves of a baseline reminder: kept in the
    baseline (ledger), and the student told."""
    account = door_account(world, folder)
    cleared = taken_drafts.cleared(world.ledger, account, validity)
    kept = [p for p in taken_drafts.prints(world.ledger, account, validity) if p[0] not in cleared | candidates]
    if not kept or not candidates:
        return set()
    carried: dict[int, str] = {}
    for info in await world.imap(world.mailbox.headers, folder, sorted(candidates)):
        envelope = parse_envelope(info.headers)
        same_id = any(key == envelope.key for _, key, _, _ in kept)
        alike = [words for _, _, sig, words in kept if sig == signature(envelope)]
        if not same_id and not alike:
            continue
        raw = await world.imap(world.mailbox.fetch, folder, info.uid)
        if raw is None:
            continue
        words = word_prints(raw)
        if same_id or any(is_edit(taken, words) for taken in alike):
            where = f"{account}:{validity}"
            taken_drafts.carry(world.ledger, where, info.uid)
            taken_drafts.keep_print(world.ledger, where, info.uid, envelope.key, signature(envelope), words)
            carried[info.uid] = envelope.subject or "(no subject)"
    if carried:
        log.info("%d new save(s) of a flagged reminder in %s: left alone", len(carried), folder)
        await world.notify(
            f"Still a reminder, not taken: {next(iter(carried.values()))}",
            [
                f"This flagged draft in {folder} looks like a new save of one flagged before the star door opened (a "
                "reminder: the same Message-ID, or the same recipients and subject and a similar text), so it was not "
                f"taken; it stays in {folder}. If you meant to hand it over, take its flag off and set it again:",
                "\n".join(f"- {subject}" for subject in carried.values()),
            ],
        )
    return set(carried)
