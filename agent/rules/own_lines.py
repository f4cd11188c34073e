"""The lines a person wrote herself in a reply: what her mail program quoted, its header, her signature and
"Sent from my iPhone" go. Pure.

The usual styles: ``>`` quoting (Gmail, Apple Mail, Thunderbird, and HTML ``<blockquote>`` read as such),
a quote header "On … wrote:" (one line or wrapped over two; before ``>`` lines she may answer inline, so
reading goes on), Outlook's "-----Original Message-----", its rule of underscores and its "From: … Sent: …"
block (the original follows unquoted: reading stops; a sentence "From: next month …" is hers). After ``--`` or
a closing ("Best," "Kind regards,") only a signature may follow (names and titles, telephone, address, e-mail,
a legal notice); a P.S. or any sentence there is her words again, and read. "Sent from my iPhone" goes, "Sent
from my phone but I can't do Thursdays" is hers. An own line right after a quoted numbered line
(`` > 7. A meeting lasts: 1 hour``) answers that line: ``about`` says which.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from email.message import EmailMessage, Message

from agent.rules.htmltext import html_to_text

_HEADER = re.compile(
    r"^\s*(On\b.*\bwrote:?|Le\b.*\ba écrit\s*:|Am\b.*\bschrieb.*:|El\b.*\bescribió:?)\s*$", re.IGNORECASE
)
# A quote header names a date (a year or a time) or an address, or ``>`` lines follow it: "On 8, please note
# what Sam wrote:" followed by her own lines is hers.
_DATED = re.compile(r"\d{4}|\d{1,2}:\d{2}|@")
_STOP = re.compile(
    r"^\s*(-+\s*Original Message\s*-+|_{8,}|Begin forwarded message:?|-+\s*Forwarded message\s*-+)\s*$",
    re.IGNORECASE,
)
# Outlook's header block of the original: "From: …" with an address, or followed by "Sent:", "To:", "Subject:"
_FROM = re.compile(r"^\s*(From|Von|De)\s?:\s.*$", re.IGNORECASE)
_HEADER_FIELD = re.compile(
    r"^\s*(Sent|Date|To|Cc|Subject|Gesendet|Datum|An|Betreff|Envoyé|À|Objet|Enviado|Para|Asunto)\s?:", re.IGNORECASE
)
_MOBILE = re.compile(
    r"^\s*(Sent from my \w+.*|Sent from (Mail|Outlook|Yahoo Mail|Gmail)\b.*|Get Outlook for \w+.*|"
    r"Sent via .*|Envoyé de mon \w+.*|Von meinem \w+ gesendet.*)\s*$",
    re.IGNORECASE,
)
_SIGNATURE = re.compile(r"^(--|-- |__)\s*$")
# What a signature holds: names and titles (capitalised words), telephone, address, e-mail, web lines; a P.S., a
# question, a numbered value or a sentence in lower case are her words and are read.
_SAYS = re.compile(
    r"^\W*p\.?\s?s\b|\?|^\s*\d{1,2}\s*[.):]\s+\D|\b(not|no|never|cannot|can't|won't|but)\b", re.IGNORECASE
)
_CONTACT = re.compile(r"@|https?://|www\.|^\W*(tel|phone|mobile|mob|cell|fax|pager|bleep|ext|office)\b", re.IGNORECASE)
_SMALL = "of and for the at in on de la le du van von der den und y e & she her he him they them"
_SMALL_WORDS = frozenset(_SMALL.split())
_DISCLAIMER = re.compile(
    r"confidential|intended recipient|privileged|disclaimer|\bvirus|unauthori[sz]ed", re.IGNORECASE
)
_CLOSING = re.compile(
    r"^\s*(best|best wishes|all the best|kind regards|warm regards|warmest regards|regards|many thanks|thanks|"
    r"thank you|thanks again|cheers|warmly|sincerely|yours|yours sincerely|with best wishes|take care)[,.!]?\s*$",
    re.IGNORECASE,
)
_QUOTED_STANDARD = re.compile(r"^\s*>[>\s]*(\d{1,2})\s*[.):]\s+\S")


@dataclass(frozen=True)
class OwnLine:
    text: str
    about: int | None = None  # the number of the quoted numbered line this one answers (inline), if any
    signature: bool = False  # her closing ("Best,") and what follows it: her name, title, telephone


def _quote_header(lines: list[str], index: int) -> int:
    """How many lines the quote header at ``index`` takes (0: none there): Gmail wraps long ones in two."""
    size = 0
    if _HEADER.match(lines[index]):
        size = 1
    elif index + 1 < len(lines) and lines[index].strip().lower().startswith(("on ", "am ", "le ")):
        size = 2 if _HEADER.match(lines[index].rstrip() + " " + lines[index + 1].strip()) else 0
    if size and not _DATED.search(" ".join(lines[index : index + size])) and not _quote_follows(lines, index + size):
        return 0
    return size


def _signature_like(line: str) -> bool:
    """Whether a line after her closing is her signature rather than more words of hers."""
    if not line.strip() or _CONTACT.search(line):
        return True
    if _SAYS.search(line):
        return False
    words = re.findall(r"[^\W\d_][\w'’.-]*", line)
    return len(words) <= 8 and all(w[0].isupper() or w.lower() in _SMALL_WORDS for w in words)


def _original_header(lines: list[str], index: int) -> bool:
    """Whether "From: …" at ``index`` begins the original's header block (not her sentence "From: next month …")."""
    if not _FROM.match(lines[index]):
        return False
    following = [line for line in lines[index + 1 : index + 6] if line.strip()][:3]
    return "@" in lines[index] or any(_HEADER_FIELD.match(line) for line in following)


def _disclaimer(lines: list[str], index: int) -> bool:
    """Whether the paragraph from ``index`` is a legal notice ("This e-mail is confidential …")."""
    end = next((i for i in range(index, len(lines)) if not lines[i].strip()), len(lines))
    return bool(_DISCLAIMER.search(" ".join(lines[index:end])))


def _mobile(line: str) -> bool:
    """ "Sent from my iPhone" and nothing more ("Sent from my phone but I can't do Thursdays" is hers)."""
    return bool(_MOBILE.match(line)) and not _SAYS.search(line) and len(line.split()) <= 7 and "," not in line


def _quote_follows(lines: list[str], index: int) -> bool:
    following = next((line for line in lines[index:] if line.strip()), "")
    return following.lstrip().startswith(">")


def own_lines(text: str) -> list[OwnLine]:
    """Her own lines of a reply's text, in order (blank lines kept, as she wrote them)."""
    return _split(text)[0]


def quoted_lines(text: str) -> list[str]:
    """The lines of a reply that are not hers: what it quotes (without the ``>`` marks) and the original below
    an Outlook header block; a change she made inside them is not read but may be looked for."""
    return _split(text)[1]


def _split(text: str) -> tuple[list[OwnLine], list[str]]:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    found: list[OwnLine] = []
    quoted: list[str] = []
    about: int | None = None
    signature = False
    index = 0
    while index < len(lines):
        line = lines[index]
        header = _quote_header(lines, index)
        if header:
            if not _quote_follows(lines, index + header):
                quoted.extend(lines[index + header :])
                break  # the original follows unquoted: none of it is hers
            index += header
            continue
        if _STOP.match(line) or _original_header(lines, index):
            quoted.extend(lines[index:])
            break
        index += 1
        if line.lstrip().startswith(">"):
            quoted.append(re.sub(r"^[\s>]*", "", line))
            standard = _QUOTED_STANDARD.match(line)
            # a wrapped standard goes on in its next quoted line; a blank quoted line ends it
            about = int(standard.group(1)) if standard else (about if line.strip(" >") else None)
            continue
        if quoted and quoted[-1]:
            quoted.append("")  # her own line parts what she quotes
        if _mobile(line):
            continue
        if _CLOSING.match(line) or _SIGNATURE.match(line):
            found.append(OwnLine(line.rstrip(), None, True))  # "Best wishes," or "-- " begins her signature
            signature = True
            continue
        if signature and not _signature_like(line):
            if _disclaimer(lines, index - 1):
                found.append(OwnLine(line.rstrip(), None, True))
                while index < len(lines) and lines[index].strip():
                    found.append(OwnLine(lines[index].rstrip(), None, True))
                    index += 1
                continue
            signature = False  # a P.S., a sentence: her words again, and read
        found.append(OwnLine(line.rstrip(), about if line.strip() else None, signature))
    while found and not found[-1].text.strip():
        found.pop()
    while found and not found[0].text.strip():
        found.pop(0)
    return found, quoted


def reply_text(raw: bytes) -> str:
    """The text of a reply: its plain part, or its HTML part read as text (quoted blocks as ``>`` lines) when
    it has no plain one or an empty one; "" when neither can be read."""
    texts = reply_texts(raw)
    return texts[0] if texts else ""


def reply_texts(raw: bytes) -> list[str]:
    """The readable texts of a reply: its plain part and its HTML part read as text, each when it says anything
    (a reader may see either: agent.rules.agreement_answer.read_reply reads both)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    texts = []
    for kind in ("plain", "html"):
        part: Message | None = message.get_body(preferencelist=(kind,))
        if not isinstance(part, EmailMessage) or part.get_content_type() != f"text/{kind}":
            continue
        try:
            content = str(part.get_content())
        except (LookupError, ValueError):
            continue
        text = content if kind == "plain" else html_to_text(content, quotes=True)
        if text.strip():
            texts.append(text)
    return texts
