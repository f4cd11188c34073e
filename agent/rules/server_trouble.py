"""A server that logs the agent in but refuses what it asks "for now" (RFC 5530: ``[UNAVAILABLE]``,
``[SERVERBUG]``, … to the STATUS or CREATE of the start's folder check) is its own trouble, not her settings: the
daemon tries again, waiting longer each time (:mod:`agent.daemon.reconnect`), for as long as it lasts.

Nothing is read or sent meanwhile, so once it has lasted :data:`TELL_AFTER` she is told, by a notice in INBOX
over the very session that was refused (its login worked), once per spell; and told again when it works. A
:class:`Spell` is that state, kept in the ledger (:func:`to_text`, :func:`from_text`): a restart mid-spell goes on
with it, so she is neither told twice nor left without the word that it works again.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

TELL_AFTER = timedelta(minutes=30)
VARIABLE = "MENTOR_AGENT_TROUBLE_TOLD_AFTER"  # tests only: seconds instead of TELL_AFTER


def tell_after() -> timedelta:
    try:
        return timedelta(seconds=float(os.environ[VARIABLE]))
    except (KeyError, ValueError):
        return TELL_AFTER


@dataclass(frozen=True)
class Spell:
    """Since when the server has refused for now (and when last), how often, its last words, and whether she was
    told."""

    since: datetime
    tries: int
    words: str
    told: bool = False
    last: datetime | None = None  # the last refusal (None: kept by a version that did not keep it: ``since``)

    def due(self, now: datetime) -> bool:
        """Whether she should be told now (once it has lasted :func:`tell_after`, and only once)."""
        return not self.told and now - self.since >= tell_after()

    def lasted(self) -> bool:
        """Whether the refusals spanned long enough to be told of (told or not): from the first to the last, never
        the time the daemon was stopped after them."""
        return (self.last or self.since) - self.since >= tell_after()


GAP = timedelta(minutes=15)  # refusals further apart than this (the daemon stopped meanwhile) start a new spell


def failed(spell: Spell | None, now: datetime, words: str) -> Spell:
    """One more try refused for now. After a gap (no try for :data:`GAP`: the daemon was stopped, say) the spell
    starts again from now; a notice she had stays told (no second one before the notice that it works again)."""
    if spell is None:
        return Spell(since=now, tries=1, words=words, last=now)
    if now - (spell.last or spell.since) > GAP:
        return Spell(since=now, tries=1, words=words, told=spell.told, last=now)
    return replace(spell, tries=spell.tries + 1, words=words, last=now)


def to_text(spell: Spell) -> str:
    return json.dumps(
        {
            "since": spell.since.isoformat(),
            "tries": spell.tries,
            "words": spell.words,
            "told": spell.told,
            "last": (spell.last or spell.since).isoformat(),
        }
    )


def from_text(text: str | None) -> Spell | None:
    """A spell :func:`to_text` kept; None for none (or one that cannot be read: a new spell starts)."""
    if not text:
        return None
    try:
        kept = json.loads(text)
        since = datetime.fromisoformat(kept["since"])
        last = datetime.fromisoformat(kept["last"]) if kept.get("last") else since
        return Spell(since, int(kept["tries"]), str(kept["words"]), bool(kept["told"]), last)
    except (ValueError, KeyError, TypeError):
        return None
