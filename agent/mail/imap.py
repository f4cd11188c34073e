"""The IMAP adapter's public names, kept importable from their old place while other branches merge.

The code is in :mod:`agent.mail.session` (login and errors), :mod:`agent.mail.client` (the command connection:
capabilities, folders, reading, flags), :mod:`agent.mail.claim` (``Mailbox``: moving with the claim protocol),
:mod:`agent.mail.watch` (the IDLE ``Watcher``) and :mod:`agent.mail.port` (the interface and its data types).
New code imports from those modules.
"""

from __future__ import annotations

from agent.mail.claim import Mailbox
from agent.mail.port import HeaderInfo, MailboxPort, ResolvedFolders
from agent.mail.session import ImapLoginRefused, ImapTlsProblem, Login, MailboxError, MessageGone, SessionExpired
from agent.mail.watch import Watcher

__all__ = [
    "HeaderInfo",
    "ImapLoginRefused",
    "ImapTlsProblem",
    "Login",
    "Mailbox",
    "MailboxError",
    "MailboxPort",
    "MessageGone",
    "ResolvedFolders",
    "SessionExpired",
    "Watcher",
]
