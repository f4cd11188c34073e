"""When mail about an offered or agreed meeting may still leave, beside the invitation itself.

The invitation (a first REQUEST) never leaves after its start less ``min_notice``
(:func:`agent.rules.meetings.send_by`). Two more kinds of mail are about a meeting:

* an **update** of an agreed meeting (the same UID, its description listing agenda questions,
  :mod:`agent.reconcile.agenda_ahead`): it goes ``agenda_ahead`` before the meeting (24 hours by default) and is paced
  like any e-mail. It never leaves after the meeting's start less ``min_notice``, or, where ``agenda_ahead`` is the
  shorter of the two, less half of ``agenda_ahead`` (so that with the defaults, 48 hours and 24 hours, the agenda
  still reaches her at least 12 hours ahead, and the pace has those 12 hours to let it go): :func:`update_send_by`.
* a **CANCEL** of an offer she was sent: it is most useful early, so it is not held by the day, week, gap or
  reply rules; it goes on its own at once inside her sending windows, else when the next one opens — unless that is
  after the meeting's start, then at once — and never after the start (:func:`cancel_plan`, :func:`cancel_send_by`).

Pure: values in, values out, ``now`` passed in.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

from agent.rules.localtime import after, describe, instant
from agent.rules.windows import WeeklySchedule

# The ledger detail of an update or a CANCEL taken back because it could not leave in time.
LATE_UPDATE = "taken back: the updated invitation could not leave in time before the meeting"
LATE_CANCEL = "taken back: the cancellation could not leave before the meeting began"
OFF_UPDATE = "taken back: the meeting it updates is no longer agreed"


def update_send_by(start: datetime, min_notice: timedelta, agenda_ahead: timedelta) -> datetime:
    """The last instant at which an update of the meeting at ``start`` may leave (UTC)."""
    return after(start, -min(min_notice, agenda_ahead / 2))


def cancel_send_by(start: datetime) -> datetime:
    """The last instant at which a CANCEL of the offer for ``start`` may leave: before the meeting begins."""
    return instant(start)


def cancel_plan(schedule: WeeklySchedule, start: datetime, now: datetime, zone: tzinfo) -> tuple[datetime, str]:
    """When a CANCEL of the offer for ``start`` goes, and why (the reason the student reads)."""
    now = instant(now)
    opens = schedule.next_open(now)
    when = describe(start, zone)
    if opens is None or opens <= now:
        return now, f"a cancellation goes at once, on its own: the sooner she knows, the better (meeting {when})"
    if opens >= instant(start):
        return now, (
            f"a cancellation goes at once, on its own, though outside her sending hours: the next of them opens only "
            f"after the meeting ({when}) would have begun"
        )
    return opens, (
        f"a cancellation goes on its own as soon as her sending hours open ({describe(opens, zone)}), before the "
        f"meeting ({when}); not held by the day, week or gap limits"
    )
