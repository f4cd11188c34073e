"""The star door: a draft to a mentor that the student flags (Gmail's star, the flag of Apple Mail, Outlook and
phone clients: ``\\Flagged``) is taken as if she had dropped it in the Mentor Outbox.

- It is taken once it has stood flagged and unchanged for ``[drafts] settle`` seconds: mail programs save a draft
  again and again while one types, each save a new message (a new UID), and each save starts the wait afresh.
  When each wait began is kept in the ledger: a restart neither starts it again nor shortens it.
- Taking it: its flag (and ``\\Draft``) comes off, then it is MOVEd to the Mentor Outbox, so that it leaves Drafts
  and cannot also be sent from there (and its flag is not read as "send now anyway" in the Outbox). A notice says
  so. The intake does the rest, as for any message in the Outbox.
- A flagged draft to no mentor is left alone: the flag may mean anything. An encrypted one too, with a notice
  (:mod:`agent.reconcile.doors.sealed`).
- A draft that also stands in the Outbox (Gmail: the label "Mentor Outbox" put on it in the compose window) is
  taken by the intake from there, and leaves Drafts on purpose (its Drafts label removed, never by Trash).
- A draft that comes back (the compose window was still open and saved it again, flagged or not) is recognised by
  its Message-ID, or, among the drafts to the same mentor taken in the last day (and the messages with its
  recipients and subject the intake took from the Outbox: :mod:`agent.reconcile.doors.across`), by its text: the
  taken one or an edit of it, in doubt a copy (:mod:`agent.rules.draft_edits`), whatever its subject and other
  recipients (one with another subject only if saved after the taking: a higher UID); the very same words for a
  week. It is never taken a second time and stays in Drafts; the student is told what it looks like and what became
  of the one taken, and how to send it if it is a new message (:mod:`agent.reconcile.doors.copy_told`). Another
  text is taken as its own, and her notice says so.
- What is taken is kept BEFORE the MOVE (``TAKING``, its text's prints): a MOVE the server did whose answer was
  lost (a cut, a kill -9) is found done by the next session (the draft in the Outbox), told, and its re-save known.

Why one module: one pass over Drafts decides each draft against the others (its newer saves, its copies, the label
door's copy in the Outbox); what she is told of them is in copy_told, what is kept of a taking in taken_drafts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from agent.crashpoints import crash_point
from agent.logs import named
from agent.mail.port import HeaderInfo
from agent.mail.session import MessageGone
from agent.reconcile.context import World
from agent.reconcile.doors.copy_told import newer_unflagged, taking_void, tell_copy
from agent.reconcile.doors.early_copies import same_text
from agent.reconcile.doors.flag_baseline import changed_while_away, door_account
from agent.reconcile.doors.reminders import carried_over, keep_prints, tell_still
from agent.reconcile.doors.sealed import is_encrypted, leave_encrypted
from agent.rules.draft_edits import mentors_print, signature, word_prints
from agent.rules.envelope import Envelope, fingerprint, parse_envelope, split_key, variant_key
from agent.store import taken_drafts
from agent.store.ledger import OPEN_STATES

log = logging.getLogger("mentor_agent.drafts")
TAKEN = taken_drafts.TAKEN
TAKING = taken_drafts.TAKING  # logged before its flag comes off; TAKEN once it is in the Outbox
RECOGNISE_FOR = timedelta(days=1)  # a copy with a new Message-ID: the text taken or an edit of it
RECOGNISE_SAME_FOR = timedelta(days=7)  # a copy with a new Message-ID and the very same words (open overnight)
JUST_SAVED = timedelta(seconds=60)  # a draft flagged when the door opens, saved this recently, is not an old flag
LOOK_FOR_OUTBOX_COPY = timedelta(minutes=10)
TWO_STEP = timedelta(seconds=60)  # a reminder's save APPENDed unstarred and starred this soon: the program's star


def _saved(info: HeaderInfo) -> list[datetime]:
    """When a draft was saved, as its server (INTERNALDATE) and its mail program (Date) say."""
    return [at for at in (info.internaldate, parse_envelope(info.headers).date) if at is not None]


def to_mentor(world: World, envelope: Envelope) -> str:
    """Which mentors a draft goes to: a re-save with the subject fixed or a Cc added still shares it."""
    return mentors_print(p.id for a in envelope.recipients if (p := world.book.for_address(a)) is not None)


async def drafts_folder(world: World, listed: dict[str, frozenset[str]] | None = None) -> str | None:
    """Her drafts folder: the configured one, else the one marked ``\\Drafts``, else "Drafts"; None when it is not
    there, or set to one of the agent's own folders (a slip: no door at all, never a message taken from it).
    ``listed``: what :meth:`~agent.mail.port.MailboxPort.folder_list` just answered (else it is asked)."""
    if listed is None:
        listed = await world.imap(world.mailbox.folder_list)
    special = next((name for name, attrs in listed.items() if "\\drafts" in {a.lower() for a in attrs}), None)
    name = world.settings.imap.folders.drafts or special or "Drafts"
    f = world.folders
    own = {f.inbox, f.outbox, f.scheduled, f.needs_attention, f.sending, f.sent, f.notices}
    return name if name in listed and name not in own else None


@dataclass
class DraftDoor:
    """What the door remembers between passes (a new one each session: what was taken is in the ledger)."""

    folder: str | None = None
    validity: int = 0
    flagged_since: dict[int, datetime] = field(default_factory=dict)
    looked_at: set[int] = field(default_factory=set)
    # Drafts not known to the ledger when first seen: a labelled draft's Outbox copy may be taken in a pass later.
    unplaced: dict[int, tuple[str, datetime]] = field(default_factory=dict)  # UID -> (key, looked for until)
    # The drafts flagged before the star door opened (their flag not yet seen off): (UIDVALIDITY, UIDs)
    old_flags: tuple[int, set[int]] | None = None
    # Drafts with the recipients and subject of one taken in the last day: UID -> (the taken one it is a copy of,
    # None: a message of its own; the last taken with them)
    alike: dict[int, tuple[str | None, str | None]] = field(default_factory=dict)
    modseqs: dict[int, int] | None = None  # of the baseline drafts still flagged, as this session last saw them
    # The messages handed over (taken in from the Outbox) whose copy in Drafts this session looked for once: a draft
    # labelled long after it was saved (no new save) or without a Message-ID is found so
    looked_for: set[str] = field(default_factory=set)
    unstarred: dict[int, datetime] = field(default_factory=dict)  # new saves of reminders not seen starred: since
    half_since: dict[int, datetime] = field(default_factory=dict)  # half-taken drafts (no flag left): seen since
    overtaken: dict[int, datetime] = field(default_factory=dict)  # newer unflagged saves of a flagged one: since

    async def find_folder(self, world: World, listed: dict[str, frozenset[str]] | None = None) -> str | None:
        """Her drafts folder, looked up once per session; ``listed``: the session's start LIST (settle_folders)."""
        if self.folder is None:
            self.folder = await drafts_folder(world, listed) or ""
        return self.folder or None

    async def pass_once(self, world: World) -> datetime | None:
        """Take what is due; returns when a flagged draft will have settled (None: nothing waits). The label door
        (a draft that also stands in the Outbox leaves Drafts) always works; the star door only when opened."""
        stars = world.settings.drafts.take_flagged
        folder = await self.find_folder(world)
        if folder is None:
            return None
        await self._finish_takings(world, folder)
        validity, uids = await world.imap(world.mailbox.uids, folder)
        waits = f"{door_account(world, folder)}:{validity}"
        if validity != self.validity:
            self.validity, self.looked_at, self.alike = validity, set(), {}
            self.flagged_since = taken_drafts.waits(world.ledger, waits) if stars else {}
        present = set(uids)
        flagged = set(await world.imap(world.mailbox.flagged, folder)) & present
        fresh = [uid for uid in uids if uid not in self.looked_at]
        wanted = sorted(flagged | set(fresh) | (set(self.half_since) & present))  # half-taken: no flag to find them by
        infos = await world.imap(world.mailbox.headers, folder, wanted) if wanted else []
        now = world.now()
        waited = dict(self.flagged_since)
        self.flagged_since = {uid: at for uid, at in self.flagged_since.items() if uid in flagged}
        self.looked_at = (self.looked_at & present) | set(fresh)
        self.alike = {uid: alike for uid, alike in self.alike.items() if uid in present}
        settle = timedelta(seconds=world.settings.drafts.settle)
        if not stars:
            taken_drafts.close_door(world.ledger, door_account(world, folder))  # its next opening starts afresh
            self.old_flags = None
        old = await self._flagged_before_door(world, folder, validity, flagged, present, set(fresh)) if stars else set()
        for uid, (key, until) in list(self.unplaced.items()):
            if uid not in present or now > until or await self._handed_over(world, folder, uid, key):
                del self.unplaced[uid]
        await self._look_for_handed_over(world, folder, set(fresh))
        due: list[datetime] = []
        # The newest save of each draft (its Message-ID, whatever its subject became; a save has a higher UID): a
        # program that leaves the older saves behind (not Gmail, which replaces them) means the last one, flagged or not
        anchors = flagged | (set(self.half_since) & present)  # the saves that may be taken: newer ones overtake them
        later = sorted(u for u in present - set(wanted) if anchors and u > min(anchors))
        newest: dict[str, int] = {}
        for info in sorted(
            [*infos, *(await world.imap(world.mailbox.headers, folder, later) if later else [])], key=lambda i: i.uid
        ):
            newest[parse_envelope(info.headers).message_id or ""] = info.uid  # a save: the same Message-ID
        for info in infos:
            envelope = parse_envelope(info.headers)
            if await self._came_back(world, folder, info, envelope, first_look=info.uid in fresh):
                continue
            if info.uid in fresh and await self._handed_over(world, folder, info.uid, envelope.key):
                continue
            if info.uid in fresh:  # a Message-ID or not: the label door's copy may be taken in a pass later
                self.unplaced[info.uid] = (envelope.key, now + LOOK_FOR_OUTBOX_COPY)
            half = self._half_taken(world, envelope)  # being taken when the agent stopped: its flag still counts
            if info.uid in old or not stars or (info.uid not in flagged and not half):
                continue
            if not any(world.book.for_address(a) for a in envelope.recipients):
                continue  # a flag on a draft to no mentor means something else: left alone
            saved = newest.get(envelope.message_id or "", info.uid) if envelope.message_id else info.uid
            if saved > info.uid:  # an older save: never taken while a newer one stands
                if half:  # saved again while the agent was stopped: the newest is the one being taken
                    self.half_since.setdefault(saved, now)
                elif saved not in flagged:  # told once it has stood unflagged a while (not a save in two steps)
                    seen = self.overtaken.setdefault(saved, now)
                    if now - seen < settle:
                        due.append(seen + settle)
                    else:
                        await newer_unflagged(world, folder, envelope, info.uid)
                continue
            if is_encrypted(info):
                await leave_encrypted(world, folder, envelope)
                continue
            since = (self.flagged_since if info.uid in flagged else self.half_since).setdefault(info.uid, now)
            if now - since < settle:  # a half-taken one too: saved again meanwhile, it settles again
                due.append(since + settle)
                continue
            await self._take(world, folder, info, envelope)
        self.half_since = {uid: at for uid, at in self.half_since.items() if uid in present and uid not in flagged}
        self.overtaken = {uid: at for uid, at in self.overtaken.items() if uid in present and uid not in flagged}
        if stars and self.flagged_since != waited:
            taken_drafts.keep_waits(world.ledger, waits, self.flagged_since)
        return min(due, default=None)

    async def _flagged_before_door(
        self, world: World, folder: str, validity: int, flagged: set[int], present: set[int], fresh: set[int]
    ) -> set[int]:
        """The drafts already flagged when the star door opened on this account (a flag may have been a reminder
        for months; one saved in the last JUST_SAVED before the very first opening is not): never taken for that old
        flag, nor a new save of one that keeps its flag (:mod:`agent.reconcile.doors.reminders`). A flag taken off
        and set again counts as new. The door opens afresh after it was shut (the daemon ran with it closed), every
        flag then old; a Drafts folder made anew (a new UIDVALIDITY) keeps every flag in it as old. The student is
        told once."""
        account = door_account(world, folder)
        if self.old_flags is None or self.old_flags[0] != validity:
            opened = taken_drafts.opened(world.ledger, account)
            if opened is None or opened[0] != validity:
                infos = await world.imap(world.mailbox.headers, folder, sorted(flagged)) if flagged else []
                before = infos
                if not taken_drafts.ever_opened(world.ledger, account):
                    # Saved in the last minutes before the door first opens: written for it, not a reminder
                    recent = world.now() - JUST_SAVED
                    before = [i for i in infos if min(_saved(i), default=recent) < recent or not _saved(i)]
                taken_drafts.open_door(world.ledger, account, validity, {i.uid for i in before}, world.now())
                await keep_prints(world, folder, validity, {i.uid for i in before})
                opened = (validity, frozenset(i.uid for i in before))
                await self._tell_old_flags(world, folder, before)
            self.old_flags = (validity, set(opened[1]) - taken_drafts.cleared(world.ledger, account, validity))
            self.modseqs = None
        old = self.old_flags[1]
        carried = await carried_over(world, folder, validity, fresh - old, flagged)
        old |= carried
        # A save carried over unstarred (a two-step save): its star, when it comes, is the reminder's (told once per
        # reminder); one set later than TWO_STEP may be hers: in doubt still not taken, and she is told each time
        now = world.now()
        self.unstarred = {u: self.unstarred.get(u, now) for u in (set(self.unstarred) | (carried - flagged)) & present}
        starred = {u: now - at > TWO_STEP for u, at in self.unstarred.items() if u in flagged}
        await tell_still(world, folder, validity, {u for u, late in starred.items() if not late})
        await tell_still(world, folder, validity, {u for u, late in starred.items() if late}, every=True)
        self.unstarred = {u: at for u, at in self.unstarred.items() if u not in flagged}
        for uid in sorted((old - flagged - set(self.unstarred)) & present):  # its star seen off; one gone: no hand-over
            taken_drafts.clear(world.ledger, account, validity, uid)
        old &= flagged | set(self.unstarred)
        self.modseqs = await changed_while_away(world, folder, validity, old & flagged, self.modseqs)
        return old & flagged

    async def _tell_old_flags(self, world: World, folder: str, infos: list[HeaderInfo]) -> None:
        to_mentors = [
            info for info in infos if any(world.book.for_address(a) for a in parse_envelope(info.headers).recipients)
        ]
        if not to_mentors:
            return
        count = len(to_mentors)
        log.info("%d drafts to a mentor were flagged in %s before the star door opened: left alone", count, folder)
        drafts = "draft was" if count == 1 else "drafts were"
        subjects = [f"- {parse_envelope(i.headers).subject or '(no subject)'}" for i in to_mentors]
        await world.notify(
            f"{count} flagged {drafts.split()[0]} left in {folder}",
            [
                f"{count} {drafts} flagged before the star door opened; flag one again to hand it over "
                "(take its flag off, then set it again). They stay in " + folder + " until then:",
                "\n".join(subjects),
            ],
        )

    async def _came_back(
        self, world: World, folder: str, info: HeaderInfo, envelope: Envelope, first_look: bool
    ) -> bool:
        """A copy of a draft taken before: told (on first sight, or when it is flagged), never taken."""
        same_id = bool(envelope.message_id) and world.ledger.logged(TAKEN, envelope.key)
        if not same_id and envelope.message_id and world.ledger.get(envelope.key) is not None:
            return False  # this very message taken from the Outbox (Gmail: starred and labelled): the label door's
        taken = envelope.key if same_id else await self._edit_of_taken(world, folder, info, envelope)
        if taken is None:
            return False
        why = "its Message-ID" if same_id else "same mentor, similar text"
        return await tell_copy(world, folder, info, envelope, taken, why, first_look)

    async def _edit_of_taken(self, world: World, folder: str, info: HeaderInfo, envelope: Envelope) -> str | None:
        """The key of the draft to the same mentor taken in the last day (another Message-ID; the subject or the
        other recipients perhaps changed) of which this one is a copy: its text the taken one or an edit of it.
        None: a message of its own."""
        if info.uid in self.alike:
            return self.alike[info.uid][0]
        since = world.now() - RECOGNISE_FOR
        signatures = [to_mentor(world, envelope), signature(envelope)]  # the second: as kept before
        same_since = world.now() - RECOGNISE_SAME_FOR
        taken = taken_drafts.recall(world.ledger, signatures, same_since)
        if not taken:
            return None
        raw = await world.imap(world.mailbox.fetch, folder, info.uid)
        if raw is None:
            return None  # gone meanwhile: nothing to tell of (taking it finds it gone too)
        # A re-save has a higher UID than the draft taken (what the agent saw, never the clients' clocks)
        copy_of = taken_drafts.copy_of(
            world.ledger,
            signatures,
            since,
            word_prints(raw),
            lambda at: at[0] == self.validity and info.uid < at[1],
            same_since=same_since,
        )
        today = [key for key, _, _ in taken_drafts.recall(world.ledger, signatures, since)]
        self.alike[info.uid] = (copy_of, today[0] if today else None)
        return copy_of

    async def _look_for_handed_over(self, world: World, folder: str, fresh: set[int]) -> None:
        """Each message the label door handed over, once a session: its copy in Drafts leaves (a draft labelled
        from the Drafts list long after it was saved, one without a Message-ID: not seen fresh in Drafts then)."""
        for key in taken_drafts.held_handed_over(world.ledger):
            if key in self.looked_for:
                continue
            self.looked_for.add(key)
            if world.ledger.logged(TAKEN, key):
                continue  # the star door's: MOVEd out of Drafts; a copy there is one that came back (_came_back)
            row = world.ledger.get(key)
            if row is None or row.folder == folder:
                continue
            uid = await world.locate(folder, key, None)
            if uid is not None and uid not in fresh:  # a fresh one is looked at below
                await self._handed_over(world, folder, uid, key)

    async def _handed_over(self, world: World, folder: str, uid: int, key: str) -> bool:
        """The label door: a draft that also stands in the Outbox (Gmail's label "Mentor Outbox" in the compose
        window), taken in there already, leaves Drafts on purpose, so that it cannot also be sent from there."""
        row = world.ledger.get(key)
        if row is None or row.state not in OPEN_STATES:  # cancel puts a message back in Drafts: hers again
            return False
        # Never the only copy: the one the agent holds must be in its folder now (a `cancel` moving it to Drafts
        # meanwhile leaves the ledger a step behind), and the copy in Drafts must be that very message.
        held_in = row.folder or ""
        here = await world.locate(held_in, row.key, row.uid) if held_in else None
        if here is None or await world.locate(folder, row.key, uid) != uid:
            return False
        if not await same_text(world, (held_in, here), (folder, uid)):
            return False  # her compose window saved an edit under the same Message-ID: hers, never deleted
        try:
            await world.imap(world.mailbox.leave_folder, folder, uid)
        except MessageGone:
            return True
        world.ledger.log("left drafts", mentor=row.mentor, message=row.key, detail=f"handed over, {row.state}")
        log.info(
            "%s: handed over (%s) and still in %s: taken out of it", named(row.key, row.subject), row.state, folder
        )
        return True

    def _another(self, world: World, uid: int | None, subject: str) -> list[str]:
        """What the notice of a draft taken says of one taken earlier with the same recipients and subject."""
        last = self.alike.pop(uid)[1] if uid is not None and uid in self.alike else None
        if last is None:
            return []
        earlier = world.ledger.get(last)
        if earlier is not None and earlier.subject != subject:
            return []
        where = "" if earlier is None else (" (already sent)" if earlier.state == "done" else f" ({earlier.state})")
        return [
            f"A draft with the same recipients and subject was taken earlier today{where}. This one's text is "
            "different, so it was taken as a message of its own. If it was meant to replace the first, delete the "
            "one you do not want from the Scheduled folder while it waits there.",
        ]

    @staticmethod
    def _half_taken(world: World, envelope: Envelope) -> bool:
        """Its flag taken off by the agent, which stopped before the MOVE (a crash): the flag still counts."""
        key = envelope.key  # without a Message-ID, a key of its content: the same draft, unchanged
        # Its last taking not seen done nor void: after "Not taken" (void), only a new flag (a new taking) counts
        # (a copy in Drafts after the intake took it in since is her program's re-save, not the draft)
        ledger = world.ledger
        return taken_drafts.taking_pending(ledger, key) and not taken_drafts.taken_in_since_taking(ledger, key)

    async def _take(self, world: World, folder: str, info: HeaderInfo, envelope: Envelope) -> None:
        raw = await world.imap(world.mailbox.fetch, folder, info.uid)
        if raw is None:
            return  # saved again or deleted meanwhile
        # Its star looked at again after the read (a big draft on a slow line takes a while): taken off meanwhile,
        # she no longer hands it over (a star taken off by the agent before a stop still counts: _half_taken)
        if info.uid not in await world.imap(world.mailbox.flagged, folder) and not self._half_taken(world, envelope):
            self.flagged_since.pop(info.uid, None)
            log.info(
                "%s: its flag was taken off before it was taken: left in %s",
                named(envelope.key, envelope.subject),
                folder,
            )
            return
        # What it was, before the MOVE: the server may do it and its answer be lost (a cut, a kill -9); the next
        # session finds it in the Outbox (_finish_takings) and its compose window's re-save is known as a copy.
        world.ledger.log(TAKING, message=envelope.key, detail=envelope.subject)
        world.ledger.log(taken_drafts.TAKING_PRINT, message=envelope.key, detail=fingerprint(raw))
        taken_drafts.remember(
            world.ledger,
            to_mentor(world, envelope),
            envelope.key,
            world.now(),
            word_prints(raw),
            (self.validity, info.uid),
        )
        world.ledger.log(taken_drafts.HANDED_OVER, message=envelope.key)
        try:
            # The flag first: in the Outbox a flag means "send now anyway", which the student did not ask for.
            await world.imap(world.mailbox.remove_flags, folder, info.uid, ["\\Flagged", "\\Draft"])
            crash_point("draft-unflagged")
            await world.imap(world.mailbox.move, folder, info.uid, outbox := world.folders.outbox)
            crash_point("draft-moved")  # the server did the MOVE, its answer not read (as a cut connection)
        except MessageGone:
            return  # saved again or deleted meanwhile: the new copy waits its own settle time
        self.flagged_since.pop(info.uid, None)
        log.info("%s: flagged in %s: taken into %s", named(envelope.key, envelope.subject), folder, outbox)
        await self._taken(world, folder, envelope.key, envelope.subject, info.uid)

    async def _finish_takings(self, world: World, folder: str) -> None:
        """The takings begun and never seen done: a MOVE the server did (the draft is in the Outbox, or the intake
        took it) is a draft taken, and she is told; one neither there nor in Drafts any more was never done."""
        folders = world.folders
        for key, subject in taken_drafts.pending_takings(world.ledger):
            # Done: the intake took its message in since (the log says so, in order), or it is in the Outbox, or the
            # intake set it aside since (and it is found there by its content: never another message with its
            # Message-ID, nor a copy set aside before)
            content = taken_drafts.taking_print(world.ledger, key)
            mine = variant_key(key, content) if content and split_key(key)[1] is None and key.startswith("<") else key
            taken = taken_drafts.taken_in_since_taking(world.ledger, key)
            if not taken and await world.locate(folders.outbox, mine, None) is None:
                if await world.locate(folder, key, None) is not None:
                    continue  # still in Drafts: its flag still counts (_half_taken)
                if taken_drafts.set_aside_since_taking(world.ledger, key):
                    taken = await world.locate(folders.needs_attention, mine, None) is not None
                if not taken:
                    await taking_void(world, folder, key, subject)
                    continue
            log.info("%s: its MOVE into %s was done, its answer lost", named(key, subject), folders.outbox)
            await self._taken(world, folder, key, subject, None)

    async def _taken(self, world: World, folder: str, key: str, subject: str, uid: int | None) -> None:
        world.ledger.log(TAKEN, message=key, detail=subject)
        outbox = world.folders.outbox
        about = None if key.startswith("sha256:") else key.partition("#")[0]
        await world.notify(
            f"Taken from {folder}: {subject or '(no subject)'}",
            [
                f"You flagged the draft “{subject or '(no subject)'}”, so mentor-agent took it: it is in your {outbox} "
                "now and goes when the agreement allows (you are told if it has to wait).",
                f"It left {folder} so that it cannot also be sent from there. If your mail program still has it open, "
                "close it without saving.",
                *self._another(world, uid, subject),
            ],
            about=about,
        )
