"""One profile per mail provider, as data: what the provider's IMAP and SMTP servers do differently.

A new provider is a new :class:`Profile` in :data:`PROFILES`. The proxy (:mod:`tests.servers.providers.proxy`) and
the SMTP side (:mod:`tests.servers.providers.smtp`) read nothing else. Each behaviour comes from a public report:

- Microsoft 365 / Outlook.com: no CONDSTORE, no SPECIAL-USE capability; PERMANENTFLAGS without ``\\*``, so a
  custom keyword is accepted by STORE/APPEND and silently not kept (MailKit #702, node-imap #602); Outlook's own
  built-in "Outbox" folder, where Outlook parks mail while it sends; Sent is "Sent Items"; SMTP submissions are
  filed in Sent by the server (reports differ: a client must look, not guess by host name); IDLE sessions
  dropped after 30 minutes; ``* BYE Session invalidated - AccessTokenExpired`` in the middle of a session
  (imapsync #250). Exchange Online sends at most 30 messages a minute; Outlook.com about 300 a day.
- Gmail: IDLE, MOVE, UIDPLUS, CONDSTORE, X-GM-EXT-1; folders are labels ("[Gmail]/All Mail" shows everything,
  removing a message from a folder leaves it in All Mail); SMTP submissions filed in "[Gmail]/Sent Mail";
  APPEND limit 35,651,584 bytes; connections dropped about daily. Google Workspace: 2,000 messages a day,
  100 recipients a message.
- iCloud: CONDSTORE advertised but ``SELECT ... (CONDSTORE)`` answered NO (MailKit #970); no MOVE; no
  SPECIAL-USE; "Sent Messages"; SMTP submissions filed in Sent.
- Yahoo: no CONDSTORE; a MOVE/COPY of several messages answers COPYUID with the destination UIDs in a
  different order than the sources (MailKit #1405).
- Fastmail (Cyrus): the full extension set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

__all__ = ["BYE_TOKEN_EXPIRED", "PROFILES", "Limits", "Profile", "profile"]

BYE_TOKEN_EXPIRED = "Session invalidated - AccessTokenExpired"  # Microsoft's words, imapsync #250

# Capabilities that come with CONDSTORE (RFC 7162: QRESYNC implies CONDSTORE).
CONDSTORE_FAMILY = frozenset({"CONDSTORE", "QRESYNC"})


@dataclass(frozen=True)
class Limits:
    """A provider's sending limits; None where there is none worth emulating.

    ``reply`` is what its SMTP server answers when a limit is hit (the code matters: 4xx or 5xx).
    """

    per_day: int | None = None
    per_minute: int | None = None
    recipients_per_message: int | None = None
    reply: str = "550 5.4.5 Daily sending quota exceeded"
    recipients_reply: str = "452 4.5.3 Too many recipients"


def _folders(**names: str) -> Mapping[str, str]:
    return MappingProxyType(dict(names))


@dataclass(frozen=True)
class Profile:
    """What one provider does. Folder maps are name -> RFC 6154 attribute ("" for none)."""

    name: str
    title: str
    sent: str  # the provider's Sent folder
    folders: Mapping[str, str]  # created for every user (includes ``sent``)
    drop_capabilities: frozenset[str] = frozenset()  # removed from what Dovecot advertises
    add_capabilities: tuple[str, ...] = ()  # advertised on top (not necessarily implemented)
    special_use: bool = True  # LIST shows \Sent, \Trash, ...; False strips them
    keywords: bool = True  # False: PERMANENTFLAGS without \*, custom keywords dropped
    refuse_select_condstore: bool = False  # CONDSTORE advertised, SELECT/EXAMINE (CONDSTORE) answered NO
    reorder_copyuid: bool = False  # COPYUID destination UIDs in another order than the sources
    all_mail: str | None = None  # Gmail: every message appended also shows here (labels)
    unlabelled: str | None = None  # Gmail: where a copy goes when its folder's label is removed (a hidden folder)
    builtin_outbox: str | None = None  # the provider's own client parks mail here (never the agent's)
    files_sent: bool = False  # the SMTP server files each submission in ``sent`` itself
    idle_limit: float | None = None  # seconds an IDLE may last before the server says BYE and drops
    session_limit: float | None = None  # seconds a connection may live at all
    append_limit: int | None = None  # APPEND larger than this: NO [TOOBIG]
    limits: Limits = field(default_factory=Limits)
    sources: tuple[str, ...] = ()

    @property
    def has_move(self) -> bool:
        return "MOVE" not in self.drop_capabilities

    @property
    def has_condstore(self) -> bool:
        return "CONDSTORE" not in self.drop_capabilities

    def but(self, **changes: Any) -> Profile:
        """This profile with some fields changed (e.g. ``idle_limit=2`` for a short test)."""
        return replace(self, **changes)


_STANDARD = _folders(**{"Sent": "\\Sent", "Drafts": "\\Drafts", "Trash": "\\Trash", "Junk": "\\Junk"})

PROFILES: Mapping[str, Profile] = MappingProxyType(
    {
        p.name: p
        for p in (
            Profile(
                name="dovecot",
                title="Dovecot (pass-through)",
                sent="Sent Items",
                folders=_folders(**{"Sent Items": "\\Sent", "Drafts": "\\Drafts", "Trash": "\\Trash"}),
                drop_capabilities=frozenset(),
            ),
            Profile(
                name="gmail",
                title="Gmail / Google Workspace",
                sent="[Gmail]/Sent Mail",
                folders=_folders(
                    **{
                        "[Gmail]/Sent Mail": "\\Sent",
                        "[Gmail]/All Mail": "\\All",
                        "[Gmail]/Drafts": "\\Drafts",
                        "[Gmail]/Trash": "\\Trash",
                        "[Gmail]/Spam": "\\Junk",
                        "[Gmail]/Starred": "\\Flagged",
                        "[Gmail]/Label removed": "",
                    }
                ),
                unlabelled="[Gmail]/Label removed",
                drop_capabilities=frozenset({"QRESYNC", "NOTIFY", "METADATA", "METADATA-SERVER", "URLAUTH"}),
                add_capabilities=("X-GM-EXT-1", "APPENDLIMIT=35651584"),
                all_mail="[Gmail]/All Mail",
                files_sent=True,
                session_limit=24 * 3600.0,
                append_limit=35_651_584,
                limits=Limits(
                    per_day=2000,
                    recipients_per_message=100,
                    reply="550 5.4.5 Daily user sending limit exceeded",
                    recipients_reply="452 4.5.3 Your message has too many recipients",
                ),
                sources=(
                    "https://developers.google.com/gmail/imap/imap-extensions",
                    "https://support.google.com/a/answer/166852 (Workspace sending limits)",
                    "https://support.google.com/mail/answer/7126229 (IMAP settings, APPEND limit)",
                ),
            ),
            Profile(
                name="microsoft365",
                title="Microsoft 365 / Outlook.com",
                sent="Sent Items",
                folders=_folders(
                    **{
                        "Sent Items": "\\Sent",
                        "Drafts": "\\Drafts",
                        "Deleted Items": "\\Trash",
                        "Junk Email": "\\Junk",
                        "Archive": "\\Archive",
                        "Outbox": "",
                    }
                ),
                drop_capabilities=frozenset(
                    {
                        "CONDSTORE",
                        "QRESYNC",
                        "SPECIAL-USE",
                        "ENABLE",
                        "ESEARCH",
                        "ESORT",
                        "NOTIFY",
                        "METADATA",
                        "METADATA-SERVER",
                        "LIST-STATUS",
                        "SORT",
                        "SORT=DISPLAY",
                        "THREAD=REFERENCES",
                        "THREAD=REFS",
                        "THREAD=ORDEREDSUBJECT",
                        "CONTEXT=SEARCH",
                        "URLAUTH",
                        "SEARCHRES",
                        "WITHIN",
                        "CATENATE",
                        "MULTIAPPEND",
                        "BINARY",
                        "I18NLEVEL=1",
                    }
                ),
                special_use=False,
                keywords=False,
                builtin_outbox="Outbox",
                files_sent=True,
                idle_limit=30 * 60.0,
                limits=Limits(
                    per_minute=30,
                    recipients_per_message=500,
                    reply="554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException",
                    recipients_reply="550 5.5.3 Too many recipients",
                ),
                sources=(
                    "MailKit #702 (custom keywords not kept)",
                    "node-imap #602 (PERMANENTFLAGS without \\*)",
                    "imapsync #250 (BYE AccessTokenExpired)",
                    "https://learn.microsoft.com/office365/servicedescriptions/exchange-online-service-description/"
                    "exchange-online-limits (30 messages a minute)",
                ),
            ),
            Profile(
                name="icloud",
                title="iCloud Mail",
                sent="Sent Messages",
                folders=_folders(
                    **{
                        "Sent Messages": "\\Sent",
                        "Drafts": "\\Drafts",
                        "Deleted Messages": "\\Trash",
                        "Junk": "\\Junk",
                        "Archive": "\\Archive",
                    }
                ),
                drop_capabilities=frozenset({"MOVE", "SPECIAL-USE", "QRESYNC"}),
                special_use=False,
                refuse_select_condstore=True,
                files_sent=True,
                limits=Limits(per_day=1000, recipients_per_message=500),
                sources=(
                    "MailKit #970 (SELECT (CONDSTORE) refused)",
                    "Apple's iCloud Mail limits page (1,000 messages a day, 500 recipients a message)",
                ),
            ),
            Profile(
                name="yahoo",
                title="Yahoo Mail",
                sent="Sent",
                folders=_folders(
                    **{
                        "Sent": "\\Sent",
                        "Draft": "\\Drafts",
                        "Trash": "\\Trash",
                        "Bulk": "\\Junk",
                        "Archive": "\\Archive",
                    }
                ),
                drop_capabilities=frozenset({"CONDSTORE", "QRESYNC"}),
                reorder_copyuid=True,
                limits=Limits(per_day=500, recipients_per_message=100),  # commonly cited, not from Yahoo itself
                sources=("MailKit #1405 (COPYUID destination UIDs out of order)",),
            ),
            Profile(
                name="fastmail",
                title="Fastmail (Cyrus)",
                sent="Sent",
                folders=_folders(**{**_STANDARD, "Archive": "\\Archive"}),
                sources=("Fastmail runs Cyrus IMAP: the full extension set (passed through from Dovecot here)",),
            ),
        )
    }
)

# Outlook.com (consumer) differs from Microsoft 365 in its sending limit only, as far as this emulation goes.
OUTLOOK_COM_LIMITS = Limits(
    per_day=300, recipients_per_message=100, reply="550 5.7.520 Message blocked: daily sending limit reached"
)


def profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise KeyError(f"no provider profile {name!r}; known: {', '.join(PROFILES)}") from None
