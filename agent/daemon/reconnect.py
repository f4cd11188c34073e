"""The wait before the daemon connects again after it lost its IMAP session.

It doubles with every loss in a row (2, 4, 8 … s, at most 5 minutes, each drawn between half and all of it so
that many daemons do not come back together). An outage ends with a session that worked: one that stayed up a
minute, or one that served a whole pass (the Outbox read, what was due sent), so that a server restarted now and
then is back in use within seconds each time.

A server can also log her in and then close every session at once (a limit on connections, a broken account, a
proxy). Those sessions never count as working: the one that ends before its first pass is done, and, after
:data:`SHORT_IN_A_ROW` sessions in a row that each ended within :data:`SHORT`, even one that got its pass done.
The waits then keep growing, instead of a login every second or two for as long as it goes on; the daemon says
so in its journal.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

MAX_BACKOFF = 300.0  # seconds: the longest wait between two tries
SHORT = 60.0  # seconds: a session that ended sooner than this after its login was short
SHORT_IN_A_ROW = 5  # short sessions in a row after which a served pass no longer ends the outage


@dataclass
class Reconnect:
    """The losses in the outage so far, the short sessions in a row, and the wait after the next loss."""

    losses: int = 0
    short: int = 0

    def lost(self, up_for: float | None, served: bool) -> float:
        """The wait after a session lost ``up_for`` seconds after its login (None: it never logged in);
        ``served``: it had served a whole pass."""
        if up_for is not None and up_for >= SHORT:
            self.losses = self.short = 0  # it worked for a while: a new outage
        elif up_for is not None:
            self.short += 1
            if served and self.short < SHORT_IN_A_ROW:
                self.losses = 0  # it worked, if briefly: a server restarted, say
        self.losses += 1
        return min(MAX_BACKOFF, 2.0 ** min(self.losses, 9)) * random.uniform(0.5, 1.0)

    def ended(self) -> None:
        """The session ended by itself (a stop): nothing to back off from."""
        self.losses = self.short = 0

    @property
    def in_a_row(self) -> int:
        """The losses in the outage so far (1 after its first)."""
        return self.losses

    @property
    def closing_sessions(self) -> bool:
        """Whether the waits grow because sessions keep ending soon after their login."""
        return self.short > 1 and self.losses > 1
