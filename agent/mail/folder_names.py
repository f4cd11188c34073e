"""What a LIST says about the names of folders: which are usable, which look like the student's Sent folder, and
what a server that refused a CREATE asks for instead.

- A name listed ``\\Noselect`` or ``\\NonExistent`` is a placeholder (the parent of a folder that exists, kept by
  the server after the student deleted it): no folder of its own. The agent creates it as any missing folder.
- A Sent folder without the SPECIAL-USE ``\\Sent`` attribute under a localized name ("Gesendete Elemente") is found
  by the names below when exactly one of them exists and nothing is configured.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

PLACEHOLDER = frozenset({"\\noselect", "\\nonexistent"})  # LIST attributes, lowercased

# Sent folders as mail programs name them in other languages (English ones are imapclient's: Sent, Sent Items, ...).
LOCALIZED_SENT = frozenset(
    name.casefold()
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
        "Отправленные",
    )
)

# The personal namespace's prefix a server that refused a CREATE names (Dovecot: "Mailbox name should probably be
# prefixed with: INBOX.").
_PREFIX_WORDS = re.compile(r"prefixed with:?\s*\"?([^\s\"()]+)", re.IGNORECASE)


def usable(attributes: Iterable[str]) -> bool:
    """Whether a folder listed with these attributes (any case) holds mail: not a placeholder."""
    return not PLACEHOLDER & {attribute.lower() for attribute in attributes}


def localized_sent(folders: Mapping[str, frozenset[str]]) -> list[str]:
    """The usable folders named as a Sent folder is in other languages (also under a prefix such as ``INBOX.``)."""
    found = []
    for name, attributes in folders.items():
        leaf = re.split(r"[./]", name, maxsplit=1)[1] if re.match(r"(?i)inbox[./]", name) else name
        if leaf.casefold() in LOCALIZED_SENT and usable(attributes):
            found.append(name)
    return sorted(found)


def prefix_asked(words: str) -> str | None:
    """The prefix a refusal's words ask for (``INBOX.``), if they name one."""
    match = _PREFIX_WORDS.search(words)
    return match.group(1) if match else None


def find_sent(
    folders: Mapping[str, frozenset[str]], named: Callable[[], str | None]
) -> tuple[str, str, tuple[str, ...]]:
    """Sent, when not configured: (its name, how it was found, the folders named like it when none was taken).

    ``folders``: what LIST answered (attributes lowercased); ``named``: the usual English names looked up (Sent,
    Sent Items: imapclient's), asked only when no folder is marked ``\\Sent``. How: "special-use", "name",
    "localized" (exactly one folder named as Sent is in another language) or "created" (none: "Sent" is made).
    """
    marked = next((name for name, attributes in folders.items() if "\\sent" in attributes), None)
    if marked:
        return marked, "special-use", ()
    name = named()
    if name and usable(folders.get(name, ())):
        return name, "name", ()
    like = localized_sent(folders)
    if len(like) == 1:
        return like[0], "localized", ()
    return "Sent", "created", tuple(like)


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
