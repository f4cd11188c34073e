"""The SMTP side of a provider: the aiosmtpd test server, plus what the provider's submission server does.

- ``files_sent``: each accepted message is APPENDed to the profile's Sent folder in Dovecot before the client
  hears "250" (and, for Gmail, to "[Gmail]/All Mail" too), as Gmail, Microsoft 365 and iCloud file what is
  submitted. The copy is the message as submitted: without its Bcc header (the client stripped it). Gmail's copy
  carries a Return-Path and a Received header on top (the WildDuck wiki, "Gmail sending"): a message of its own,
  never the same message as a copy the client APPENDed (with Gmail's labels, :mod:`.labels`, that matters: the
  client's copy moved to Trash does not take the Sent one with it). Gmail files nothing when a message with the
  same Message-ID is already in Sent Mail (the WildDuck wiki, "Gmail sending": the client's own copy stands).
- ``limits``: a message beyond the per-day or per-minute count (of transactions begun) is refused at MAIL FROM, and a recipient beyond
  the per-message count at RCPT TO, with the provider's own reply. The counts are data in the profile
  (Google Workspace 2,000 a day and 100 recipients a message; Exchange Online 30 a minute; Outlook.com about
  300 a day) and a test may scale them down with ``profile.but(limits=Limits(per_minute=3))``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from email import policy as email_policy
from email.parser import BytesHeaderParser

from tests.servers.dovecot import Dovecot, User
from tests.servers.providers.profiles import Profile
from tests.servers.smtp import Received, SmtpServer

__all__ = ["ProviderSmtp"]


class ProviderSmtp(SmtpServer):
    """An :class:`SmtpServer` that behaves like ``profile``'s submission server for one Dovecot ``user``."""

    def __init__(self, profile: Profile, dovecot: Dovecot, user: User, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.profile = profile
        self.dovecot = dovecot
        self.user = user
        self.filed: list[str] = []  # the folders each accepted message was filed in, by the server
        self.refused: list[str] = []  # the limit replies given
        self._started: deque[float] = deque()  # time.monotonic() of every MAIL FROM let through (a submission)
        self._lock = threading.Lock()
        self.state.gate = self._gate
        self.state.on_accept = self._accept

    def _gate(self, stage: str, recipients: int) -> str | None:
        limits = self.profile.limits
        now = time.monotonic()
        with self._lock:
            if stage == "MAIL":
                # Counted when the transaction starts, so that parallel connections cannot slip past the limit.
                last_day = sum(1 for t in self._started if now - t < 86_400)
                last_minute = sum(1 for t in self._started if now - t < 60)
                if (limits.per_day is not None and last_day >= limits.per_day) or (
                    limits.per_minute is not None and last_minute >= limits.per_minute
                ):
                    self.refused.append(limits.reply)
                    return limits.reply
                self._started.append(now)
            if (
                stage == "RCPT"
                and limits.recipients_per_message is not None
                and recipients >= limits.recipients_per_message
            ):
                self.refused.append(limits.recipients_reply)
                return limits.recipients_reply
        return None

    def _accept(self, received: Received) -> None:
        if not self.profile.files_sent:
            return
        folders = [self.profile.sent] + ([self.profile.all_mail] if self.profile.all_mail else [])
        content = received.content
        if self.profile.all_mail and self._in_sent(content):
            self.filed.append("")  # nothing filed: a similar message is in Sent Mail already
            return
        if self.profile.all_mail:
            content = (
                f"Return-Path: <{received.mail_from}>\r\n"
                f"Received: from [127.0.0.1] by smtp.{self.profile.name}.example with ESMTPSA\r\n"
            ).encode() + content
        for folder in folders:
            self.dovecot.append(self.user, folder, content, flags=("\\Seen",))
            self.filed.append(folder)

    def _in_sent(self, content: bytes) -> bool:
        """Whether a message with this one's Message-ID is in the Sent folder already."""
        wanted = _message_id(content)
        return wanted is not None and any(
            _message_id(raw) == wanted for raw in self.dovecot.messages(self.user, self.profile.sent).values()
        )


def _message_id(raw: bytes) -> str | None:
    found = BytesHeaderParser(policy=email_policy.compat32).parsebytes(raw).get("Message-ID")
    return str(found).strip() if found else None
