"""The star door's baseline carried over to new saves: a draft flagged before the door opened (a reminder) that the
student opens and types on is saved again by her mail program as a new message (a new UID), and most programs
keep its star. That new save is the same reminder, never a hand-over: it stays in the baseline when it has the
Message-ID of a baseline draft, or its text or an edit of it (:mod:`agent.rules.draft_edits`); with other
recipients or another subject (she may type the mentor's address or the subject into a reminder, and the program
give the save a new Message-ID), mostly its words (a greeting alone is not enough). She is told once per
reminder; taking the star off and setting it again hands it over.

Every new save to a mentor is looked at, starred or not when first seen: some programs APPEND the save without its
star and set it a moment later (two steps). A save carried over unstarred is not "her star taken off" until it has
been seen starred: the star that then comes is the reminder's (in doubt, never sent), and she is told so (once per
reminder when it comes within a minute, as a program's second step; each time when later: she may have set it).

What each baseline draft was is kept in the ledger (``draft baseline print``, words as short hashes, never her
text), from the opening on; a baseline draft whose star she took off while it stood (seen) carries nothing over.
"""

from __future__ import annotations

import logging

from agent.reconcile.context import World
from agent.reconcile.doors.flag_baseline import door_account
from agent.rules.draft_edits import is_edit, mostly_same, signature, word_prints
from agent.rules.envelope import parse_envelope
from agent.store import taken_drafts

log = logging.getLogger("mentor_agent.drafts")


async def keep_prints(world: World, folder: str, validity: int, uids: set[int]) -> None:
    """Keep what the baseline drafts ``uids`` are (at the opening)."""
    raws = await world.imap(world.mailbox.fetch_many, folder, sorted(uids)) if uids else {}
    where = f"{door_account(world, folder)}:{validity}"
    for uid, raw in sorted(raws.items()):
        envelope = parse_envelope(raw)
        taken_drafts.keep_print(world.ledger, where, uid, envelope.key, signature(envelope), word_prints(raw), uid)


async def carried_over(world: World, folder: str, validity: int, candidates: set[int], flagged: set[int]) -> set[int]:
    """Of the drafts first seen now (``candidates``, starred or not), the new saves of a baseline reminder: kept in
    the baseline (ledger), and the student told of those starred (once per reminder)."""
    account = door_account(world, folder)
    where = f"{account}:{validity}"
    cleared = taken_drafts.cleared(world.ledger, account, validity)
    kept = [p for p in taken_drafts.prints(world.ledger, account, validity) if p[0] not in cleared | candidates]
    if not kept or not candidates:
        return set()
    carried: set[int] = set()
    for info in await world.imap(world.mailbox.headers, folder, sorted(candidates)):
        envelope = parse_envelope(info.headers)
        if not any(world.book.for_address(a) for a in envelope.recipients):
            continue  # a flag on a draft to no mentor is never a hand-over: nothing to carry
        raw = await world.imap(world.mailbox.fetch, folder, info.uid)
        if raw is None:
            continue
        words = word_prints(raw)
        root = next((r for _, key, _, _, r in kept if key == envelope.key), None)
        alike = signature(envelope)  # the same recipients and subject: an edit; else mostly the reminder's words
        root = (
            root
            if root is not None
            else next((r for *_, sig, old, r in kept if similar(old, words, sig == alike)), None)
        )
        if root is None:
            continue
        taken_drafts.carry(world.ledger, where, info.uid)
        taken_drafts.keep_print(world.ledger, where, info.uid, envelope.key, signature(envelope), words, root)
        carried.add(info.uid)
    await tell_still(world, folder, validity, carried & flagged)
    return carried


def similar(old: str, words: str, alike: bool) -> bool:
    return is_edit(old, words) if alike else mostly_same(old, words)


async def tell_still(world: World, folder: str, validity: int, uids: set[int], *, every: bool = False) -> None:
    """The starred saves ``uids`` of baseline reminders stay reminders: she is told once per reminder (``every``:
    each time, a star she may have set herself)."""
    if not uids:
        return
    account = door_account(world, folder)
    where = f"{account}:{validity}"
    roots = {uid: root for uid, *_, root in taken_drafts.prints(world.ledger, account, validity) if uid in uids}
    told = taken_drafts.told_reminders(world.ledger, where)
    fresh = {root: uid for uid, root in sorted(roots.items()) if every or root not in told}
    if not fresh:
        return
    infos = await world.imap(world.mailbox.headers, folder, sorted(fresh.values()))
    subjects = [parse_envelope(info.headers).subject or "(no subject)" for info in infos]
    for root in fresh:
        taken_drafts.tell_reminder(world.ledger, where, root)
    if not subjects:
        return
    log.info("%d new save(s) of a flagged reminder in %s: left alone", len(subjects), folder)
    await world.notify(
        f"Still a reminder, not taken: {subjects[0]}",
        [
            f"This flagged draft in {folder} looks like a new save of one flagged before the star door opened (a "
            "reminder: the same Message-ID, or a similar text), so it was not taken; it stays in "
            f"{folder}, and its later saves are left alone too. If you meant to hand it over, take its flag off and "
            "set it again:",
            "\n".join(f"- {subject}" for subject in subjects),
        ],
    )
