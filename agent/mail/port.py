"""The mailbox interface: exactly the operations the reconcile layer (``agent/reconcile``) uses on the mailbox.

:class:`MailboxPort` is a :class:`typing.Protocol`. :class:`agent.mail.claim.Mailbox` (IMAP) implements it, and
so does the in-memory fake of the tests (``tests/fakes/memory_mailbox.py``). One contract suite
(``tests/mailbox_contract/``) states what every implementation must do, and runs the same assertions against
Dovecot, the demo's pymap server and the fake, so that the reconcile modules can be tested fast on the fake.

The contract, beyond the signatures:

- UIDs are per folder, ascending in the order messages arrive, never reused while UIDVALIDITY stays.
- ``fetch``/``fetch_many``/``headers`` never set ``\\Seen``; a UID that is gone is left out (``fetch``: None).
- ``move``/``move_many`` take each message out of the source and put exactly one copy in the target, also when
  several agents race (the claim protocol); a message that is gone, or claimed by another agent, is left out
  of ``move_many``'s answer and makes ``move`` raise :class:`~agent.mail.session.MessageGone`. The target UID
  is None where the server cannot tell it. ``claim=False``: the source is the agent's own (Sending).
- ``delete``/``discard_many`` remove exactly these UIDs, never the student's other ``\\Deleted`` mail.
- Every failure the daemon should log and reconnect on is a :class:`~agent.mail.session.MailboxError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Protocol

from agent.mail.uidsets import text_of

if TYPE_CHECKING:
    from agent.mail.pulse import Pulse

# + an agent's id: on what that agent moved into its Scheduled folder (``MailboxPort.held_folder``). Held by an
# agent, never a stranger there (agent.reconcile.strangers tells her of mail she put there herself); held by
# another agent on the same account, never this one's to take.
HELD_KEYWORD = "$MentorAgentHeld"


def held_marks(flags: Iterable[str]) -> set[str]:
    """The agents' held marks among a message's flags (lowercased: servers may change a keyword's case)."""
    return {flag.lower() for flag in flags if flag.lower().startswith(HELD_KEYWORD.lower())}


Listing = list[tuple[tuple[bytes, ...], bytes | None, str]]  # what a LIST answers: (attributes, delimiter, name)


def folder_attributes(listing: Listing) -> dict[str, frozenset[str]]:
    """Every folder's name and LIST attributes, lowercased (``\\sent``), as :meth:`MailboxPort.folder_list` gives."""
    return {text_of(name): frozenset(text_of(flag).lower() for flag in flags) for flags, _sep, name in listing}


@dataclass(frozen=True)
class HeaderInfo:
    uid: int
    size: int
    flags: frozenset[str]
    headers: bytes
    internaldate: datetime | None


@dataclass(frozen=True)
class ResolvedFolders:
    """The real folder names on this server."""

    inbox: str
    outbox: str
    scheduled: str
    needs_attention: str
    sending: str
    sent: str
    notices: str
    # How ``sent`` was found (how, not which: not compared): "config", "special-use" (the server's \\Sent), "name"
    # (a usual English name), "localized" (the one folder named as Sent is in another language) or "created" (none
    # found: the agent made it); then ``sent_like``: the folders named like a Sent folder (several: none was taken).
    sent_found: str = field(default="config", compare=False)
    sent_like: tuple[str, ...] = field(default=(), compare=False)


class MailboxPort(Protocol):
    """What one reconcile pass does with the mailbox (synchronous: the pass runs it in a worker thread)."""

    # The agent's Scheduled folder, once resolved: what is moved there is marked ``held_keyword`` (HELD_KEYWORD and
    # this agent's id) where the server keeps keywords (a mark never fails the move).
    held_folder: str | None
    held_keyword: str
    # The ids of other agents on the account whose claims or held marks this one has seen (they keep separate
    # records: she is told, agent.reconcile.other_agents)
    other_agents: set[str]

    @property
    def pulse(self) -> Pulse | None:
        """What its connection moves, so that a command stuck on a server that trickles is ended
        (agent.mail.pulse); None where nothing can trickle (the tests' mailbox in memory)."""
        ...

    # -- folders
    def folder_list(self) -> dict[str, frozenset[str]]:
        """Every folder's name and LIST attributes, lowercased (``\\sent``, ``\\drafts``, ...)."""
        ...

    def count(self, folder: str) -> int:
        """How many messages ``folder`` holds, without selecting it."""
        ...

    def ensure_folder(self, folder: str) -> None:
        """Create ``folder`` unless it is there (INBOX always is); a refusal is FolderRefused."""
        ...

    def providers_own(self, folder: str, folders: dict[str, frozenset[str]] | None = None) -> str | None:
        """Why ``folder`` belongs to the provider's own mail program (Outlook's Outbox), or None. ``folders``:
        what :meth:`folder_list` just answered (else it is asked)."""
        ...

    # -- reading
    def uids(self, folder: str) -> tuple[int, list[int]]:
        """(UIDVALIDITY, every UID in ``folder``, ascending)."""
        ...

    def headers(self, folder: str, uids: Sequence[int]) -> list[HeaderInfo]:
        """Size, flags, INTERNALDATE and header block of each UID still present, in UID order."""
        ...

    def fetch(self, folder: str, uid: int) -> bytes | None:
        """The whole message byte for byte (``\\Seen`` untouched); None if it is gone."""
        ...

    def messages(self, folder: str, uids: Sequence[int]) -> list[tuple[HeaderInfo, bytes]]:
        """:meth:`headers` and the whole message (byte for byte, ``\\Seen`` untouched) of each UID still present,
        in UID order: the intake's one FETCH where it needs both."""
        ...

    def fetch_many(self, folder: str, uids: Sequence[int]) -> dict[int, bytes]:
        """The whole messages byte for byte; the UIDs that are gone are left out."""
        ...

    def find_by_message_id(self, folder: str, message_id: str) -> list[int]:
        """The UIDs in ``folder`` whose Message-ID is ``message_id``, ascending (sees what others appended)."""
        ...

    def uids_since(self, folder: str, since: date) -> tuple[int, list[int]]:
        """(UIDVALIDITY, the UIDs whose INTERNALDATE is on or after ``since``, ascending): one look, not two."""
        ...

    def flagged(self, folder: str) -> list[int]:
        """The UIDs the student flagged (``\\Flagged``, not ``\\Deleted``)."""
        ...

    def without_keyword(self, folder: str, keyword: str) -> list[int]:
        """The UIDs of the messages without ``keyword``."""
        ...

    def add_flags_many(self, folder: str, uids: Sequence[int], flags: Sequence[str]) -> None:
        """Add ``flags`` to these messages (others stay)."""
        ...

    def modseqs(self, folder: str, uids: Sequence[int]) -> dict[int, int] | None:
        """The MODSEQ (RFC 7162: it moves with any change of the message's flags) of each UID still there;
        None where the server has no working CONDSTORE."""
        ...

    # -- changing
    def append(self, folder: str, raw: bytes, flags: Sequence[str] = (), when: datetime | None = None) -> int | None:
        """APPEND; the new UID where the server tells it, else None."""
        ...

    def move(self, folder: str, uid: int, target: str) -> int | None:
        """Move one message (claimed first); its UID in ``target`` or None; MessageGone if it is not there."""
        ...

    def move_many(self, folder: str, uids: Sequence[int], target: str, *, claim: bool = True) -> dict[int, int | None]:
        """Move messages; {source UID: UID in ``target`` or None} for those moved (others are left out)."""
        ...

    def delete(self, folder: str, uid: int) -> None:
        """Remove that one message (and no other ``\\Deleted`` one)."""
        ...

    def discard_many(self, folder: str, uids: Sequence[int]) -> None:
        """Remove the agent's own copies (at Gmail: into Trash)."""
        ...

    def set_flags(self, folder: str, uid: int, flags: Sequence[str]) -> None:
        """Add ``flags`` to the message (the others stay)."""
        ...

    def remove_flags(self, folder: str, uid: int, flags: Sequence[str]) -> None:
        """Take ``flags`` off the message (the others stay)."""
        ...

    def leave_folder(self, folder: str, uid: int) -> None:
        """Take the message out of ``folder`` only: where folders are labels (Gmail), remove that label, so that
        it stays in its other folders; elsewhere (where each folder holds its own copy) delete this copy."""
        ...

    def replace_flags_many(self, folder: str, uids: Sequence[int], flags: Sequence[str]) -> None:
        """Set the flags of these messages to exactly ``flags``."""
        ...
