"""A server that refuses the login (or a TLS set-up that cannot work) is tried again at long intervals.

Retrying every few seconds cannot fix a wrong password and may lock the account, so after a refusal the
next try waits 1, 5, 15, 30 minutes, then every hour. :class:`Gate` keeps that state for one service (IMAP
or SMTP) and what ``status`` shows about it (in the ledger's status table, under ``<service>_refused*``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta

from agent.errors import SignInNeeded, TlsProblem

BACKOFF = (60.0, 300.0, 900.0, 1800.0, 3600.0)  # seconds; the last repeats
VARIABLE = "MENTOR_AGENT_LOGIN_BACKOFF"  # tests only: comma-separated seconds instead of BACKOFF


def schedule() -> tuple[float, ...]:
    value = os.environ.get(VARIABLE, "")
    try:
        steps = tuple(float(part) for part in value.split(",") if part.strip())
    except ValueError:
        steps = ()
    return steps or BACKOFF


SIGN_IN = "sign-in expired"  # the built-in sign-in's grant expired or was revoked: only a new sign-in helps


def what_failed(error: BaseException) -> str:
    if isinstance(error, SignInNeeded):
        return SIGN_IN
    return "TLS set-up failed" if isinstance(error, TlsProblem) else "login refused"


@dataclass(frozen=True)
class Refusal:
    since: datetime
    what: str  # "login refused", "TLS set-up failed" or SIGN_IN
    reason: str  # the server's words, or the TLS advice
    tries: int
    next_try: datetime
    grant: str = ""  # SIGN_IN: the version of the grant that failed; only a different one is tried again

    @property
    def signed_out(self) -> bool:
        return self.what == SIGN_IN


class Gate:
    """One service's lasting refusal, if any, and when to try again."""

    def __init__(self, service: str) -> None:
        self.service = service  # "IMAP" or "SMTP"
        self.refusal: Refusal | None = None

    @property
    def closed(self) -> bool:
        return self.refusal is not None

    def may_try(self, now: datetime) -> bool:
        return self.refusal is None or now >= self.refusal.next_try

    def refused(self, now: datetime, error: BaseException, grant: str = "") -> Refusal:
        """Record one more refused try; the next one waits longer. ``grant``: see :attr:`Refusal.grant`."""
        old = self.refusal
        tries = old.tries + 1 if old else 1
        steps = schedule()
        wait = steps[min(tries, len(steps)) - 1]
        self.refusal = Refusal(
            since=old.since if old else now,
            what=what_failed(error),
            reason=str(error),
            tries=tries,
            next_try=now + timedelta(seconds=wait),
            grant=grant,
        )
        return self.refusal

    def postpone(self, now: datetime) -> Refusal | None:
        """The try could not reach the server at all: still refused as far as we know; try again later."""
        if self.refusal is None:
            return None
        steps = schedule()
        wait = steps[min(self.refusal.tries, len(steps)) - 1]
        self.refusal = Refusal(
            self.refusal.since,
            self.refusal.what,
            self.refusal.reason,
            self.refusal.tries,
            now + timedelta(seconds=wait),
            self.refusal.grant,
        )
        return self.refusal

    def worked(self) -> Refusal | None:
        """The login works (again); the refusal that ended, if there was one."""
        old, self.refusal = self.refusal, None
        return old

    def status(self) -> dict[str, str]:
        """For ``Ledger.set_status``: empty values once it works again."""
        prefix = self.service.lower()
        refusal = self.refusal
        return {
            f"{prefix}_refused": refusal.reason if refusal else "",
            f"{prefix}_refused_what": refusal.what if refusal else "",
            f"{prefix}_refused_since": refusal.since.isoformat() if refusal else "",
            f"{prefix}_next_try": refusal.next_try.isoformat() if refusal else "",
        }


def waiting_lines(daemon: dict[str, str | None], zone_of_now: datetime) -> list[str]:
    """``status``'s lines for the refusals recorded in the ledger, times in the zone of ``zone_of_now``."""
    lines = []
    for service in ("IMAP", "SMTP"):
        prefix = service.lower()
        since, next_try = daemon.get(f"{prefix}_refused_since"), daemon.get(f"{prefix}_next_try")
        if not since or not next_try:
            continue
        what = daemon.get(f"{prefix}_refused_what") or "login refused"

        def local(text: str) -> str:
            return datetime.fromisoformat(text).astimezone(zone_of_now.tzinfo).strftime("%a %d %b %H:%M %Z")

        if what == SIGN_IN:  # not tried again on a timer: only a new sign-in ends it
            lines.append(f"waiting: {service} {what} since {local(since)}; sign in again with: mentor-agent login")
        else:
            lines.append(f"waiting: {service} {what} since {local(since)}, next try {local(next_try)}")
        lines.append(f"  {daemon.get(f'{prefix}_refused') or ''}")
    return lines
