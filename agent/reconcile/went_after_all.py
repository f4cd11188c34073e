"""A send in doubt whose copy turns up in Sent later: it went.

A send is in doubt when the agent cannot tell whether the mail server took it (the line cut after DATA, the daemon
killed between hand-over and answer): it waits in Needs attention, counted as sent from its hand-over, until the
student decides (:mod:`agent.reconcile.attention`). The recovery looks in Sent for the provider's copy once, at
once; a provider that files it later (or the student, dragging it to Sent: "it went") settles the doubt then:

- still in Needs attention: the e-mail is recorded as sent when it was handed over — every message that went in
  it, a digest's too (counted once: the count it had as a send in doubt becomes the count of a send) — she is told
  it went after all, and a copy moved back to the Outbox from then on is set aside, not sent twice (the intake's
  "already sent");
- moved back to the Outbox already (linked to that send when taken in again:
  :func:`agent.store.in_doubt_kept.keep_counting`) and waiting there, in Scheduled, or claimed in Sending after a
  stop (never handed to SMTP): the waiting copy is not sent. It goes to Needs attention, never deleted, is
  recorded as gone then, and she is told. Its earlier hand-over already counts, so nothing is counted again;
- moved back and in doubt again in a later e-mail: it went in the earlier one all the same (the later hand-over
  keeps counting).

The copy is known by the e-mail's Message-ID (a message's own, the one the agent made for it, or the digest's) and
by whom it is to: a copy that names someone the e-mail was not to (Bcc never shows), or a message's own copy with
another subject, is another message that shares the Message-ID, and settles nothing. A mail program's own copy of
what it handed to the submission door proves nothing about the provider; it is left to
:mod:`agent.reconcile.doors.early_copies`.

Crash safety: a waiting copy's row is marked before the copy moves (a stop in between is finished at the next
start, never read as her cancel), and every notice owed is owed in the ledger until it is appended (a stop before
it, and it comes at the next look).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime

from agent.logs import named
from agent.mail.port import HeaderInfo
from agent.mail.session import MessageGone
from agent.reconcile.context import World
from agent.reconcile.digest_delivery import record_received
from agent.reconcile.doors.submission import SUBMITTED
from agent.reconcile.events import Cancelled, publish
from agent.rules.addresses import normal_address
from agent.rules.envelope import Envelope, same_subject_line
from agent.rules.notices import notice_id
from agent.store.in_doubt import handed_over, kept_id
from agent.store.in_doubt_kept import keep_counting, kept_hand_overs, taken_back, untold
from agent.store.ledger import ATTENTION, CLAIMED, DONE, NEW, SCHEDULED, Row

log = logging.getLogger("mentor_agent.delivery")

WENT = "went after all"  # a row's detail (and the log event) once its copy in Sent proved it went
SET_ASIDE = "went after all: the copy taken in again set aside"  # a moved-back copy's row, once set aside
SETTING_ASIDE = "went after all: being set aside"  # ... marked before the copy moves
TOLD = "went after all told"  # logged about each row once its notice is in her mailbox
IN_DOUBT = "in doubt"  # the log event of a send put in doubt (agent.reconcile.attention)

Links = Mapping[str, list[tuple[str, datetime]]]  # agent.store.in_doubt_kept.taken_back


async def settle_doubts(world: World, found: Sequence[tuple[HeaderInfo, Envelope]], links: Links) -> None:
    """``found``: copies in Sent, not filed by the agent, whose Message-ID the ledger knows or ``links`` names
    (the messages taken in again after a send in doubt, by that send's Message-ID)."""
    doubts = _doubts(world)
    for info, envelope in found:
        message_id = envelope.message_id
        if not message_id or _resent(info.headers):
            continue  # a Redirect's copy: a send to its Resent- recipients, no proof of the one in doubt
        rows = _in_doubt(world, message_id, envelope, doubts, links)
        releases = {message_id}
        if rows:
            # Moved back once and in doubt again on its own: the copy may be of either try; it went at the first
            keys = {row.key for row in rows}
            earlier = [handed for key, handed in links.get(message_id, []) if key in keys]
            _went(world, rows, min(earlier, default=None))
            releases |= {row.item or row.key for row in rows}
            doubts = _doubts(world)
        for release in releases:
            for key, handed in links.get(release) or _unlinked(world, envelope, release):
                row = world.ledger.get(key)
                if row is not None and _is_of(world, envelope, message_id, [row]):
                    await _taken_back(world, row, handed, release)
                    doubts = _doubts(world)
    await tell_owed(world)


def _doubts(world: World) -> list[Row]:
    return [row for row in world.ledger.in_states(ATTENTION) if row.sent_at is not None]


def _resent(headers: bytes) -> bool:
    return any(line[:7].lower() == b"resent-" for line in headers.splitlines())


def _in_doubt(world: World, message_id: str, copy: Envelope, doubts: list[Row], links: Links) -> list[Row]:
    """The rows in doubt of the e-mail the copy is of (all of that e-mail's: a digest's every message), or none.
    A message's own copy is of the e-mail it is in doubt in — dragged to Sent from Needs attention — unless it
    once went alone and was taken in again: then the copy is of that earlier try (followed through its link)."""
    linked = {key for key, _ in links.get(message_id, [])}
    found = [
        row
        for row in doubts
        if row.item == message_id
        or (row.message_id == message_id and (row.item in (None, message_id) or row.key not in linked))
    ]
    if not found or not _is_of(world, copy, message_id, found):
        return []
    releases = {row.item or row.key for row in found}
    return [row for row in doubts if (row.item or row.key) in releases]


def _unlinked(world: World, copy: Envelope, release: str) -> list[tuple[str, datetime]]:
    """A message moved back before the links were logged (a ledger from an older version): its own, under its
    own Message-ID, once in doubt, whose hand-over was kept when it was taken in again."""
    row = world.ledger.get(copy.key)
    if row is None or row.message_id != release or not world.ledger.logged(IN_DOUBT, row.key):
        return []
    return [(row.key, at) for at in kept_hand_overs(world.ledger, release)[:1]]


def _is_of(world: World, copy: Envelope, message_id: str, rows: Sequence[Row]) -> bool:
    """Whether ``copy`` can be the e-mail these rows went out in: not a mail program's own copy of what it handed
    to the submission door, to no one they were not to, and a message's own copy under its own subject."""
    own = [row for row in rows if row.message_id == message_id]
    if any(world.ledger.logged(SUBMITTED, row.key) for row in own):
        return False
    written = {normal_address(a) for a in copy.to + copy.cc + copy.bcc if a.strip()}
    allowed = {normal_address(a) for row in rows for a in row.recipients}
    if not written <= allowed:  # none at all: to Bcc only ("undisclosed-recipients:;"), as SMTP carried it
        return False
    return all(same_subject_line(copy.subject, row.subject) for row in own)


def _went(world: World, rows: Sequence[Row], handed: datetime | None, went_in: str | None = None) -> None:
    """Record ``rows`` (one e-mail's, in Needs attention) as gone when handed over (``handed``: when the e-mail
    whose copy turned up was, if not theirs; ``went_in``: that e-mail's Message-ID, which they are told with from
    then on); the notice is owed from then on."""
    ledger = world.ledger
    first = min(rows, key=lambda row: (row.arrived, row.key))
    at = handed or min(handed_over(row.sent_at) for row in rows if row.sent_at is not None)
    release = first.item or first.key
    with ledger.transaction():
        if handed is not None:  # in doubt again in a later e-mail: that hand-over keeps counting
            for row in rows:
                keep_counting(ledger, row)
        for row in rows:
            ledger.update(row.key, state=DONE, sent_at=at, uid=None, detail=WENT, item=went_in or row.item)
            ledger.log(WENT, mentor=row.mentor, message=row.key, detail=f"its copy is in {world.folders.sent}")
        counted = ledger.item_ids()
        if handed is None and first.mentor and release not in counted and kept_id(release, at) not in counted:
            record_received(world, first.mentor, release, at, rows, [], follow_up=False)
    log.info("%s: in doubt, went after all: its copy is in %s", named(first.key, first.subject), world.folders.sent)


async def _taken_back(world: World, row: Row, handed: datetime, went_in: str | None) -> None:
    """Her copy of a send in doubt, taken in again, while the copy of that send (``went_in``, handed over at
    ``handed``) turned up in Sent: not sent."""
    folders = world.folders
    ledger = world.ledger
    if row.state == ATTENTION and row.sent_at is not None:
        _went(world, [row], handed, went_in)  # in doubt again, in a later e-mail: it went in the earlier one
        return
    finishing = row.state == DONE and row.detail == SETTING_ASIDE  # a stop came between the mark and the move
    if not finishing and (row.state not in (NEW, SCHEDULED, CLAIMED) or not row.folder or row.uid is None):
        if row.state != DONE:
            log.warning(
                "%s: the send in doubt it was taken in again after went after all (its copy is in %s), but this "
                "copy is already %s",
                named(row.key, row.subject),
                folders.sent,
                row.state,
            )
        return
    held = await world.locate(row.folder, row.key, row.uid) if row.folder else None
    if held is None and not finishing:
        return  # gone meanwhile: the intake and follow_scheduled see to it
    if not finishing:
        # Marked first: a stop before the move finishes it on the next start, never reads it as her cancel
        ledger.update(row.key, state=DONE, sent_at=handed, detail=SETTING_ASIDE)
        ledger.log(WENT, mentor=row.mentor, message=row.key, detail=f"its copy is in {folders.sent}")
    if held is not None and row.folder:
        with contextlib.suppress(MessageGone):  # moved by her meanwhile: told all the same
            await world.imap(world.mailbox.move, row.folder, held, folders.needs_attention)
    ledger.update(row.key, folder=folders.needs_attention, uid=None, detail=SET_ASIDE)
    log.warning(
        "%s: its earlier try went after all (its copy is in %s): not sent again",
        named(row.key, row.subject),
        folders.sent,
    )
    publish(Cancelled(row.key, "its earlier try went after all"))


async def tell_owed(world: World) -> bool:
    """The notices owed (see the module docstring), each once: one per e-mail that went after all, one per copy
    taken in again that was set aside. Each has its own Message-ID, made from what it is about, and is looked for
    before it is appended: one whose APPEND was answered by no one (or a stop before its "told") is not told twice.
    Whether all of them are told (a refused one is tried again at the end of a later pass: attention.tell_owed)."""
    ledger = world.ledger
    for row in untold(ledger, (SETTING_ASIDE,), TOLD):  # a stop came while it was set aside: finished first
        await _taken_back(world, row, handed_over(row.sent_at) if row.sent_at else world.now(), None)
    went: dict[str, list[Row]] = defaultdict(list)
    told: list[list[Row]] = []
    wanted = 0  # notices to tell
    for row in untold(ledger, (WENT, SET_ASIDE), TOLD):
        if row.detail == WENT:
            went[row.item or row.key].append(row)
            continue
        wanted += 1
        if await _tell_once(world, [row], _set_aside_notice):
            told.append([row])
    wanted += len(went)
    for rows in went.values():
        if await _tell_once(world, rows, _went_notice):
            told.append(rows)
    if told:  # (run at the end of every pass: no empty transaction when there is nothing to note)
        with ledger.transaction():  # each notice's rows at once: a stop between two would tell the rest again
            for rows in told:
                for row in rows:
                    ledger.log(TOLD, mentor=row.mentor, message=row.key)
    return len(told) == wanted


Notice = tuple[str, list[str]]


async def _tell_once(
    world: World, rows: list[Row], notice: Callable[[World, list[Row], bool], Awaitable[Notice]]
) -> bool:
    rows = sorted(rows, key=lambda row: (row.arrived, row.key))
    made = hashlib.sha256("\0".join([notice.__name__, *(row.key for row in rows)]).encode()).hexdigest()[:24]
    own = notice_id(world.settings.student.address, f"{made}.went")
    if await world.locate(world.folders.notices, own, None) is not None:
        return True  # appended before, its answer lost
    still = any([await world.locate(world.folders.needs_attention, row.key, row.uid) is not None for row in rows])
    title, lines = await notice(world, rows, still)
    return await world.notify(title, lines, about=rows[0].message_id, message_id=own)


async def _went_notice(world: World, rows: list[Row], still: bool) -> Notice:
    folders = world.folders
    subjects = ", ".join(f"“{row.subject}”" for row in rows)
    at = min((handed_over(row.sent_at) for row in rows if row.sent_at is not None), default=world.now())
    copy = (
        f" Its copy in {folders.needs_attention} can be deleted; moved back to the Outbox, it is set aside, not "
        "sent twice."
        if still
        else ""
    )
    lines = [
        f"{subjects} did reach the mail server: a copy turned up in your {folders.sent} folder (your mail provider "
        "files what its server takes; or you put it there).",
        f"mentor-agent now counts it as sent when it was handed over ({_local(world, at)}) and will not send it "
        f"again.{copy}",
    ]
    tries = _hand_overs_in_doubt(world, rows)
    if len(tries) > 1:  # moved back and in doubt again: the copy proves one try went, and says nothing of the other
        times = ", ".join(_local(world, moment) for moment in tries)
        lines.append(
            f"It was handed to the mail server {len(tries)} times ({times}), each time in doubt. The copy shows that "
            "one of them went; the others may have gone too, so your mentor may have it more than once."
        )
    return f"Went after all: {rows[0].subject}", lines


def _hand_overs_in_doubt(world: World, rows: Sequence[Row]) -> list[datetime]:
    """When the messages of ``rows`` were handed over in sends left in doubt, taken in again after each: the
    earlier tries (linked when she moved them back) and the last (kept counting when it went after all)."""
    keys = {row.key for row in rows}
    return sorted({at for links in taken_back(world.ledger).values() for key, at in links if key in keys})


async def _set_aside_notice(world: World, rows: list[Row], still: bool) -> Notice:
    folders = world.folders
    row = rows[0]
    subject = row.subject or "(no subject)"
    at = handed_over(row.sent_at) if row.sent_at is not None else world.now()
    where = f"The copy you moved back is in {folders.needs_attention}: delete it. " if still else ""
    return f"Not sent again: {subject}", [
        f"“{subject}” was in doubt, and you moved it back to {folders.outbox} to send it again. Its earlier try "
        f"(handed to the mail server {_local(world, at)}) did reach it after all: a copy of it turned up in your "
        f"{folders.sent} folder.",
        f"So mentor-agent will not send it a second time. {where}It counts in the agreement as sent then.",
    ]


def _local(world: World, moment: datetime) -> str:
    return moment.astimezone(world.settings.student.zone).strftime("%a %d %b %H:%M")
