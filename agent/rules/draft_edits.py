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
better than a mentor getting the same note twice; so do two short texts (under ``SHORT`` words) with the same
subject that share half the words of the shorter ("Sounds good" and "Sounds great").

Other evidence is kept beside the words (``@``: each attachment's hash; ``s:``: the subject's): a draft with no
readable words (an attachment only, an emoji only) is a copy of one taken unless something tells them apart (their
attachments, none in common; or their bodies and subjects both different): when the agent cannot tell, it does not
send. A text in a charset Python does not know (Outlook's ``windows-874``) is read through its known alias, else
byte by byte: each save of it reads the same.
"""

from __future__ import annotations

import email
import email.policy
import functools
import hashlib
import re
from collections.abc import Iterable
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
_WROTE = re.compile(r"^(on\b.*\bwrote|.*\bschrieb|le .*\ba écrit)\s*:?\s*$", re.IGNORECASE)
# Outlook's quoted message: a rule of underscores, or "-----Original Message-----", above a From:/Sent: block
_QUOTE_START = re.compile(r"^(_{10,}|-{3,}\s*original message\s*-{3,})$", re.IGNORECASE)
_CHARSETS = {"windows-874": "cp874", "x-windows-874": "cp874", "ks_c_5601-1987": "cp949", "x-mac-korean": "cp949"}


@functools.cache
def _word() -> re.Pattern[str]:
    """A word, or one character of a script written without spaces; compiled at the first word print, not at start
    (its Unicode ranges take ~3 ms)."""
    return re.compile(f"[{_UNSPACED}]|[^\\W{_UNSPACED}]+")


def own_lines(text: str) -> str:
    """Her own lines of a draft's text: no quoted lines, no "On ... wrote:" line, no signature."""
    kept: list[str] = []
    for line in text.splitlines():
        if line.rstrip() == "--" or _QUOTE_START.match(line.strip()):
            break  # the signature ("-- ", and clients that drop its space); Outlook's quoted message below a rule
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
        content = _content(part)
        return content if kind == "plain" else html_to_text(content, quotes=True)
    return ""


def _content(part: EmailMessage) -> str:
    """A text part's content; one in a charset Python does not know read through its alias, else as Latin-1 (the
    same bytes always read the same)."""
    try:
        return str(part.get_content())
    except (LookupError, ValueError):
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            return ""
        charset = (part.get_content_charset() or "").lower()
        try:
            return payload.decode(_CHARSETS.get(charset, charset or "ascii"))
        except (LookupError, UnicodeDecodeError):
            return payload.decode("latin-1")


def _evidence(raw: bytes, text: str) -> list[str]:
    """What else tells two drafts apart: each attachment's hash (``@``), the subject's (``s:``), and the whole
    text's (``~``, quotes and all: what an emoji-only draft says)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    tokens = [f"s:{_short(' '.join(str(message.get('subject', '')).lower().split()).encode())}"]
    for part in message.walk():
        if part.is_multipart() or (part.get_content_maintype() == "text" and not part.get_filename()):
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes) and payload:
            tokens.append(f"@{_short(payload)}")
    tokens.append(f"~{_short(' '.join(text.split()).encode())}")
    return tokens


def _short(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:10]


def word_prints(raw: bytes) -> str:
    """The draft's words as short hashes, in order (what the ledger keeps of a taken draft's text)."""
    text = text_of(raw)
    words = _word().findall(own_lines(text).lower())[:MAX_WORDS]
    return " ".join([*(hashlib.sha256(word.encode()).hexdigest()[:5] for word in words), *_evidence(raw, text)])


def _split(prints: str) -> tuple[list[str], set[str], str | None, str | None]:
    """(words, attachments, subject, body) of :func:`word_prints`; rows kept before the evidence have words only."""
    words, attachments, subject, body = [], set(), None, None
    for token in prints.split():
        if token.startswith("@"):
            attachments.add(token)
        elif token.startswith("s:"):
            subject = token
        elif token.startswith("~"):
            body = token
        else:
            words.append(token)
    return words, attachments, subject, body


def is_edit(taken: str, copy: str) -> bool:
    """Whether the draft with the :func:`word_prints` ``copy`` is the taken one or an edit of it (in doubt: yes)."""
    (first, files1, subject1, body1), (second, files2, subject2, body2) = _split(taken), _split(copy)
    if not first or not second:
        if first or second:
            return bool(files1 & files2)  # words on one side only: the same file attached, else two messages
        if files1 and files2:
            return bool(files1 & files2)  # attachments only: the same file is the same message
        # No words either side: a copy unless nothing is shared (neither the text nor the subject)
        return body1 is None or body2 is None or body1 == body2 or subject1 == subject2
    shorter = min(len(first), len(second))
    from difflib import SequenceMatcher  # only when a starred draft looks like one taken today

    matcher = SequenceMatcher(None, first, second, autojunk=False)
    blocks = matcher.get_matching_blocks()
    if shorter < SHORT and subject1 is not None and subject1 == subject2:
        return sum(block.size for block in blocks) * 2 >= shorter  # two short notes, one subject: in doubt, a copy
    # Runs of two words or more: common words scattered through a long text ("the", "I") do not make an edit
    runs = [block.size for block in blocks if block.size >= 2 or shorter < SHORT]
    return sum(runs) >= EDIT_SHARE * shorter


def mostly_same(taken: str, copy: str) -> bool:
    """A stricter :func:`is_edit`, for a draft with other recipients and subject: both have ``SHORT`` words or more,
    and the words they share (in runs of two or more) are at least half of the longer's (a greeting alone is not
    enough, nor a short note that a long message begins with)."""
    first, second = _split(taken)[0], _split(copy)[0]
    if min(len(first), len(second)) < SHORT:
        return False
    from difflib import SequenceMatcher

    blocks = SequenceMatcher(None, first, second, autojunk=False).get_matching_blocks()
    return sum(b.size for b in blocks if b.size >= 2) * 2 >= max(len(first), len(second))


def is_same(taken: str, copy: str) -> bool:
    """Whether the two :func:`word_prints` say the very same (her words, or with none, the whole text)."""
    (first, _, _, body1), (second, _, _, body2) = _split(taken), _split(copy)
    return first == second if first or second else body1 is not None and body1 == body2


def same_subject(taken: str | None, copy: str) -> bool:
    """Whether the two :func:`word_prints` have the same subject (False when one was kept without it)."""
    first, second = _split(taken or "")[2], _split(copy)[2]
    return first is not None and first == second


def mentors_print(mentors: Iterable[str]) -> str:
    """Which mentors (policy ids) a draft goes to: a re-save with the subject fixed or a Cc added still shares it."""
    return "draft-to:" + hashlib.sha256("|".join(sorted(set(mentors))).encode()).hexdigest()[:24]


def signature(envelope: Envelope) -> str:
    """Who a draft goes to and what it is about: what a re-saved copy with a new Message-ID still shares."""
    text = "|".join(sorted(envelope.recipients)) + "\n" + envelope.subject.strip().lower()
    return "draft:" + hashlib.sha256(text.encode()).hexdigest()[:24]
