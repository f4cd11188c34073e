"""What an invitation is made of: the parties, the meeting offered, one received iTIP object, and the one
error reading one raises."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import Address
from typing import TYPE_CHECKING

from agent.rules.slots import Slot

if TYPE_CHECKING:
    from icalendar import vCalAddress

PRODID = "-//mentor-agent//mentor-agent 0.1//EN"
CALENDAR_TYPES = frozenset({"text/calendar", "application/ics", "text/x-vcalendar", "application/x-ics"})


class InviteError(ValueError):
    """An invitation or reply that cannot be read; the one exception ``parse_itip`` raises."""


@dataclass(frozen=True)
class Party:
    """A person in an invitation: display name and e-mail address."""

    name: str
    address: str

    def header(self) -> Address:
        """The header address. A local part beyond ASCII (RFC 6531) is given as its parts: the header registry
        refuses to parse one, but writes it as it is under a UTF-8 policy (:func:`wire_bytes`)."""
        if self.address.isascii():
            return Address(display_name=self.name, addr_spec=self.address)
        local, _, domain = self.address.rpartition("@")
        return Address(display_name=self.name, username=local, domain=domain)

    def cal_address(self, **params: str) -> vCalAddress:
        from icalendar import vCalAddress, vText  # icalendar loads with the first invitation, not with the daemon

        value = vCalAddress(f"mailto:{self.address}")
        value.params["CN"] = vText(self.name)
        for key, param in params.items():
            value.params[key.replace("_", "-").upper()] = param
        return value


@dataclass(frozen=True)
class Meeting:
    """What one invitation describes. ``sequence`` is the number to write in this message."""

    uid: str
    sequence: int
    slot: Slot
    summary: str
    location: str = ""
    description: str = ""


@dataclass(frozen=True)
class ItipObject:
    """One VEVENT of a received iTIP message, reduced to what the offer state machine needs."""

    method: str
    uid: str
    sequence: int
    organizer: str | None
    attendees: tuple[tuple[str, str], ...]  # (address lowercased, PARTSTAT upper-cased)
    start: datetime | None = None  # DTSTART (the proposed time in a COUNTER); None when all-day or floating
    end: datetime | None = None
    recurrence_id: datetime | None = None
    comment: str = field(default="", compare=False)
    stamp: datetime | None = field(default=None, compare=False)  # DTSTAMP: when the answer was written (UTC)

    @property
    def attendee(self) -> str | None:
        """The single attendee's address (a REPLY has exactly one), else None."""
        return self.attendees[0][0] if len(self.attendees) == 1 else None

    @property
    def partstat(self) -> str | None:
        return self.attendees[0][1] if len(self.attendees) == 1 else None
