"""What the daemon decided and did, as typed events: for whoever wants to follow it without reading log text.

The daemon publishes one frozen dataclass per thing that happened (a decision with its reason, an SMTP
acceptance, a filing in Sent, a cancellation, a notice, a meeting offered or agreed); :func:`subscribe` adds a
callable that receives them. By default nobody listens and :func:`publish` costs a loop over an empty list.
This module does no I/O; a subscriber that raises is logged and the daemon carries on.

The demo (:mod:`agent.demo.week`) draws its timeline from these events.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

log = logging.getLogger("mentor_agent.events")

Kind = Literal["send", "hold", "delay", "digest"]


@dataclass(frozen=True)
class Decided:
    """The pacing engine decided about one message. ``send``: it goes now (``due`` is None); the others are
    published when the student is told about them (once per change, as the notice says)."""

    key: str  # the message's ledger key
    mentor: str  # the policy id
    mentor_name: str
    subject: str
    kind: Kind
    reason: str
    due: datetime | None = None  # when it goes (None: now, or held with no time)
    digest: str | None = None  # the digest it goes in, if any


@dataclass(frozen=True)
class Sent:
    """An SMTP server accepted one e-mail: a message, or several as a digest (``keys``)."""

    keys: tuple[str, ...]
    mentor: str
    recipients: tuple[str, ...]
    at: datetime


@dataclass(frozen=True)
class Filed:
    """A message the server accepted is now in Sent (and out of Sending)."""

    key: str
    folder: str


@dataclass(frozen=True)
class Cancelled:
    """A message will not be sent: ``why`` says by whom or what."""

    key: str
    why: str


@dataclass(frozen=True)
class Notice:
    """A notice was appended to the student's notices folder."""

    title: str
    about: str | None = None


@dataclass(frozen=True)
class MeetingOffered:
    """A meeting round started: ``count`` times offered to the mentor now."""

    round_id: str
    mentor: str
    mentor_name: str
    count: int


@dataclass(frozen=True)
class MeetingAgreed:
    """The mentor accepted an offered time; the round's other offers are cancelled."""

    mentor: str
    mentor_name: str
    start: datetime


Event = Decided | Sent | Filed | Cancelled | Notice | MeetingOffered | MeetingAgreed
Subscriber = Callable[[Event], None]

_subscribers: list[Subscriber] = []
_lock = threading.Lock()


def subscribe(subscriber: Subscriber) -> Callable[[], None]:
    """Receive every event from now on; returns the call that stops it."""
    with _lock:
        _subscribers.append(subscriber)

    def unsubscribe() -> None:
        with _lock:
            if subscriber in _subscribers:
                _subscribers.remove(subscriber)

    return unsubscribe


@contextmanager
def subscribed(subscriber: Subscriber) -> Iterator[None]:
    """``subscribe`` for the length of a ``with`` block."""
    unsubscribe = subscribe(subscriber)
    try:
        yield
    finally:
        unsubscribe()


def publish(event: Event) -> None:
    """Hand ``event`` to every subscriber, in the order they subscribed."""
    with _lock:
        listeners = list(_subscribers)
    for subscriber in listeners:
        try:
            subscriber(event)
        except Exception:  # a listener's bug must not stop the mail path
            log.exception("an event subscriber failed on %s", type(event).__name__)
