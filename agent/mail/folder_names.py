"""What a LIST says about the names of folders: which are usable, which look like the student's Sent folder, and
what a server that refused a CREATE asks for instead.

- A name listed ``\\Noselect`` or ``\\NonExistent`` is a placeholder (the parent of a folder that exists, kept by
  the server after the student deleted it): no folder of its own. The agent creates it as any missing folder.
  Dovecot lists such a parent ``\\HasChildren`` alone: a STATUS tells (:func:`without_ghosts`).
- Where nothing is configured and no folder is marked with the SPECIAL-USE ``\\Sent`` attribute, Sent is found by
  its name, in English or another language ("Gesendete Elemente"), in any case and under a prefix; of several, the
  likeliest is taken and the student is told of the others (:func:`find_sent`). A folder another SPECIAL-USE
  attribute marks (Drafts, Archive, …) is never taken for Sent.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping

PLACEHOLDER = frozenset({"\\noselect", "\\nonexistent"})  # LIST attributes, lowercased

# Sent folders by their usual English names (imapclient's list), the likeliest first.
USUAL_SENT = ("Sent", "Sent Items", "Sent items", "Sent Messages", "Sent Mail")
ENGLISH_SENT = frozenset(name.casefold() for name in USUAL_SENT)

# What other SPECIAL-USE attributes (RFC 6154) mark a folder as: never taken for Sent, whatever its name.
OTHER_USES = frozenset({"\\drafts", "\\trash", "\\junk", "\\archive", "\\all", "\\flagged", "\\important"})

# Sent folders as mail programs name them in other languages.
LOCALIZED_SENT = frozenset(
    unicodedata.normalize("NFC", name).casefold()
    for name in (
        "Gesendet",
        "Gesendete Elemente",
        "Gesendete Objekte",
        "Gesendete Nachrichten",
        "Envoyés",
        "Éléments envoyés",
        "Messages envoyés",
        "Enviados",
        "Elementos enviados",
        "Itens enviados",
        "Inviati",
        "Posta inviata",
        "Verzonden",
        "Verzonden items",
        "Skickat",
        "Skickade objekt",
        "Sendt",
        "Sendte elementer",
        "Lähetetyt",
        "Wysłane",
        "Odeslaná pošta",
        "Odeslané",
        "Elementy wysłane",
        "Wysłane elementy",
        "Enviadas",
        "Mensajes enviados",
        "Elementi inviati",
        "Skickade",
        "Sendte",
        "Sendte objekter",
        "Lähetetyt viestit",
        "Αποσταλμένα",
        "Gönderilmiş Öğeler",
        "Gönderilenler",
        "Отправленные",
        "Надіслані",
        "送信済みアイテム",
        "送信済み",
        "已发送",
        "已发送邮件",
        "寄件備份",
        "보낸 편지함",
    )
)

# The personal namespace's prefix a server that refused a CREATE names (Dovecot: "Mailbox name should probably be
# prefixed with: INBOX.").
_PREFIX_WORDS = re.compile(r"prefixed with:?\s*\"?([^\s\"()]+)", re.IGNORECASE)


def usable(attributes: Iterable[str]) -> bool:
    """Whether a folder listed with these attributes (any case) holds mail: not a placeholder."""
    return not PLACEHOLDER & {attribute.lower() for attribute in attributes}


def without_ghosts(
    folders: Mapping[str, frozenset[str]], names: Iterable[str], selectable: Callable[[str], bool]
) -> dict[str, frozenset[str]]:
    """``folders`` (a LIST's answer, attributes lowercased) where a name among ``names`` and the Sent look-alikes
    that is listed ``\\HasChildren`` but not as a placeholder, and that ``selectable`` (a STATUS) says does not
    exist, is marked ``\\noselect``: Dovecot lists a parent the student deleted, keeping its child, so."""
    checked = dict(folders)
    for name in {*names, *sent_candidates(folders)}:
        attributes = folders.get(name)
        if attributes is not None and "\\haschildren" in attributes and usable(attributes) and not selectable(name):
            checked[name] = attributes | {"\\noselect"}
    return checked


def _bare(name: str) -> str:
    """A folder's name without the ``INBOX.`` (or ``INBOX/``) prefix a server may keep its folders under."""
    return re.split(r"[./]", name, maxsplit=1)[1] if re.match(r"(?i)inbox[./]", name) else name


def _leaf(name: str) -> str:
    """:func:`_bare`, normalized (NFC: a Mac may write "Envoyés" decomposed) and casefolded."""
    return unicodedata.normalize("NFC", _bare(name)).casefold()


def sent_candidates(folders: Mapping[str, frozenset[str]]) -> list[str]:
    """The usable folders named as a Sent folder is, in English or another language, in any case and under a
    prefix, that no other SPECIAL-USE attribute marks as something else (Drafts, Archive, …); the likeliest first:
    a usual English name as written, then in another case, then the others by name."""
    found = [
        name
        for name, attributes in folders.items()
        if _leaf(name) in ENGLISH_SENT | LOCALIZED_SENT and usable(attributes) and not OTHER_USES & attributes
    ]

    english = [usual.casefold() for usual in USUAL_SENT]

    def likeliness(name: str) -> tuple[int, int, bool, str]:
        under = _bare(name) != name  # "INBOX.Sent" after "Sent", where a server has both
        if _bare(name) in USUAL_SENT:
            return 0, USUAL_SENT.index(_bare(name)), under, name
        if _leaf(name) in english:
            return 1, english.index(_leaf(name)), under, name
        return 2, 0, under, name

    return sorted(found, key=likeliness)


# RFC 5530's codes for a refusal that is the server's trouble for now (a fault, a quota, a limit, a lock), not a name
# it cannot take: a CREATE refused so is tried again, never a configuration error.
_FOR_NOW = re.compile(r"\[(UNAVAILABLE|SERVERBUG|INUSE|OVERQUOTA|LIMIT|CONTACTADMIN|CORRUPTION)\]", re.IGNORECASE)


def refused_for_now(words: str) -> bool:
    """Whether a refusal's words say the trouble is the server's for now, not the name (RFC 5530 codes)."""
    return bool(_FOR_NOW.search(words))


_NO_RIGHTS = re.compile(r"\[NOPERM\]|permission|not allowed|denied", re.IGNORECASE)


def says_no_rights(words: str) -> bool:
    """Whether a refusal's words say the student may not read the folder (RFC 5530 ``[NOPERM]``): it is there. A
    STATUS refused otherwise, not for now, says it is not, however a server words it ("Mailbox doesn't exist",
    "Unknown Mailbox", "The specified folder could not be found in the store")."""
    return bool(_NO_RIGHTS.search(words))


def prefix_asked(words: str) -> str | None:
    """The prefix a refusal's words ask for (``INBOX.``), if they name one."""
    match = _PREFIX_WORDS.search(words)
    return match.group(1) if match else None


def find_sent(folders: Mapping[str, frozenset[str]]) -> tuple[str, str, tuple[str, ...]]:
    """Sent, when not configured: (its name, how it was found, the other folders named like a Sent folder).

    ``folders``: what LIST answered (attributes lowercased; placeholders marked, :func:`without_ghosts`). How:
    "special-use" (the server marks it ``\\Sent``), "name" (the one folder named like a Sent folder, with a
    usual English name as written), "localized" (the one such folder, under another name or in another case),
    "several" (the likeliest of several such folders, the others given) or "created" (none: "Sent" is made, or the
    first usual name no other folder has).
    """
    marked = next((name for name, attributes in folders.items() if "\\sent" in attributes and usable(attributes)), None)
    if marked:
        return marked, "special-use", ()
    like = sent_candidates(folders)
    if not like:  # "Sent" is made, unless a folder marked for another use has that name
        used = {name.casefold() for name, attributes in folders.items() if usable(attributes)}  # any case: Exchange
        free = (name for name in USUAL_SENT if name.casefold() not in used)
        return next(free, "Sent (mentor-agent)"), "created", ()
    likeliest, others = like[0], tuple(like[1:])
    if others:
        return likeliest, "several", others
    return likeliest, "name" if _bare(likeliest) in USUAL_SENT else "localized", ()


def providers_own(folder: str, folders: Mapping[str, frozenset[str]], welcome: str = "") -> str | None:
    """Why ``folder`` belongs to the provider's own mail program (Outlook's Outbox, where Outlook parks mail
    while it sends), or None. Decided by what the server shows: a ``\\Outbox`` attribute, a Microsoft
    Exchange greeting (``welcome``), or Exchange's own folder set (Sent Items, Deleted Items, Junk Email) beside it
    in ``folders`` (a LIST's answer)."""
    if folder not in folders:
        return None
    if "\\outbox" in folders[folder]:
        return f"the server marks {folder!r} as its own \\Outbox"
    if folder.casefold() != "outbox":
        return None
    welcome = welcome.lower()
    if "microsoft exchange" in welcome or "outlook" in welcome:
        return f"this is a Microsoft server, where {folder!r} is Outlook's own Outbox"
    if {"sent items", "deleted items", "junk email"} <= {name.casefold() for name in folders}:
        return (
            f"the mailbox has Exchange's folders (Sent Items, Deleted Items, Junk Email): {folder!r} is "
            "Outlook's own Outbox"
        )
    return None
