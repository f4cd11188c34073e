"""The provider's sending limits while a backlog goes out: paced to the per-minute limit, held (with a notice)
rather than tripping the daily one (the limits themselves: :mod:`agent.rules.limits`)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from agent.reconcile.context import World
from agent.rules.limits import DAY, Limits, next_slot, sent_in, warning_due
from agent.rules.notices import HOW_TO_STEER

log = logging.getLogger("mentor_agent.delivery")

PACE_MARGIN = timedelta(seconds=1)  # a send counted at the provider a moment after it began
MAX_PACE_WAIT = timedelta(minutes=2)  # a longer wait for a provider's limit holds sending instead of blocking


async def sending_slot(world: World) -> bool:
    """Wait until one more message stays within the provider's sending limits (a backlog is paced to the
    per-minute limit), and count it. False when the next slot is far off (the daily limit): sending is held
    until then, with a notice, rather than tripping the provider's limit."""
    limits = world.sending_limits
    if limits is None:
        return True
    sends = world.recent_sends()
    while not world.stopping.is_set():
        now = world.now()
        slot = next_slot(sends, now, limits, margin=PACE_MARGIN)
        if slot <= now:
            sends.append(now)
            await _tell_limits(world, limits, sends, now)
            return True
        if slot - now > MAX_PACE_WAIT:
            world.held_until = slot
            await _tell_limits(world, limits, sends, now, held=slot)
            return False
        await _tell_pacing(world, limits, slot)
        await asyncio.sleep(min((slot - now).total_seconds(), 1.0))
    return False


async def _tell_pacing(world: World, limits: Limits, slot: datetime) -> None:
    """Once a day: a backlog goes out more slowly than at once, to stay within a per-minute limit."""
    day = slot.astimezone(world.settings.student.zone).date().isoformat()
    if f"pace {day}" in world.limit_told:
        return
    world.limit_told.add(f"pace {day}")
    log.info("pacing to %s's limit of %s messages a minute", limits.title, limits.per_minute)
    await world.notify(
        f"Sending paced: {limits.title} accepts {limits.per_minute} messages a minute",
        [
            f"More messages are due than {limits.title} accepts in a minute ({limits.per_minute}). Rather than have "
            "the server refuse them, mentor-agent sends them over the next minutes; nothing is lost."
        ],
    )


async def _tell_limits(
    world: World, limits: Limits, sends: list[datetime], now: datetime, *, held: datetime | None = None
) -> None:
    """One notice a day before the daily limit is reached, and one when sending is held by it."""
    day = now.astimezone(world.settings.student.zone).date().isoformat()
    if held is not None and f"held {day}" not in world.limit_told:
        world.limit_told.add(f"held {day}")
        when = held.astimezone(world.settings.student.zone).strftime("%a %H:%M")
        log.warning("the %s sending limit is reached; sending is held until %s", limits.title, when)
        await world.notify(
            f"Sending paused until {when}: {limits.title}'s daily limit",
            [
                f"{limits.title} accepts about {limits.per_day} messages a day from one account, and mentor-agent "
                f"has sent {sent_in(sends, now, DAY)} in the last 24 hours. Rather than have the provider refuse "
                f"mail (or lock the account), the rest wait and go from {when}.",
                HOW_TO_STEER,
            ],
        )
    elif held is None and warning_due(sends, now, limits) and f"warn {day}" not in world.limit_told:
        world.limit_told.add(f"warn {day}")
        count = sent_in(sends, now, DAY)
        await world.notify(
            f"Close to {limits.title}'s daily sending limit ({count} of {limits.per_day})",
            [
                f"mentor-agent has sent {count} messages in the last 24 hours; {limits.title} accepts about "
                f"{limits.per_day} a day. After that, messages wait until the provider allows more."
            ],
        )
