"""Drafts in the Outbox still being typed (the label door): Gmail shows a draft labelled "Mentor Outbox" in the
compose window in the Outbox at once, with ``\\Draft``, and saves it again every few seconds while she types (each
save a new UID, sometimes a new Message-ID).

- Such a message is taken by the intake only once it has stood unchanged (the same UID) for ``[drafts] settle``
  (when its wait began is kept in the ledger, across restarts).
- Of several saves of one draft (the same Message-ID; the same recipients and subject when it has none) only the
  newest counts: the older ones are set aside (Needs attention, with a notice), never sent as a second e-mail. Two
  drafts with their own Message-IDs are two messages, whatever their subjects (Gmail itself replaces a save that
  got a new Message-ID, so no older one is left in the Outbox).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from agent.mail.port import HeaderInfo
from agent.reconcile.context import World
from agent.rules.draft_edits import signature
from agent.rules.envelope import parse_envelope
from agent.store import taken_drafts

DRAFT = "\\Draft"


def settled(
    world: World, validity: int, infos: Sequence[HeaderInfo]
) -> tuple[list[HeaderInfo], list[HeaderInfo], datetime | None]:
    """Of the messages new in the Outbox (whose UIDVALIDITY is ``validity``): those to take now, the older saves to
    set aside, and when the next draft still waiting will have settled (None: none waits). When each wait began is
    kept in the ledger: a restart neither starts it again nor shortens it."""
    now = world.now()
    settle = timedelta(seconds=world.settings.drafts.settle)
    drafts = [info for info in infos if DRAFT in info.flags]
    seen = world.outbox_drafts
    where = f"{world.folders.outbox}:{validity}"
    if not seen and drafts:  # a new session: the waits the last one left
        seen |= taken_drafts.waits(world.ledger, where)
    before = dict(seen)
    for uid in [uid for uid in seen if uid not in {info.uid for info in drafts}]:
        del seen[uid]  # taken, or saved again (a new UID) meanwhile
    newest: dict[str, HeaderInfo] = {}
    for info in sorted(drafts, key=lambda i: i.uid):
        envelope = parse_envelope(info.headers)
        newest[envelope.message_id or signature(envelope)] = info
    keep = {info.uid for info in newest.values()}
    older = [info for info in drafts if info.uid not in keep]
    waiting: set[int] = set()
    wake: datetime | None = None
    for info in newest.values():
        since = seen.setdefault(info.uid, now)
        if now - since < settle:
            waiting.add(info.uid)
            if wake is None or since + settle < wake:
                wake = since + settle
    take = [info for info in infos if info.uid not in waiting and info not in older]
    if seen != before:
        taken_drafts.keep_waits(world.ledger, where, {uid: at for uid, at in seen.items() if uid in waiting})
    return take, older, wake
