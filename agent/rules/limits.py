"""Providers' sending limits: a small table, and when the next message may go without tripping one.

Pure: values in, values out. The table is keyed by provider; the provider is ``[smtp] provider`` or, with
"auto", found from the SMTP host. Sources: Google Workspace sending limits (support.google.com/a/answer/
166852: 2,000 messages a day, 100 recipients per message over SMTP); Exchange Online limits (30 messages a
minute); Outlook.com (about 300 a day); iCloud (1,000 a day, support.apple.com/102198); Yahoo (about 500 a day).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
WARN_AT = 0.8  # tell the student when this share of the daily limit is used


@dataclass(frozen=True)
class Limits:
    provider: str
    title: str
    hosts: tuple[str, ...]  # SMTP host names (suffixes) that identify the provider
    per_day: int | None = None  # messages in any 24 hours
    per_minute: int | None = None  # messages in any minute
    recipients: int | None = None  # recipients per message


TABLE: dict[str, Limits] = {
    limits.provider: limits
    for limits in (
        Limits(
            "google",
            "Google (Gmail / Workspace)",
            ("smtp.gmail.com", "smtp.googlemail.com"),
            per_day=2000,
            recipients=100,
        ),
        Limits("microsoft365", "Microsoft 365 (Exchange Online)", ("smtp.office365.com",), per_minute=30),
        Limits("outlook.com", "Outlook.com", ("smtp-mail.outlook.com",), per_day=300, per_minute=30),
        Limits("icloud", "iCloud Mail", ("smtp.mail.me.com",), per_day=1000),
        Limits("yahoo", "Yahoo Mail", ("smtp.mail.yahoo.com",), per_day=500, recipients=100),
        Limits("fastmail", "Fastmail", ("smtp.fastmail.com",)),
    )
}
PROVIDERS = ("auto", "none", *TABLE)


def limits_for(provider: str, host: str) -> Limits | None:
    """The limits of ``provider`` ("auto": found from the SMTP ``host``; "none": no limits)."""
    if provider == "none":
        return None
    if provider != "auto":
        return TABLE[provider]
    name = host.lower().rstrip(".")
    for limits in TABLE.values():
        if any(name == h or name.endswith("." + h) for h in limits.hosts):
            return limits
    return None


def with_overrides(limits: Limits | None, per_minute: int, per_day: int) -> Limits | None:
    """The provider's limits with the student's own numbers (``[smtp] max_per_minute``/``max_per_day``) on top."""
    if not per_minute and not per_day:
        return limits
    base = limits or Limits("custom", "your mail server", ())
    return replace(base, per_minute=per_minute or base.per_minute, per_day=per_day or base.per_day)


def next_slot(
    sent: Sequence[datetime], now: datetime, limits: Limits | None, *, margin: timedelta = timedelta(0)
) -> datetime:
    """The earliest moment (``now`` or later) at which one more message stays within every limit, given the
    moments of the messages already sent (any order). Never a burst that trips a per-minute or daily limit.
    ``margin`` widens each window (a send takes a moment: the provider counts it a little later)."""
    moment = now
    if limits is None:
        return moment
    while True:
        before = moment
        for count, span in ((limits.per_minute, MINUTE), (limits.per_day, DAY)):
            if not count:
                continue
            window = span + margin
            recent = sorted(t for t in sent if t > moment - window)
            if len(recent) >= count:
                # The oldest of the last ``count`` must leave the window first.
                moment = max(moment, recent[len(recent) - count] + window)
        if moment == before:
            return moment


def sent_in(sent: Sequence[datetime], now: datetime, window: timedelta) -> int:
    return sum(1 for t in sent if now - window < t <= now)


def warning_due(sent: Sequence[datetime], now: datetime, limits: Limits | None) -> bool:
    """Whether the day's count has just reached the share of the daily limit worth a notice."""
    if limits is None or not limits.per_day:
        return False
    return sent_in(sent, now, DAY) >= int(limits.per_day * WARN_AT)
