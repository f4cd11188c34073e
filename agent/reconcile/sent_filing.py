"""Filing what the server accepted: one copy in Sent, never two, never none.

The agent MOVEs its message from Sending to Sent, or — where the provider files submissions itself (``[smtp]
file_in_sent``: ``never``, or ``auto`` once its copy is seen) — deletes it from Sending. With ``auto`` the
provider's copy is looked for a few seconds on later passes (:func:`follow_filing`), and a copy it files late
replaces the agent's own (:func:`tidy_sent`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import partial

from agent.reconcile.context import World
from agent.reconcile.digest_delivery import PART_ACCEPTED, forget, load_parts, load_saved
from agent.reconcile.events import Filed, publish
from agent.reconcile.prepared import Prepared, prepare_in
from agent.store import sent_watch
from agent.store.ledger import DONE, Row

log = logging.getLogger("mentor_agent.delivery")

SENT_WAIT = timedelta(seconds=5)  # how long a provider's copy in Sent is waited for before the agent files one
SENT_LOOK = timedelta(milliseconds=500)
LATE_FILING = timedelta(minutes=3)  # how long a provider may take to file a sent message in Sent
LATE_LOOK = timedelta(seconds=3)
LATE_WATCHED = 20  # self-filed copies watched at once for a late provider copy


async def file_accepted(world: World, accepted: Sequence[tuple[list[Row], list[Prepared]]]) -> None:
    """File what the server accepted. Plain messages in one go: MOVEd from Sending to Sent, or deleted from
    Sending where the provider filed the submission itself (``auto``: seen by looking for the Message-ID in
    Sent, ``never``: always so); digests and rewritten messages one by one. One copy in Sent, never two, never
    none."""
    folders = world.folders
    ledger = world.ledger
    plain = {rows[0].uid: (rows[0], prepared[0]) for rows, prepared in accepted if _plain(rows, prepared)}
    if plain:
        uids = [uid for uid in plain if uid is not None]
        by_provider: list[int] = []  # filed in Sent by the provider itself: ours would be a second copy
        ours: list[int] = []
        later: list[int] = []  # not there yet: looked for again for a few seconds (follow_filing)
        if not world.file_in_sent:
            by_provider = uids
        elif world.look_in_sent:
            found = await world.in_sent([plain[uid][1].message_id for uid in uids], wait=False)
            by_provider = [uid for uid in uids if plain[uid][1].message_id in found]
            rest = [uid for uid in uids if uid not in by_provider]
            if world.provider_files_sent is False:
                ours = rest
            else:
                later = rest
                if by_provider:
                    world.provider_files_sent = True
        else:
            ours = uids
        if ours:
            await _file_ours(world, [(uid, plain[uid][1]) for uid in ours])
        if by_provider:
            await world.imap(world.mailbox.discard_many, folders.sending, by_provider)
        deadline = world.now() + SENT_WAIT
        for uid in later:
            world.filing_later[plain[uid][0].key] = (uid, plain[uid][1], deadline)
        with ledger.transaction():
            filed = {"state": DONE, "folder": folders.sent, "uid": None}
            ledger.update_each({row.key: filed for key_uid, (row, _) in plain.items() if key_uid not in later})
        for key_uid, (row, _) in plain.items():
            if key_uid not in later:
                publish(Filed(row.key, folders.sent))
    for rows, prepared in accepted:
        if not _plain(rows, prepared):
            await file_sent(world, rows, prepared)


async def _file_ours(world: World, copies: Sequence[tuple[int, Prepared]]) -> None:
    """Move these messages from Sending to Sent (the student's own message, Bcc and all); one that is no longer
    in Sending is filed from the copy that was sent."""
    folders = world.folders
    uids = [uid for uid, _ in copies]
    await world.imap(world.mailbox.replace_flags_many, folders.sending, uids, ["\\Seen"])
    moved = await world.imap(partial(world.mailbox.move_many, claim=False), folders.sending, uids, folders.sent)
    world.filed.setdefault(folders.sent, set()).update(new for new in moved.values() if new is not None)
    for uid, prepared in copies:
        new_uid = moved.get(uid)
        if uid not in moved:  # no longer in Sending: file the copy we sent
            new_uid = await world.imap(world.mailbox.append, folders.sent, prepared.sent_copy, ["\\Seen"])
        if world.look_in_sent:
            _watch_late_filing(world, prepared.message_id, new_uid)


async def follow_filing(world: World) -> datetime | None:
    """Sent filing that waits on the provider (``auto``), without holding up the pass: a message whose copy the
    provider has filed leaves Sending; one whose copy did not come in time is filed by the agent; a copy the
    provider filed after that replaces ours. Returns when to look again (None: nothing to follow)."""
    if world.filing_later:
        now = world.now()
        waiting = dict(world.filing_later)
        found = await world.in_sent([prepared.message_id for _, prepared, _ in waiting.values()], wait=False)
        theirs = [key for key, (_, prepared, _) in waiting.items() if prepared.message_id in found]
        overdue = [key for key, (_, prepared, deadline) in waiting.items() if key not in theirs and now >= deadline]
        if theirs:
            world.provider_files_sent = True
            await world.imap(world.mailbox.discard_many, world.folders.sending, [waiting[k][0] for k in theirs])
        if overdue:
            if world.provider_files_sent is None:
                world.provider_files_sent = False
                log.info(
                    "the provider did not file a sent message in %s within %.0f s: mentor-agent files them",
                    world.folders.sent,
                    SENT_WAIT.total_seconds(),
                )
            await _file_ours(world, [(waiting[k][0], waiting[k][1]) for k in overdue])
        with world.ledger.transaction():
            for key in (*theirs, *overdue):
                world.filing_later.pop(key, None)
                world.ledger.update(key, state=DONE, folder=world.folders.sent, uid=None)
    tidy = await tidy_sent(world)
    soon = world.now() + SENT_LOOK if world.filing_later else None
    return min((t for t in (soon, tidy) if t is not None), default=None)


def _watch_late_filing(world: World, message_id: str, uid: int | None) -> None:
    """Watch our own copy for a while (kept in the ledger: a restart meanwhile still tidies)."""
    if uid is not None and len(sent_watch.watched(world.ledger)) < LATE_WATCHED:
        sent_watch.watch(world.ledger, message_id, uid, world.now())


async def tidy_sent(world: World) -> datetime | None:
    """A provider that files a sent message in Sent later than we looked (``auto``): the copy we filed goes,
    so that Sent never holds two. Returns when to look again (None: nothing left to watch)."""
    watched = sent_watch.watched(world.ledger)
    if not watched:
        return None
    now = world.now()
    sent = world.folders.sent
    for message_id, (uid, filed_at) in watched.items():
        found = await world.imap(world.mailbox.find_by_message_id, sent, message_id)
        if now - filed_at > LATE_FILING and not (uid in found and len(found) > 1):
            # Looked at once more before giving up (the agent may have been asleep or stopped meanwhile).
            sent_watch.unwatch(world.ledger, message_id)
            continue
        if uid in found and len(found) > 1:
            await world.imap(world.mailbox.discard_many, sent, [uid])
            sent_watch.unwatch(world.ledger, message_id)
            world.provider_files_sent = True  # it does file them, late: wait for its copy from now on
            log.info("%s: the provider filed it in %s late; the agent's own copy removed", message_id, sent)
        elif uid not in found:
            sent_watch.unwatch(world.ledger, message_id)  # the student moved or deleted it: nothing of ours to tidy
    return now + LATE_LOOK if sent_watch.watched(world.ledger) else None


def _plain(rows: Sequence[Row], prepared: Sequence[Prepared]) -> bool:
    return len(rows) == 1 and len(prepared) == 1 and prepared[0].original and rows[0].uid is not None


async def file_sent(world: World, rows: Sequence[Row], prepared: Sequence[Prepared] | None) -> None:
    """After acceptance: one copy in Sent (unless the provider files it), then out of the Sending folder."""
    folders = world.folders
    missing = False
    if world.file_in_sent and rows:
        copies: list[tuple[str, bytes | None]] = [(p.message_id, p.sent_copy) for p in prepared or ()]
        if not copies:  # after a restart: from the Sending folder, or the digest kept on disk
            copies = await _kept_copies(world, rows)
        for message_id, copy in copies:
            present = message_id in await world.in_sent([message_id], wait=world.look_in_sent)
            if not present and copy is not None:
                filed = await world.imap(world.mailbox.append, folders.sent, copy, ["\\Seen"])
                if world.look_in_sent:
                    _watch_late_filing(world, message_id, filed)
            missing = missing or (not present and copy is None)
    for row in rows:
        uid = await world.locate(folders.sending, row.key, row.uid)
        if uid is not None and missing:  # no copy of what went out: file the originals themselves
            await world.imap(world.mailbox.move, folders.sending, uid, folders.sent)
        elif uid is not None:
            await world.imap(world.mailbox.discard_many, folders.sending, [uid])
        world.ledger.update(row.key, state=DONE, folder=folders.sent, uid=None)
        publish(Filed(row.key, folders.sent))
    # The copies kept for recovery (digest_delivery.save): every e-mail this item went out as, and every part of a
    # split release (a part never sent is composed again). The rows handed over after a send do not carry
    # ``item`` (the ledger does), so it is taken from what was sent. Nothing kept, nothing to unlink.
    item = rows[0].item if rows and rows[0].item else (prepared[0].message_id if prepared else "")
    if item:
        parts = load_parts(world, item)
        kept = {p.message_id for p in prepared or ()} | {p.message_id for p in parts or ()} | {item}
        for message_id in kept - {""}:
            forget(world, message_id)


def _digest(rows: Sequence[Row]) -> bool:
    """Whether these rows went out inside a digest (what went is kept on disk, not in the Sending folder)."""
    return len(rows) != 1 or (rows[0].item or rows[0].message_id) != rows[0].message_id


async def _kept_copies(world: World, rows: Sequence[Row]) -> list[tuple[str, bytes | None]]:
    """After a restart, what these rows went out as: every part of a split release the server accepted, else
    the one e-mail (from the Sending folder, or the digest kept on disk)."""
    item = rows[0].item or rows[0].message_id
    parts = load_parts(world, item)
    if parts is not None:
        return [(p.message_id, load_saved(world, p.message_id)) for p in parts if p.state == PART_ACCEPTED]
    return [(item, await _sending_copy(world, rows))]


async def _sending_copy(world: World, rows: Sequence[Row]) -> bytes | None:
    if _digest(rows):
        return load_saved(world, rows[0].item or "")
    row = rows[0]
    uid = await world.locate(world.folders.sending, row.key, row.uid)
    raw = await world.imap(world.mailbox.fetch, world.folders.sending, uid) if uid else None
    return prepare_in(world, raw, row).sent_copy if raw is not None else None
