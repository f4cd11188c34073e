"""What the draft doors took, kept in the ledger's log so that a restart or a new IMAP session forgets nothing.

- ``draft taken as`` (message: the mentors it goes to, ``draft-to:``, or before, its recipients and subject,
  detail: "key\\nwhen\\nwords\\nuid UIDVALIDITY:UID"), kept before its MOVE: a copy saved again by the compose
  window after it was taken (a new Message-ID, its text the taken one or an edit of it; a higher UID) is known across
  sessions. ``words``: the text's words as short hashes (:mod:`agent.rules.draft_edits`), never the text itself;
  absent in rows written before it was kept (such a copy is taken as a copy).
- ``draft came back`` (message: the taken draft's key, detail: when the student was told, and a hash of that copy's
  prints): told once on first sight, and again when she flags a copy later than ``TELL_AGAIN`` after, or one with
  another text (:mod:`agent.reconcile.doors.copy_told`).
- ``draft handed over`` (message: the key): a draft taken by the star or the label door goes without its mail
  program's draft-only header fields and with the Date it was handed over (:mod:`agent.reconcile.prepared`).
- ``draft door opened`` (message: the account, detail: "UIDVALIDITY:UIDs\\nwhen", the Drafts folder's UIDVALIDITY
  and the UIDs flagged when ``setup`` or the daemon's first pass opened the star door): the drafts flagged before
  the star door opened are never taken for that old flag; ``draft flag cleared``
  (message: account and UIDVALIDITY, detail: the UID) once such a flag is seen off, so that setting it again counts;
  ``draft changed while away`` (the same) once the student was told such a draft changed while the agent was
  stopped (:mod:`agent.reconcile.doors.flag_baseline`).
- ``draft door closed`` (message: the account): the daemon ran with the star door shut after it last opened; when
  it opens again it takes a fresh baseline (a star set meanwhile may be a reminder).
- ``draft baseline print`` (message: account and UIDVALIDITY, detail: "UID\\nkey\\nsignature\\nwords\\nroot"): what
  each baseline draft was (root: the UID of the reminder it is a save of), so that a new save of it stays in the
  baseline (``draft baseline carried``, detail: the new UID); ``draft reminder told`` (detail: the root) once she
  was told so (:mod:`agent.reconcile.doors.reminders`).
- ``draft flagged since`` (``meta``, per account and UIDVALIDITY): when each flagged draft was first seen flagged,
  so that its settle wait survives a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from agent.rules.draft_edits import is_edit, is_same, same_subject
from agent.store.ledger import ATTENTION, CANCELLED, DONE, OPEN_STATES, Ledger

TAKEN_AS = "draft taken as"
OUTBOX_TAKEN_AS = "outbox taken as"  # what the intake took from the Outbox (message: recipients and subject)
DOOR_OPENED = "draft door opened"
FLAG_CLEARED = "draft flag cleared"
HANDED_OVER = "draft handed over"
TOLD_BACK = "draft came back"
CHANGED_AWAY = "draft changed while away"
WAITS = "draft flagged since"  # meta key prefix
DOOR_CLOSED = "draft door closed"
BASELINE_PRINT = "draft baseline print"
BASELINE_CARRIED = "draft baseline carried"
REMINDER_TOLD = "draft reminder told"  # she was told a new save of this baseline reminder stays one (once each)
TAKING = "draft taking"  # logged before its flag comes off (and what it was: remember()); TAKEN once in the Outbox
TAKEN = "draft taken"
SEEN = "seen"  # logged by the intake about each message it takes in from the Outbox
SET_ASIDE = "attention"  # logged about a message put in Needs attention (the intake's refusals among them)
TAKING_PRINT = "draft taking print"  # logged with TAKING: the content of the draft taken (its fingerprint)
CANCELLED_EVENT = "cancelled"  # logged about a message she took back (`cancel`, or deleted from Scheduled)
TAKING_VOID = "draft taking void"  # a taking never done: the draft was neither moved nor is it in Drafts any more


Stored = tuple[int, int]  # where a taken draft stood in Drafts: (UIDVALIDITY, UID)


def remember(ledger: Ledger, signature: str, key: str, at: datetime, words: str, stored: Stored | None) -> None:
    """``stored``: the taken draft's UIDVALIDITY and UID: a re-save of it has a higher UID (never ordered by the
    INTERNALDATEs: a client may APPEND with its own clock, behind the server's)."""
    kept = f"\nuid {stored[0]}:{stored[1]}" if stored is not None else ""
    ledger.log(TAKEN_AS, message=signature, detail=f"{key}\n{at.isoformat()}\n{words}{kept}")


def _stored(kept: str) -> Stored | None:
    validity, _, uid = kept.removeprefix("uid ").partition(":")
    return (int(validity), int(uid)) if kept.startswith("uid ") and validity.isdigit() and uid.isdigit() else None


def recall(
    ledger: Ledger, signatures: list[str], since: datetime, *, outbox: bool = True, done: str = TAKEN
) -> list[tuple[str, str | None, Stored | None]]:
    """The drafts taken (their MOVE done: ``TAKEN`` logged) with one of ``signatures`` at or after ``since``, and with
    ``outbox`` the messages the intake took in from the Outbox, newest first: (key; their words, None: not kept;
    their UIDVALIDITY and UID in Drafts (the label door's: in the Outbox), None: not kept). ``done``: what
    marks a door's taking as done (``TAKEN``: the star door's MOVE; ``HANDED_OVER``: the label door's row)."""
    marks = ",".join("?" * len(signatures))
    rows = ledger.db.execute(
        f"SELECT event, detail FROM log WHERE event IN (?, ?) AND message IN ({marks}) ORDER BY rowid DESC",
        (TAKEN_AS, OUTBOX_TAKEN_AS if outbox else TAKEN_AS, *signatures),
    )
    found: list[tuple[str, str | None, Stored | None]] = []
    for event, detail in rows:
        key, when, *rest = str(detail).split("\n", 3)
        try:
            at = datetime.fromisoformat(when)
        except ValueError:
            continue
        stored = _stored(rest[1]) if len(rest) > 1 else None
        finished = ledger.logged(done, key) if event == TAKEN_AS else ledger.get(key) is not None
        if at >= since and finished and key not in [k for k, _, _ in found]:
            found.append((key, rest[0] if rest else None, stored))
    return found


def held_handed_over(ledger: Ledger) -> list[str]:
    """The keys of the messages a door handed over that are still on their way (not sent, nor cancelled)."""
    marks = ",".join("?" * len(OPEN_STATES))
    rows = ledger.db.execute(
        f"SELECT DISTINCT m.key FROM log l JOIN messages m ON m.key = l.message WHERE l.event = ? "
        f"AND m.state IN ({marks})",
        (HANDED_OVER, *OPEN_STATES),
    )
    return [str(key) for (key,) in rows]


def took_in(ledger: Ledger, signature: str, key: str, at: datetime, words: str) -> None:
    """The intake took ``key`` from the Outbox (``signature``: its recipients and subject): a starred re-save of it
    in Drafts is known as a copy (:func:`copy_of`)."""
    ledger.log(OUTBOX_TAKEN_AS, message=signature, detail=f"{key}\n{at.isoformat()}\n{words}")


def copy_of(
    ledger: Ledger,
    signatures: list[str],
    since: datetime,
    words: str,
    saved_before: Callable[[Stored], bool] = lambda _: False,
    *,
    outbox: bool = True,
    same_since: datetime | None = None,
) -> str | None:
    """The key of the message taken by either door (the star door, or the intake from the Outbox) with one of
    ``signatures`` at or after ``since`` of which the draft with the prints ``words`` is a copy: its text the taken
    one or an edit of it, in doubt a copy (:func:`agent.rules.draft_edits.is_edit`). A message cancelled since is
    hers again: no copy of it. ``saved_before(stored)``: this draft stood in Drafts before that one was taken (a
    lower UID): a copy of it only with the same subject. ``same_since``: taken before ``since`` but after this, a
    copy only with the very same words (a compose window left open overnight). ``outbox``: False for the label
    door, which knows its own (:mod:`agent.reconcile.doors.came_back`). None: a message of its own."""
    recent = {key for key, _, _ in recall(ledger, signatures, since, outbox=outbox)}
    for key, kept, stored in recall(ledger, signatures, min(since, same_since or since), outbox=outbox):
        row = ledger.get(key)
        if row is not None and row.state == CANCELLED:
            continue
        if stored is not None and saved_before(stored) and not same_subject(kept, words):
            continue
        if kept is None or (is_edit(kept, words) if key in recent else is_same(kept, words)):
            return key
    return None


def taken_at(ledger: Ledger, key: str) -> datetime | None:
    """When the draft ``key`` was taken, as :func:`remember` kept it (None: not kept)."""
    rows = ledger.db.execute(
        "SELECT detail FROM log WHERE event = ? AND substr(detail, 1, ?) = ? ORDER BY rowid DESC LIMIT 1",
        (TAKEN_AS, len(key) + 1, f"{key}\n"),
    ).fetchall()
    for (detail,) in rows:
        try:
            return datetime.fromisoformat(str(detail).split("\n", 2)[1])
        except (ValueError, IndexError):
            return None
    return None


def pending_takings(ledger: Ledger) -> list[tuple[str, str]]:
    """The drafts whose taking began (``TAKING``) but was never seen done nor void: (key, subject), oldest first.
    The MOVE may have been done by the server with its answer lost (a cut connection, a kill -9)."""
    rows = ledger.db.execute(  # the last taking of each, after the last time one was seen done or void (taken again)
        "SELECT message, MAX(detail) FROM log t WHERE event = ? GROUP BY message HAVING MAX(id) > COALESCE("
        "(SELECT MAX(id) FROM log u WHERE u.message = t.message AND u.event IN (?, ?)), 0) ORDER BY MIN(id)",
        (TAKING, TAKEN, TAKING_VOID),
    )
    return [(str(key), str(subject or "")) for key, subject in rows]


def told_back(ledger: Ledger, key: str) -> tuple[datetime, str | None] | None:
    """When the student was last told that a copy of the taken draft ``key`` came back, and a hash of that copy's
    prints (None: not kept); None: never told."""
    row = ledger.db.execute(
        "SELECT detail FROM log WHERE event = ? AND message = ? ORDER BY rowid DESC LIMIT 1", (TOLD_BACK, key)
    ).fetchone()
    if row is None:
        return None
    when, _, text = str(row[0]).partition("\n")
    try:
        return datetime.fromisoformat(when), text or None
    except ValueError:
        return datetime.min.replace(tzinfo=UTC), text or None  # told, before the time was kept


def tell_back(ledger: Ledger, key: str, at: datetime, text: str) -> None:
    ledger.log(TOLD_BACK, message=key, detail=f"{at.isoformat()}\n{text}")


def opened(ledger: Ledger, account: str) -> tuple[int, frozenset[int]] | None:
    """When the star door last opened on ``account``: (UIDVALIDITY, the UIDs flagged then and the new saves of
    them carried into the baseline since); None: never, or shut since."""
    row = _last_opening(ledger, account)
    if row is None or _closed_after(ledger, account, row[0]):
        return None
    validity, _, uids = row[1].partition("\n")[0].partition(":")
    carried = ledger.db.execute(
        "SELECT detail FROM log WHERE event = ? AND message = ? AND rowid > ?",
        (BASELINE_CARRIED, f"{account}:{validity}", row[0]),
    )
    return int(validity), frozenset([int(u) for u in uids.split(",") if u] + [int(d) for (d,) in carried])


def ever_opened(ledger: Ledger, account: str) -> bool:
    """Whether the star door was ever open on ``account`` (shut since or not)."""
    return _last_opening(ledger, account) is not None


def _closed_after(ledger: Ledger, account: str, rowid: int) -> bool:
    return (
        ledger.db.execute(
            "SELECT 1 FROM log WHERE event = ? AND message = ? AND rowid > ?", (DOOR_CLOSED, account, rowid)
        ).fetchone()
        is not None
    )


def close_door(ledger: Ledger, account: str) -> None:
    """The daemon runs with the star door shut: noted once after each opening (its next opening starts afresh)."""
    row = _last_opening(ledger, account)
    if row is not None and not _closed_after(ledger, account, row[0]):
        ledger.log(DOOR_CLOSED, message=account)


def keep_print(ledger: Ledger, where: str, uid: int, key: str, signature: str, words: str, root: int) -> None:
    """``root``: the UID of the baseline draft (flagged when the door opened) this one is a save of."""
    ledger.log(BASELINE_PRINT, message=where, detail=f"{uid}\n{key}\n{signature}\n{words}\n{root}")


def carry(ledger: Ledger, where: str, uid: int) -> None:
    ledger.log(BASELINE_CARRIED, message=where, detail=str(uid))


def prints(ledger: Ledger, account: str, validity: int) -> list[tuple[int, str, str, str, int]]:
    """What the baseline drafts since the door last opened were: (UID, key, signature, words, root UID)."""
    last = _last_opening(ledger, account)
    rows = ledger.db.execute(
        "SELECT detail FROM log WHERE event = ? AND message = ? AND rowid > ?",
        (BASELINE_PRINT, f"{account}:{validity}", last[0] if last else 0),
    )
    found: list[tuple[int, str, str, str, int]] = []
    for (detail,) in rows:
        uid, key, signature, words, root = [*str(detail).split("\n", 4), "", "", "", ""][:5]
        if uid.isdigit():
            found.append((int(uid), key, signature, words, int(root) if root.isdigit() else int(uid)))
    return found


def told_reminders(ledger: Ledger, where: str) -> set[int]:
    """The baseline reminders (root UIDs, ``where``: account and UIDVALIDITY) she was told a new save of."""
    rows = ledger.db.execute("SELECT detail FROM log WHERE event = ? AND message = ?", (REMINDER_TOLD, where))
    return {int(detail) for (detail,) in rows if str(detail).isdigit()}


def tell_reminder(ledger: Ledger, where: str, root: int) -> None:
    ledger.log(REMINDER_TOLD, message=where, detail=str(root))


def _last_opening(ledger: Ledger, account: str) -> tuple[int, str] | None:
    row = ledger.db.execute(
        "SELECT rowid, detail FROM log WHERE event = ? AND message = ? ORDER BY rowid DESC LIMIT 1",
        (DOOR_OPENED, account),
    ).fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


def open_door(ledger: Ledger, account: str, validity: int, flagged: set[int], at: datetime) -> None:
    uids = ",".join(str(u) for u in sorted(flagged))
    ledger.log(DOOR_OPENED, message=account, detail=f"{validity}:{uids}\n{at.isoformat()}")


def cleared(ledger: Ledger, account: str, validity: int) -> set[int]:
    """The UIDs flagged when the door last opened whose flag has been seen off since."""
    last = _last_opening(ledger, account)
    rows = ledger.db.execute(
        "SELECT detail FROM log WHERE event = ? AND message = ? AND rowid > ?",
        (FLAG_CLEARED, f"{account}:{validity}", last[0] if last else 0),
    )
    return {int(detail) for (detail,) in rows}


def clear(ledger: Ledger, account: str, validity: int, uid: int) -> None:
    ledger.log(FLAG_CLEARED, message=f"{account}:{validity}", detail=str(uid))


def told_changed(ledger: Ledger, account: str, validity: int) -> set[int]:
    """The baseline drafts the student was told changed while the agent was stopped (told once each)."""
    rows = ledger.db.execute(
        "SELECT detail FROM log WHERE event = ? AND message = ?", (CHANGED_AWAY, f"{account}:{validity}")
    )
    return {int(detail) for (detail,) in rows}


def tell_changed(ledger: Ledger, account: str, validity: int, uid: int) -> None:
    ledger.log(CHANGED_AWAY, message=f"{account}:{validity}", detail=str(uid))


def waits(ledger: Ledger, where: str) -> dict[int, datetime]:
    """{UID: when first seen flagged} of the drafts waiting out their settle time in ``where`` (account and
    UIDVALIDITY), as the last session left them (``meta``): a restart neither starts a wait again nor shortens it."""
    found: dict[int, datetime] = {}
    for item in (ledger.meta_value(f"{WAITS} {where}") or "").split(","):
        uid, _, when = item.partition("=")
        try:
            found[int(uid)] = datetime.fromisoformat(when)
        except ValueError:
            continue
    return found


def keep_waits(ledger: Ledger, where: str, since: dict[int, datetime]) -> None:
    ledger.set_meta(f"{WAITS} {where}", ",".join(f"{uid}={at.isoformat()}" for uid, at in sorted(since.items())))


def taken_in_since_taking(ledger: Ledger, key: str) -> bool:
    """Whether the intake took this taking's message in (its "seen") after the last taking of ``key`` began: that
    taking's MOVE was done. Its message: a row under ``key`` or a key of its text (``key#…``) with the content the
    taking logged (:data:`TAKING_PRINT`). A row from before the taking is no proof (held, then taken back into Drafts
    with `cancel`, and flagged again), nor another message with its Message-ID."""
    found = ledger.db.execute(
        "SELECT MAX(CASE WHEN event = ? AND message = ? THEN id END), MAX(CASE WHEN event = ? THEN id END) "
        "FROM log WHERE message = ? OR substr(message, 1, ?) = ?",
        (TAKING, key, SEEN, key, len(key) + 1, key + "#"),
    ).fetchone()
    if found[0] is None or (found[1] or 0) <= found[0]:
        return False
    content = taking_print(ledger, key)
    if content is None:  # a taking from before its content was logged
        return True
    variants = ledger.variants_of(key, *OPEN_STATES, DONE, ATTENTION, CANCELLED)
    return any(row is not None and row.fingerprint == content for row in (ledger.get(key), *variants))


def set_aside_since_taking(ledger: Ledger, key: str) -> bool:
    """Whether something under ``key`` (or ``key#…``) was put in Needs attention ("attention") after the last taking of
    it began: with its content found there (the caller looks), the intake set this taking's message aside."""
    found = ledger.db.execute(
        "SELECT MAX(CASE WHEN event = ? AND message = ? THEN id END), MAX(CASE WHEN event = ? THEN id END) "
        "FROM log WHERE message = ? OR substr(message, 1, ?) = ?",
        (TAKING, key, SET_ASIDE, key, len(key) + 1, key + "#"),
    ).fetchone()
    return found[0] is not None and (found[1] or 0) > found[0]


def taking_print(ledger: Ledger, key: str) -> str | None:
    """The content (:func:`agent.rules.envelope.fingerprint`) of the draft the last taking of ``key`` took."""
    found = ledger.db.execute(
        "SELECT detail FROM log WHERE event = ? AND message = ? ORDER BY id DESC LIMIT 1", (TAKING_PRINT, key)
    ).fetchone()
    return str(found[0]) if found and found[0] else None


def taken_since_cancelled(ledger: Ledger, key: str) -> bool:
    """Whether a draft of ``key`` was taken after the message was cancelled (`cancel`, or deleted from Scheduled):
    she flagged it again, and it is on its way once more (under a key of its edited text when she changed it)."""
    found = ledger.db.execute(
        "SELECT MAX(CASE WHEN event = ? THEN id END), MAX(CASE WHEN event = ? THEN id END) FROM log "
        "WHERE message = ? AND event IN (?, ?)",
        (TAKEN, CANCELLED_EVENT, key, TAKEN, CANCELLED_EVENT),
    ).fetchone()
    return found[0] is not None and found[1] is not None and found[0] > found[1]


def taking_pending(ledger: Ledger, key: str) -> bool:
    """Whether the last taking of ``key`` began and was never seen done nor void (:func:`pending_takings`)."""
    found = ledger.db.execute(
        "SELECT MAX(CASE WHEN event = ? THEN id END), MAX(CASE WHEN event IN (?, ?) THEN id END) FROM log "
        "WHERE message = ? AND event IN (?, ?, ?)",
        (TAKING, TAKEN, TAKING_VOID, key, TAKING, TAKEN, TAKING_VOID),
    ).fetchone()
    return found[0] is not None and found[0] > (found[1] or 0)
