"""Whether a person's own words say yes: consent only where they say so without negation, condition, question
or hedge, and say nothing else but greetings, thanks and names. Pure.

Errors must be safe (DESIGN.md, "Reading people's words"): a wrong "yes" is worse than an honest "please read",
so every doubt is kept, in words the student can check (``Prose.doubts``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_YES = re.compile(
    r"\b(fine|agreed?|agrees|ok|okay|yes|yep|yeah|sounds? (good|great|fine|reasonable)|good|great|perfect|"
    r"all good|happy with|works for me|works well|looks good|lovely|excellent|accepted?|sure|of course|"
    r"no problem|not a problem|no objections?|reasonable|wonderful)\b|👍",
    re.IGNORECASE,
)
# Idioms that hold a negation word but say yes or nothing: taken out before negations are looked for.
_IDIOMS = re.compile(
    r"\b(no problems?|not a problem|no trouble|no worries|no objections?|no changes?( needed| from me)?|"
    r"nothing to (add|change)|no complaints|never mind)\b",
    re.IGNORECASE,
)
_NEGATION = re.compile(
    r"\b(no|not|nor|never|none|nothing|neither|nope|cannot|disagree\w*|declin\w*|refus\w*|object|objection\w*|"
    r"reject\w*|against|unfortunately|afraid|hesitant|reluctant|uncomfortable|unhappy|unable|impossible|\w+n't)\b"
    r"|👎|✋|🙅|❌|❎|🚫|⛔|🛑|✗|✘|✖|✕|⨯|╳",  # a thumbs down, a raised hand, a cross, a stop sign: a "no"
    re.IGNORECASE,
)
_CONDITION = re.compile(
    r"\b(if|unless|provided|providing|as long as|so long as|on condition|assuming|only if|subject to|pending)\b",
    re.IGNORECASE,
)
_RESERVATION = re.compile(r"\b(but|except|excepting|apart from|although|though|however|only|whereas)\b", re.IGNORECASE)
# Words that put the yes off ("let me think", "discuss first", "for now"): with them, not even a change is hers yet.
_DEFERRAL = re.compile(
    r"\b(talk|discuss\w*|think\w*|consider\w*|later|first|maybe|perhaps|probably|possibly|in principle|for now|"
    r"for the moment|wait|check|let me|get back|come back|revisit|chat|call|depend\w*|unsure|tentative\w*|tbd|"
    r"hmm+|kind of|sort of|would|could|might|seems?|ish)\b",
    re.IGNORECASE,
)
_HEDGE = re.compile(
    _DEFERRAL.pattern[:-3] + r"|mostly|almost|largely|generally|broadly|roughly|more or less|prefer\w*|rather|"
    r"instead|chang\w+|adjust\w*|tweak\w*|suggest\w*|though)\b",
    re.IGNORECASE,
)
_NEUTRAL = re.compile(
    r"^\W*(hi|hello|hey|dear|good (morning|afternoon|evening)|thanks|thank you|many thanks|thx|cheers|best|"
    r"kind regards|warm regards|regards|best wishes|all the best|yours|sincerely|warmly|sorry|apologies|hope|"
    r"have a (good|great|nice|lovely)|enjoy|see you|looking forward|take care|with thanks)\b",
    re.IGNORECASE,
)
_NAME = re.compile(r"^\W*((Dr|Prof|Mr|Ms|Mrs|Mx)\.?\s+)?([A-Z][\w'’-]*\.?\s*){1,3}(,\s*[A-Z]{2,5})?\W*$")
_SENTENCE_END = re.compile(r"(?<=[.!;])\s+|\s+[—–]\s+|\n")


def _found(pattern: re.Pattern[str], text: str) -> list[str]:
    return sorted({m.group(0).lower() for m in pattern.finditer(text)})


@dataclass(frozen=True)
class Prose:
    """What the words around any values say."""

    says_yes: bool
    negations: tuple[str, ...]
    questions: bool
    conditions: tuple[str, ...]  # "if", "unless", "provided": a yes that waits on something
    reservations: tuple[str, ...]  # "but", "except": a yes with a change to come
    hedges: tuple[str, ...]  # "talk", "think", "mostly", "prefer": not (yet) a yes
    other: tuple[str, ...]  # sentences that are neither a yes nor a greeting, thanks or a name
    deferrals: tuple[str, ...] = ()  # "think", "discuss", "first", "the rest": the yes is put off
    other_beside: tuple[str, ...] = ()  # sentences beside changed values that say more than "with these changes"

    @property
    def consents(self) -> bool:
        """Her words say yes, and nothing that doubts it."""
        return self.says_yes and not self.doubts

    @property
    def doubts(self) -> list[str]:
        """Why it is not a plain yes, in words the student can check against her answer."""
        said = []
        if self.negations:
            said.append("a negation (" + ", ".join(f"“{w}”" for w in self.negations) + ")")
        if self.questions:
            said.append("a question")
        if self.conditions or self.reservations:
            said.append("a condition (" + ", ".join(f"“{w}”" for w in self.conditions + self.reservations) + ")")
        if self.hedges:
            said.append("a reservation (" + ", ".join(f"“{w}”" for w in self.hedges) + ")")
        if self.other:
            said.append("words that are not a yes (" + ", ".join(f"“{s}”" for s in self.other[:2]) + ")")
        return said

    @property
    def change_doubts(self) -> list[str]:
        """Why changed values cannot be taken as agreed: a refusal, a question, a condition."""
        plain = Prose(False, self.negations, self.questions, self.conditions, (), self.deferrals, self.other_beside)
        return plain.doubts

    @property
    def allows_changes(self) -> bool:
        """Words that may stand around changed values: a yes to the rest, or only greetings, thanks and names; no
        refusal, question, condition or putting off ("fine, but 7. 45 minutes" is a change; "if", "unless", "not",
        "?", "let me think about the rest" make it hers to explain, for the student to read)."""
        return not self.change_doubts


# The words a yes, thanks or an apology is said with; a sentence with any other word says something more
# ("OK, weekly meetings please"), which is for the student to read.
_FILLER_WORDS = """a about absolutely again ahead all also am and are as at be being both but by clearly completely
    dear do does entirely p ps everything for from go good great had happy have hello here hi i i'm im in is it it's
    its just kind lovely me much my nice note now of oh on once our out proposal proposed put quite really
    reply s see set setting so standards suggested that that's the terms thank thanks these this
    thoughtful to together totally us very was we well what will with works would written you your yours
    looks sounds late delay slow message email e-mail mail note list plan points lines
    rules agreement wonderful excellent perfect fine ok okay yes agreed agree sure course problem"""
# Wishes said with thanks: "have a good weekend", "enjoy your day".
_WISHES = re.compile(
    r"\b(have a|had a|enjoy (the|your))\s+((good|great|nice|lovely|restful)\s+)?(day|weekend|evening|week)\b",
    re.IGNORECASE,
)
_FILLER = frozenset(_FILLER_WORDS.split())
_WORD = re.compile(r"[a-z][a-z'-]*", re.IGNORECASE)


# Beside changed values she may also say they are changes: "Fine, with these changes:", "mostly fine, except".
_BESIDE_WORDS = """but except apart only mostly these this following below change changes changed small minor few
    one two tweak tweaks adjustment adjustments edit edits rest otherwise else remaining others other please of"""
_BESIDE_CHANGES = frozenset(_BESIDE_WORDS.split())
_TITLE_WORDS = "dr prof professor mr ms mrs mx md phd mbbs frcp mph msc bsc rn"
_TITLES = frozenset(_TITLE_WORDS.split())
# The letters of a degree or a fellowship after her name, written in capitals ("Ana Rivera, FACP").
_DEGREES = frozenset(
    "do facp facs faap facc facog frcs frcpc mrcp dnp np pa pharmd dds dmd mba ma ba bs jd".split()  # noqa: SIM905
)


def _name(sentence: str, names: frozenset[str]) -> bool:
    """Her name, the student's or a title of theirs ("Ana", "Dr. Ana Rivera, MD"): only names that are known."""
    if not _NAME.match(sentence):
        return False
    words = re.findall(r"[^\W\d_][\w'’-]*", sentence)
    initials = {name[0] for name in names}
    known = [w.lower() in names or w.lower() in _TITLES or (len(w) == 1 and w.lower() in initials) for w in words]
    return bool(words) and all(known)


def _plain(sentence: str, names: frozenset[str], also: frozenset[str] = frozenset()) -> bool:
    """A yes, a greeting, thanks, an apology or a known name, said with no other words; or no words at all."""
    if not re.search(r"\w", sentence):
        return not re.search(r"[^\s.,;:!\-—–)(]", sentence)  # "✗", "?" say something
    if _name(sentence, names):
        return True
    rest = _NEUTRAL.sub(" ", _YES.sub(" ", _WISHES.sub(" ", sentence)))
    said = all(w.lower() in _FILLER or w.lower() in names or w.lower() in also for w in _WORD.findall(rest))
    return said and bool(also or _YES.search(sentence) or _NEUTRAL.match(sentence))


def signature_name(line: str) -> bool:
    """A line that may be her name under her words ("Ana", "Ana Ríos-Müller", "Dr. A. Rivera, MD"): one to three
    capitalised words and nothing else."""
    return bool(_NAME.match(line)) and not re.search(r"\d|[!?]", line) and not _YES.search(line)


def signed_with(line: str, names: Iterable[str]) -> bool:
    """Whether ``line`` is her name under her words: it looks like a name (:func:`signature_name`), holds a word of
    one of ``names`` (hers, the student's) and is made only of such words, titles, initials and the letters of a
    degree ("Ana", "Dr. A. Rivera, MD", "Ana Rivera, FACP"). A name the agent does not know ("Ana Ríos-Müller")
    is not taken for hers: "Ana Objects.", "Ana Não" or "Rivera, NAY" under "Fine." are words she said."""
    if not signature_name(line):
        return False
    known = name_words(names)
    initials = {name[0] for name in known}
    words = re.findall(r"[^\W\d_][\w'’-]*", line)

    def named(word: str) -> bool:
        lower = word.lower()
        degree = word.isupper() and lower in _DEGREES
        return lower in known or lower in _TITLES or (len(word) == 1 and lower in initials) or degree

    said = read_prose(line, names)
    quiet = not (said.negations or said.conditions or said.reservations or said.hedges or said.deferrals)
    return any(w.lower() in known for w in words) and all(named(w) for w in words) and quiet


def name_words(names: Iterable[str]) -> frozenset[str]:
    """The words of people's names ("Dr. Ana Rivera", "Sam Patel"), as they may be said in a thank-you."""
    return frozenset(w.lower() for name in names for w in _WORD.findall(name) if len(w) > 2 or w.isupper())


def read_prose(text: str, names: Iterable[str] = ()) -> Prose:
    """What ``text`` (her own words, values taken out) says; ``names`` (hers, the student's) may be said too."""
    known = name_words(names)
    text = text.replace("’", "'")
    unidiomatic = _IDIOMS.sub(" ", text)
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip(" \t.,;:!-—–")]
    other = tuple(s[:60] for s in sentences if not _plain(s, known))
    beside = tuple(s[:60] for s in sentences if not _plain(s, known, _BESIDE_CHANGES))
    return Prose(
        says_yes=bool(_YES.search(text)),
        negations=tuple(_found(_NEGATION, unidiomatic)),
        questions="?" in text,
        conditions=tuple(_found(_CONDITION, text)),
        reservations=tuple(_found(_RESERVATION, text)),
        hedges=tuple(_found(_HEDGE, text)),
        other=other,
        deferrals=tuple(_found(_DEFERRAL, text)),
        other_beside=beside,
    )
