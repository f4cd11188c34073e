"""A command stuck on a server that trickles: :func:`paced` watches a worker thread's command by its connection's
:class:`~agent.mail.pulse.Pulse`, and ends it (:class:`TooSlow`) when the connection moves too little."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable
from typing import TypeVar

from agent.mail.pulse import LEAST, Pulse
from agent.mail.session import MailboxError

T = TypeVar("T")


class TooSlow(MailboxError):
    """The connection moved less than :data:`~agent.mail.pulse.LEAST` bytes in a window while a command waited: it
    was ended, and the command's outcome is unknown, as on a dropped connection."""


async def paced(pulse: Pulse | None, work: Awaitable[T], *, window: float, what: str = "a command") -> T:
    """``work`` (a worker thread's command on ``pulse``'s connection), ended with
    :class:`TooSlow` once it has waited ``window`` seconds while the connection moved less than
    :data:`LEAST` bytes in the last ``window`` (counted only while a connection is open: trying one is bounded by the
    socket's own timeouts)."""
    if pulse is None:  # nothing to watch (the tests' mailbox in memory): no task made
        return await work
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    marks: deque[tuple[float, int]] = deque([(loop.time(), pulse.moved)])
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=window / 4)
            if done:
                return task.result()
            now, moved = loop.time(), pulse.moved
            if not pulse.open:  # a connection being tried, or a wait between tries: their own timeouts apply
                marks = deque([(now, moved)])
                continue
            while len(marks) > 1 and marks[1][0] <= now - window:
                marks.popleft()
            since, before = marks[0]
            if now - since >= window and moved - before < LEAST:
                why = (
                    f"imap: {moved - before} bytes came and went in {now - since:.3g} s while waiting on the server "
                    f"({what}): too slow to be of use; its connection is closed and opened again"
                )
                pulse.end(why)
                with contextlib.suppress(Exception):  # it fails at once now that its connection is closed
                    await task
                raise TooSlow(why)  # even if it ended just now: what it read may be cut, as on a dropped connection
            marks.append((now, moved))
    except asyncio.CancelledError:  # nobody waits for its answer now (a stop): the thread is let go at once
        pulse.end("the agent is stopping")
        task.cancel()
        raise
