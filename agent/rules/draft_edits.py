"""Whether a draft is an edit of one taken before: the star door's test for a copy that "came back".

A compose window still open after the agent took its draft saves it again, often with a line added or changed,
sometimes with a new Message-ID; a second message to the same mentor may have the same subject. Both are told
apart by their text: the words of each (plain part, or the HTML part read as text; quoted lines and case aside),
kept as short hashes (the ledger keeps no text of hers), compared as sequences. Quoted lines (``>``), the
"On ... wrote:" line above them and the signature (from a ``--`` line on) are not her message's words; in scripts
written without spaces (Chinese, Japanese, Thai, ...) each character counts as a word. A copy is an edit when at least
``EDIT_SHARE`` of the words of the shorter of the two stand, in order and in runs of two words or more, in the
other: a re-save with a sentence
added, removed or reworded keeps most of them; two messages that share only a greeting and a signature do not
(tests/test_star_door_copies.py holds examples either side). Two very short texts that say nearly the same
("10 minutes late" and "20 minutes late") count as an edit: the student is told and sends it herself, which is
better than a mentor getting the same note twice. Two texts with no words at all (an encrypted draft, an empty
one) are never an edit of each other: nothing says they are the same.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
from email.message import EmailMessage, Message

from agent.rules.envelope import Envelope
from agent.rules.htmltext import html_to_text

EDIT_SHARE = 0.6
SHORT = 8  # words: a text this short is compared word by word
MAX_WORDS = 3000  # a longer draft is compared by its first words
_UNSPACED = (
    "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3100-\u312f\u31f0-\u31ff\u3400-\u4dbf"
    "\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f"
)  # Thai, Lao, Myanmar, Khmer, kana, bopomofo, CJK ideographs, Hangul, half-width kana
_WORD = re.compile(f"[{_UNSPACED}]|[^\\W{_UNSPACED}]+")
_WROTE = re.compile(r"^(on\b.*\bwrote|.*\bschrieb|le .*\ba écrit)\s*:?\s*$", re.IGNORECASE)


def own_lines(text: str) -> str:
    """Her own lines of a draft's text: no quoted lines, no "On ... wrote:" line, no signature."""
    kept: list[str] = []
    for line in text.splitlines():
        if line.rstrip() == "--":
            break  # the signature ("-- ", and clients that drop its space)
        if line.lstrip().startswith(">") or _WROTE.match(line.strip()):
            continue
        kept.append(line)
    return "\n".join(kept)


def text_of(raw: bytes) -> str:
    """A draft's readable text: its plain part, else its HTML part read as text ("" when it has neither)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    for kind in ("plain", "html"):
        part: Message | None = message.get_body(preferencelist=(kind,))
        if not isinstance(part, EmailMessage) or part.get_content_type() != f"text/{kind}":
            continue
        try:
            content = str(part.get_content())
        except (LookupError, ValueError):
            continue
        return content if kind == "plain" else html_to_text(content)
    return ""


def word_prints(raw: bytes) -> str:
    """The draft's words as short hashes, in order (what the ledger keeps of a taken draft's text)."""
    words = _WORD.findall(own_lines(text_of(raw)).lower())[:MAX_WORDS]
    return " ".join(hashlib.sha256(word.encode()).hexdigest()[:5] for word in words)


def is_edit(taken: str, copy: str) -> bool:
    """Whether the draft with the :func:`word_prints` ``copy`` is the taken one or an edit of it."""
    first, second = taken.split(), copy.split()
    if not first or not second:
        return False  # no words on one side (or both): nothing says they are the same
    shorter = min(len(first), len(second))
    from difflib import SequenceMatcher  # only when a starred draft looks like one taken today

    matcher = SequenceMatcher(None, first, second, autojunk=False)
    # Runs of two words or more: common words scattered through a long text ("the", "I") do not make an edit
    runs = [block.size for block in matcher.get_matching_blocks() if block.size >= 2 or shorter < SHORT]
    return sum(runs) >= EDIT_SHARE * shorter


def signature(envelope: Envelope) -> str:
    """Who a draft goes to and what it is about: what a re-saved copy with a new Message-ID still shares."""
    text = "|".join(sorted(envelope.recipients)) + "\n" + envelope.subject.strip().lower()
    return "draft:" + hashlib.sha256(text.encode()).hexdigest()[:24]
