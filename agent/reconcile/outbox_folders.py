"""At the start of a session: the folders the agent takes mail from are the student's own, and only those.

Never a provider's own Outbox (Outlook parks mail there while it sends), and never the old default "Outbox" unless
the agent itself took the message in from there (issue 20: mail the student never handed over is never sent).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace

from agent.config.settings import LEGACY_OUTBOX, Folders
from agent.errors import Problem, UserError
from agent.mail.port import ResolvedFolders
from agent.reconcile.context import World
from agent.rules.envelope import fingerprint, is_keyed
from agent.store.ledger import CANCELLED, Ledger, Row

log = logging.getLogger("mentor_agent.intake")


async def settle_folders(
    world: World, config_file: str, listed: dict[str, frozenset[str]] | None = None
) -> dict[str, frozenset[str]]:
    """At the start of a session: never watch a provider's own folder; bring an old default Outbox along.

    - A Sent folder the server does not mark ``\\Sent`` and the config does not name (the agent took the one folder
      named as a Sent folder is in another language, or made "Sent"): the student is told once (:func:`tell_sent`).
    - An Outbox that is the provider's own (Outlook's, where Outlook parks mail while it sends) is refused:
      the agent would send what Outlook is about to send. A clear error naming ``imap.folders.outbox``.
    - The default outbox was "Outbox" up to 0.1.0 and is "Mentor Outbox" now. Mail is only ever taken from a folder
      the student handed over: of what sits in "Outbox", only the messages the ledger itself took in from there
      (under the old default, not sent yet) are moved to the new folder, with a notice. Anything else there is
      never touched, whatever the ledger holds: the student is told once (kept in the ledger, across restarts)
      how to move it herself. Outlook's own Outbox is never touched.

    ``listed``: the folders as the session's start found them (:func:`agent.daemon.session.connect_listed`), else
    one LIST is read. Returns them: the drafts door finds its folder there (issue 21: no round trip before the
    first send that the first decision does not need).
    """
    names = await world.imap(world.mailbox.folder_list) if listed is None else listed  # one LIST for both looks
    await _settle(world, config_file, names)
    await tell_sent(world, config_file)
    return names


async def _settle(world: World, config_file: str, names: dict[str, frozenset[str]]) -> None:
    folders = world.folders
    why = await world.imap(world.mailbox.providers_own, folders.outbox, names)
    if why is not None:
        raise UserError(
            [
                Problem(
                    file=config_file,
                    key="imap.folders.outbox",
                    message=f"{folders.outbox!r} cannot be mentor-agent's outbox: {why}. Choose a folder of your own, "
                    f'e.g. outbox = "{Folders().outbox}" under [imap.folders]',
                )
            ]
        )
    if "outbox" in world.settings.imap.folders.model_fields_set or folders.outbox == LEGACY_OUTBOX:
        return
    ledger = world.ledger
    taken = ledger.in_folder(LEGACY_OUTBOX)  # what the agent took in there itself, watching the old default
    waiting = await world.imap(world.mailbox.count, LEGACY_OUTBOX) if LEGACY_OUTBOX in names else 0  # STATUS
    if not waiting:
        _gone(world, list(taken.values()))
        return
    own = await world.imap(world.mailbox.providers_own, LEGACY_OUTBOX)  # Outlook's Outbox is never selected
    if own is None and taken:
        await _bring_along(world, config_file, taken)
        waiting = await world.imap(world.mailbox.count, LEGACY_OUTBOX)
        if not waiting:
            return
    if ledger.meta_value(LEGACY_TOLD) is not None:
        return
    whose = f" ({own})" if own else ""
    with ledger.transaction():  # owed and marked told at once: a stop anywhere tells her once, never twice or never
        notice = world.owe(
            f"mentor-agent watches “{folders.outbox}”, not “{LEGACY_OUTBOX}”",
            [
                f"“{LEGACY_OUTBOX}” holds {waiting} message(s){whose}; mentor-agent does not take mail from it.",
                f"If any of them are meant for mentor-agent, move them into “{folders.outbox}”.",
            ],
        )
        ledger.set_meta(LEGACY_TOLD, str(waiting))
    await world.tell(notice)


LEGACY_TOLD = "legacy_outbox_told"  # meta key: the student was told that mail in "Outbox" is not taken


async def _bring_along(world: World, config_file: str, taken: dict[int, Row]) -> None:
    """Move the messages the ledger took in from the old default "Outbox" (and no other) to the outbox now watched:
    their rows follow them, so that the intake there knows them as the same messages."""
    folders = world.folders
    ledger = world.ledger
    # Each UID is checked before the move: the student may have deleted "Outbox" (and the message) and made a new
    # one, where a message never handed over has the same UID now (a new UIDVALIDITY).
    there = await world.imap(world.mailbox.fetch_many, LEGACY_OUTBOX, sorted(taken))
    same = {uid for uid, raw in there.items() if uid in taken and _is(raw, taken[uid])}
    _gone(world, [row for uid, row in taken.items() if uid not in same])
    taken = {uid: row for uid, row in taken.items() if uid in same}
    moved = await world.imap(world.mailbox.move_many, LEGACY_OUTBOX, sorted(taken), folders.outbox) if taken else {}
    with ledger.transaction():
        for old_uid, row in taken.items():
            if old_uid in moved:
                ledger.update(row.key, folder=folders.outbox, uid=moved[old_uid])
    if not moved:
        return
    log.info("moved %d message(s) from the old default outbox %r to %r", len(moved), LEGACY_OUTBOX, folders.outbox)
    await world.notify(
        f"Your outbox is now “{folders.outbox}”",
        [
            f"mentor-agent now watches “{folders.outbox}” instead of “{LEGACY_OUTBOX}” (a name Outlook uses for "
            f"its own Outbox). The {len(moved)} message(s) it had taken in from “{LEGACY_OUTBOX}” were moved there "
            "and go out as before.",
            f"From now on drop messages into “{folders.outbox}”. To keep the old name, set outbox = "
            f'"{LEGACY_OUTBOX}" under [imap.folders] in {config_file or "the config file"}.',
        ],
    )


def _is(raw: bytes, row: Row) -> bool:
    """Whether this is the message ``row`` was taken in as (its key, and its content where known)."""
    return is_keyed(raw, row.key) and (not row.fingerprint or fingerprint(raw) == row.fingerprint)


def _gone(world: World, rows: list[Row]) -> None:
    """Rows of the old default "Outbox" whose message is no longer there: deleted by the student (with the folder),
    or moved by a start that was killed before it updated the ledger. Never looked for by UID again: a message
    that is in the watched outbox now is taken in there afresh, once."""
    if not rows:
        return
    with world.ledger.transaction():
        for row in rows:
            world.ledger.update(row.key, state=CANCELLED, detail=f"no longer in “{LEGACY_OUTBOX}”")
            world.ledger.log("cancelled", mentor=row.mentor, message=row.key, detail=f"gone from {LEGACY_OUTBOX}")
    for row in rows:
        log.info("%s: no longer in the old default outbox %r", row.key, LEGACY_OUTBOX)


SENT_MADE = "sent_folder_made"  # meta key: the Sent folder the agent made (none was found), kept once it is made


def remember_made(ledger: Ledger, folders: ResolvedFolders) -> None:
    """Right after the start made Sent: she is told even if this start stops before :func:`tell_sent` (the next one
    finds the folder by its name)."""
    if folders.sent_found == "created":
        ledger.set_meta(SENT_MADE, folders.sent)


SENT_TOLD = "sent_folder_told"  # meta key: what the student was last told of her Sent folder ("several:Sent:Gesendet")

_CERTAIN = {
    "config": "your config file names it",
    "special-use": "your mail server marks it as the Sent folder",
    "name": "it is now the one folder named like a Sent folder",
}


async def tell_sent(world: World, config_file: str) -> None:
    """Tell the student (a notice, a log warning) when her Sent folder is not known for sure: neither marked ``\\Sent``
    by the server nor named in the config (a folder named like one in another language or case, the likeliest of
    several, or "Sent" made). The mail she sends from other programs (her phone) counts toward a mentor's limits only
    if the agent reads the folder they file it in. Told once, and again whenever that changes: another folder taken,
    another look-alike beside it, or a sure one instead of what she was told."""
    folders = world.folders
    if folders.sent_found == "name" and world.ledger.meta_value(SENT_MADE) == folders.sent:
        folders = replace(folders, sent_found="created")  # the agent's own: made at a start that stopped untold
    told = world.ledger.meta_value(SENT_TOLD)
    now = f"{folders.sent_found}:{folders.sent}:{'|'.join(folders.sent_like)}"
    if told == now:
        return
    where = config_file or "the config file"
    setting = f'sent = "<your Sent folder>" under [imap.folders] in {where}'
    like = ", ".join(f"“{name}”" for name in folders.sent_like)
    if folders.sent_found in _CERTAIN:
        before = told.split(":", 2)[1] if told else None
        if before is None or before == folders.sent:
            return  # nothing was said, or it was said of this folder
        why = _CERTAIN[folders.sent_found]
        log.warning("the Sent folder is %r now (%s)", folders.sent, why)
        title = f"mentor-agent files the mail it sends in “{folders.sent}” now"
        lines = [
            f"mentor-agent took “{before}” as your Sent folder before. Now it files the mail it sends in "
            f"“{folders.sent}”, and counts the mail you send from other programs from there: {why}."
        ]
    elif folders.sent_found == "localized":
        log.warning(
            "taking %r as the Sent folder: named as one, not marked \\Sent (else set imap.folders.sent)", folders.sent
        )
        title = f"mentor-agent takes “{folders.sent}” as your Sent folder"
        lines = [
            f"Your mail server marks no folder as the Sent folder; “{folders.sent}” is named like one, so mentor-agent "
            "files the mail it sends there, and counts the mail you send from other programs (your phone) from there.",
            f"If that is not your Sent folder, set {setting}.",
        ]
    elif folders.sent_found == "several":
        log.warning(
            "taking %r as the Sent folder, of several named like one (also %s; none marked \\Sent): set "
            "imap.folders.sent",
            folders.sent,
            like,
        )
        title = f"mentor-agent takes “{folders.sent}” as your Sent folder, of several"
        lines = [
            f"Your mail server marks no folder as the Sent folder, and several are named like one: “{folders.sent}”, "
            f"{like}. mentor-agent files the mail it sends in “{folders.sent}”, and counts the mail you send from "
            "other programs (your phone) from all of them (it only reads the others).",
            f"If your Sent folder is {like}, set {setting}.",
        ]
    else:
        log.warning("no Sent folder found (none marked \\Sent, none by its name): made %r", folders.sent)
        title = f"mentor-agent files the mail it sends in “{folders.sent}”"
        lines = [
            f"Your mail server marks no folder as the Sent folder, so mentor-agent made “{folders.sent}” and files "
            "the mail it sends there.",
            "Mail you send from other programs (your phone) counts toward your mentors' limits only if mentor-agent "
            f"reads the folder those programs file it in: set {setting}.",
        ]
    # What she is told of, from what she was told last: found again after a lost answer, not told twice
    made = "sent-folder-" + hashlib.sha256(f"{told}\n{now}".encode()).hexdigest()[:24]
    if await world.notify_once(title, lines, made):
        world.ledger.set_meta(SENT_TOLD, now)
