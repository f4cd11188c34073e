"""Glue between the daemon and the pure digest composer: compose, keep a copy for recovery, tell the student.

A release split into several e-mails (``[digest] max_bytes``) also keeps a list of its parts on disk, each part
marked ``sending`` just before it goes over SMTP and ``accepted`` as soon as the server said yes (both flushed to
disk): after a crash, :func:`agent.reconcile.recovery.recover` files every accepted part in Sent, tells the
student about the one that was in flight, and gives the messages of the parts never started back to the pacing
engine (:func:`back_to_scheduled`), as after a failure part-way while running.

Those messages never go one e-mail each at once (as messages left ``claimed`` do): they wait in Scheduled,
untouched and in their place by arrival, and the engine batches them again, as the rest of that digest,
under the mentor's rules.

Every e-mail the mentor receives is one send to the pacing engine (:meth:`agent.rules.pacing.Engine.room`):
each part counts against her day and week and keeps ``min_gap``. A release split in more e-mails than fit now
sends only those that fit (composed again among themselves); the messages of the others go back to Scheduled
the same way, and the next pass tells the student when they go. Each part is recorded as one item she received
(:func:`record_received`), so ``status`` and the engine count e-mails, not releases.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email import policy as email_policy
from pathlib import Path

from agent.logs import named
from agent.mail.message_size import advertised_size
from agent.mail.session import MessageGone
from agent.reconcile.context import World
from agent.reconcile.prepared import Prepared, as_handed_over, prepare_in
from agent.rules.envelope import domain_of
from agent.rules.pacing import Engine
from agent.store.ledger import SCHEDULED, Row
from agent.store.statefiles import private_dir

log = logging.getLogger("mentor_agent.digest")
HISTORY = timedelta(days=60)  # what the engine reads of the mentor's history (as intake.HISTORY_DAYS)


def saved_path(world: World, item: str) -> Path:
    return world.settings.state_dir / "digests" / (hashlib.sha256(item.encode()).hexdigest()[:32] + ".eml")


def save(world: World, item: str, raw: bytes) -> None:
    """Keep what a digest looked like until it is filed: after a crash it can still go to Sent."""
    _write(saved_path(world, item), raw)


def _write(path: Path, raw: bytes) -> None:
    private_dir(path.parent)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # a left-over temporary file may be older and wider
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(raw)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)
    folder = os.open(path.parent, os.O_RDONLY)  # the rename too must survive a power cut (a part's marks)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def load_saved(world: World, item: str) -> bytes | None:
    path = saved_path(world, item)
    return path.read_bytes() if path.exists() else None


def forget(world: World, item: str) -> None:
    saved_path(world, item).unlink(missing_ok=True)
    _parts_path(world, item).unlink(missing_ok=True)


PART_PLANNED, PART_SENDING, PART_ACCEPTED = "planned", "sending", "accepted"  # how far one part of a split release got


@dataclass(frozen=True)
class Part:
    """One e-mail of a split release, as kept on disk: its Message-ID, the messages it carries, how far it got."""

    message_id: str
    keys: tuple[str, ...]
    state: str = PART_PLANNED


def _parts_path(world: World, item: str) -> Path:
    return saved_path(world, item).with_suffix(".parts")


def save_parts(world: World, item: str, parts: Sequence[Part]) -> None:
    """Keep the list of a split release's parts (``item``: the first part's Message-ID), flushed to disk."""
    listed = [{"message_id": p.message_id, "keys": list(p.keys), "state": p.state} for p in parts]
    _write(_parts_path(world, item), json.dumps(listed).encode())


def load_parts(world: World, item: str) -> list[Part] | None:
    """The parts of a split release, or None if ``item`` is no split release (or was filed already)."""
    path = _parts_path(world, item)
    if not path.exists():
        return None
    return [Part(p["message_id"], tuple(p["keys"]), p["state"]) for p in json.loads(path.read_bytes())]


def divide(rows: Sequence[Row], parts: Sequence[Part], done: int) -> tuple[list[Row], list[Row], list[Row]]:
    """The messages of a split release by how far their e-mail got: in the first ``done`` parts (accepted), in
    part ``done`` (in flight, or failed), in the parts after it (never started). One in no part counts as in
    flight: nothing is assumed about it."""
    accepted = {key for part in parts[:done] for key in part.keys}
    later = {key for part in parts[done + 1 :] for key in part.keys}
    return (
        [row for row in rows if row.key in accepted],
        [row for row in rows if row.key not in accepted and row.key not in later],
        [row for row in rows if row.key in later],
    )


def in_own_part(world: World, item: str, rows: Sequence[Row], index: int) -> list[Row]:
    """``rows``, the messages of part ``index`` of a split release whose sending is in doubt, known from now on by
    that part's own Message-ID (``item``: the first part's). It is the e-mail the mentor may have got: counted once,
    as that e-mail, and its provider's copy in Sent is recognised as it (not as mail sent without the agent)."""
    parts = load_parts(world, item)
    if parts is None or not 0 < index < len(parts):
        return list(rows)
    own = parts[index].message_id
    with world.ledger.transaction():
        for row in rows:
            world.ledger.update(row.key, item=own)
    return [replace(row, item=own) for row in rows]


def mark_part(world: World, item: str, index: int, state: str) -> None:
    """Record, flushed to disk, that part ``index`` of a split release is being sent (PART_SENDING) or was
    accepted (PART_ACCEPTED): a part never marked PART_SENDING was certainly never handed to SMTP."""
    parts = load_parts(world, item)
    if parts is not None and index < len(parts):
        parts[index] = replace(parts[index], state=state)
        save_parts(world, item, parts)


async def out_of_sending(world: World, row: Row, target: str) -> int | None:
    """Move ``row``'s message from Sending to ``target``; its UID there (None: not found). A move whose answer was
    lost, or done before a crash, is found where it went."""
    folders = world.folders
    uid = await world.locate(folders.sending, row.key, row.uid)
    new_uid: int | None = None
    if uid is not None:
        try:
            new_uid = await world.imap(world.mailbox.move, folders.sending, uid, target)
        except MessageGone:
            new_uid = None
    if new_uid is None:
        new_uid = await world.locate(target, row.key, None)
    return new_uid


async def back_to_scheduled(world: World, rows: Sequence[Row], why: str) -> None:
    """Messages of a release that were never handed to SMTP, in Sending: back to Scheduled as they were, for
    the engine to decide again (see the module docstring). Each row stays as it was until its own move is done,
    so a crash in between leaves it to :func:`agent.reconcile.recovery.recover` as before."""
    folders = world.folders
    for row in rows:
        new_uid = await out_of_sending(world, row, folders.scheduled)
        world.ledger.update(row.key, state=SCHEDULED, folder=folders.scheduled, uid=new_uid, item=None, detail=why)
        world.ledger.log("waiting", mentor=row.mentor, message=row.key, detail=why)
    if rows:
        log.info(
            "%d message(s) of a release not sent: back in Scheduled, to go as one digest again (%s)", len(rows), why
        )


def record_received(
    world: World, mentor: str, item: str, at: datetime, rows: Sequence[Row], parts: Sequence[str], *, follow_up: bool
) -> None:
    """Record what the mentor received from one release (inside a ledger transaction): ``item`` carrying every
    message, and each further e-mail of a split release (``parts``: the Message-IDs of the e-mails that went,
    ``item`` first) as one more item — every e-mail she gets counts (day, week, gap; ``status``)."""
    members = [m for row in rows for m in (row.key, row.message_id)] + list(parts)
    world.ledger.add_item(mentor, item, at, members, follow_up=follow_up)
    keys = {part.message_id: part.keys for part in load_parts(world, item) or []}
    for part in parts:
        if part != item:
            world.ledger.add_item(mentor, part, at, [part, *keys.get(part, ())])


def room_for(world: World, mentor: str | None, wanted: int, *, follow_up: bool) -> int:
    """How many of ``wanted`` e-mails of one release may reach the mentor now under her rules (all of them for a
    message bound to no policy)."""
    loaded = world.book.by_id.get(mentor or "")
    if loaded is None or wanted <= 1:
        return wanted
    now = world.now()
    history = world.ledger.history(loaded.id, now - HISTORY, loaded.policy.mentor.addresses)
    return Engine(loaded.policy, history).room(now, wanted, follow_up=follow_up)


@dataclass(frozen=True)
class Composed:
    """What one release of several messages goes out as."""

    prepared: list[Prepared]  # the e-mails, in order: digest parts, and originals too large to go in one
    recipients: list[str]
    digests: int  # how many of them are digests
    alone: list[Row]  # the messages that go as they are, each larger than [digest] max_bytes
    parts: list[Part]  # what each of ``prepared`` carries
    rows: list[Row]  # the messages of the release, in order
    whole: list[tuple[Row, str]] = field(default_factory=list)  # go as they are, and why (signed, encrypted…)


# Of what the server says it takes: its count may differ from ours by the dots it adds, its own header lines and
# line ends written otherwise
_SERVER_MARGIN = 0.95


def digest_limit(world: World) -> int:
    """The largest digest: ``[digest] max_bytes``, or less when the mail server said it takes less (EHLO SIZE): a
    digest over it was refused whole (552), and each message in it told to be fixed though each fitted alone."""
    own = world.settings.digest.max_bytes
    said = advertised_size(world.settings.smtp)
    return own if said is None else max(1, min(own, int(said * _SERVER_MARGIN)))


def compose_digest(world: World, raws: list[tuple[Row, bytes]]) -> Composed:
    from agent.rules.digest import Original, compose_parts, envelope_recipients  # with the first digest, not at start

    rows = [row for row, _ in raws]
    by_key = {row.key: (row, raw) for row, raw in raws}
    loaded = world.book.by_id.get(rows[0].mentor or "")
    student = world.settings.student
    originals = [Original(row.key, as_handed_over(world, raw, row)) for row, raw in raws]
    parts = compose_parts(
        originals,
        student_name=student.name,
        student_address=student.address,
        mentor_name=loaded.name if loaded else "",
        subject_template=world.settings.digest.subject,
        max_bytes=digest_limit(world),
        now=world.now(),
        domain=domain_of(student.address),
    )
    prepared = []
    alone = []
    whole: list[tuple[Row, str]] = []
    kept: list[Part] = []
    for part in parts:
        if part.message is None:  # too large for any digest: the student's own message, unwrapped and whole
            row, raw = by_key[part.keys[0]]
            if part.why:
                whole.append((row, part.why))
            else:
                alone.append(row)
            single = prepare_in(world, raw, row)
            save(world, single.message_id, single.sent_copy)
            prepared.append(Prepared(wire=single.wire, sent_copy=single.sent_copy, message_id=single.message_id))
            kept.append(Part(single.message_id, part.keys))
            continue
        raw = part.message.as_bytes(policy=email_policy.SMTP)
        message_id = str(part.message["Message-ID"])
        save(world, message_id, raw)
        prepared.append(Prepared(wire=raw, sent_copy=raw, message_id=message_id))
        kept.append(Part(message_id, part.keys))
    if len(prepared) > 1:
        save_parts(world, prepared[0].message_id, kept)
    log.debug(
        "digest of %d message(s) to %s: %d e-mail(s) within %d bytes%s",
        len(rows),
        loaded.name if loaded else "?",
        len(parts),
        digest_limit(world),
        "".join(f"; {named(row.key, row.subject)} alone (larger than the limit)" for row in alone),
    )
    digests = len(parts) - len(alone) - len(whole)
    return Composed(prepared, envelope_recipients(originals), digests, alone, kept, rows, whole)


def split_notice(
    world: World,
    rows: list[Row],
    digests: int,
    alone: list[Row],
    whole: Sequence[tuple[Row, str]] = (),
    going: int | None = None,
    now: Sequence[Row] = (),
) -> tuple[str, list[str]]:
    """The notice that a release goes as several e-mails: which go alone (and why), how many digests, how many go
    now (``going``; all of them when None; ``now``: the messages of those, listed apart from the ones that wait)."""
    own = world.settings.digest.max_bytes
    limit = f"about {digest_limit(world) / 1_000_000:.3g} MB, " + (
        "[digest] max_bytes" if digest_limit(world) == own else "what the mail server takes"
    )
    count = digests + len(alone) + len(whole)
    going = count if going is None else going
    lines = [f"“{row.subject}” goes alone, exactly as you wrote it, not inside a digest: {why}." for row, why in whole]
    if alone:
        names = ", ".join(f"“{row.subject}”" for row in alone)
        one = len(alone) == 1
        lines.append(
            f"{names} {'is' if one else 'are'} larger than the digest limit ({limit}) on "
            f"{'its' if one else 'their'} own, so {'it goes' if one else 'they go'} alone, as you wrote "
            f"{'it' if one else 'them'}, not inside a digest."
        )
    if digests > 1:
        lines.append(
            f"The other waiting messages together are larger than the digest limit ({limit}), so they go "
            f"as {digests} digests."
        )
    elif digests == 1:
        lines.append("The other waiting messages go together as one digest.")
    if going >= count:
        lines.append(f"All {count} e-mails go now, one after another; each counts as one against the agreement:")
        lines.append("\n".join(f"  • {row.subject}" for row in rows))
    else:
        leaving = {row.key for row in now}
        lines.append(
            f"Each e-mail counts as one against the agreement, so {going} of the {count} "
            f"{'goes' if going == 1 else 'go'} now, with:\n" + "\n".join(f"  • {row.subject}" for row in now)
        )
        lines.append(
            f"The messages of the other {count - going} wait in Scheduled and go when the agreement allows (you are "
            "told when):\n" + "\n".join(f"  • {row.subject}" for row in rows if row.key not in leaving)
        )
    title = (
        f"Sent on its own, too large for a digest: {alone[0].subject}"
        if alone
        else f"Sent on its own, as you wrote it: {whole[0][0].subject}"
        if whole
        else f"Digest split in {digests}: {rows[0].subject}"
    )
    return title, lines


_NO_ROOM = "not sent yet: each e-mail of a split digest counts, and the mentor's rules allow no more now"
_ONE_LEFT = f"{_NO_ROOM}; the rest fits in one e-mail"  # not a split rest any more: planned as one digest


def is_split_rest(row: Row) -> bool:
    """Whether ``row`` went back to Scheduled as the rest of a digest too big for one e-mail (it waits for room):
    the planner must not tell the student it goes "in one digest". A rest that fits in one e-mail is none."""
    return row.detail == _NO_ROOM


async def compose_release(
    world: World, raws: list[tuple[Row, bytes]], follow_up: bool
) -> tuple[list[Prepared], list[str], list[Row]]:
    """The e-mails that carry ``raws`` now, their recipients and the messages they carry. Each e-mail of a split
    release is one send: when the mentor's rules allow fewer now, the messages of the first that fit go (composed
    again among themselves, so no "(1/3)" title promises e-mails that wait) and the others go back to Scheduled."""
    if len(raws) == 1:
        row, raw = raws[0]
        return [prepare_in(world, raw, row)], list(row.recipients), [row]

    composed = compose_digest(world, raws)
    count = len(composed.prepared)
    if count > 1:
        fit = room_for(world, raws[0][0].mentor, count, follow_up=follow_up)
        rows = [row for row, _ in raws]
        going = {key for part in composed.parts[:fit] for key in part.keys}
        leaving = [row for row in rows if row.key in going]
        title, lines = split_notice(world, rows, composed.digests, composed.alone, composed.whole, fit, leaving)
        await world.notify(title, lines, about=raws[0][0].message_id)
        if fit < count:
            for part in composed.parts:  # the kept copies of this plan: let go, nothing of it was sent
                forget(world, part.message_id)
            why = _NO_ROOM if count - fit > 1 else _ONE_LEFT  # what is left still needs several e-mails, or one
            await back_to_scheduled(world, [row for row in rows if row.key not in going], why)
            now = [(row, raw) for row, raw in raws if row.key in going]
            if len(now) == 1:
                row, raw = now[0]
                return [prepare_in(world, raw, row)], list(row.recipients), [row]
            composed = compose_digest(world, now)
    return composed.prepared, composed.recipients, composed.rows
