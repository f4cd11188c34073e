"""Counting what became of each message: delivered once, reported (Needs attention + notice), lost or duplicated."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from tests.agent_process import OPEN_POLICY, Agent, parse

# No limit that hundreds of messages could reach: every message to the mentor may go at once.
UNLIMITED_POLICY = OPEN_POLICY.format(
    max_per_day=100_000, min_gap="0", windows='"Mon-Sun 00:00-24:00"', max_unanswered=100_000, over_limit="delay"
).replace("max_per_week = 100\n", "max_per_week = 100000\n")


@dataclass
class Tally:
    delivered: int = 0  # exactly once at the SMTP server (and not reported)
    reported: int = 0  # in Needs attention with a notice naming it (at the server at most once)
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    unreported_attention: list[str] = field(default_factory=list)  # in Needs attention, but no notice says so
    sent_twice_in_sent: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, object]:
        return {
            "delivered": self.delivered,
            "reported": self.reported,
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "filed_twice": len(self.sent_twice_in_sent),
        }


def _key(subject: object) -> str:
    """Test subjects are one word; anything after it (e.g. an injection attempt) is not part of the name."""
    words = str(subject).split()
    return words[0] if words else ""


def received_subjects(agent: Agent) -> Counter[str]:
    return Counter(_key(parse(m.content)["Subject"]) for m in agent.smtp.messages)


def _read(agent: Agent, folder: str) -> dict[int, bytes]:
    """``agent.folder_raw``, again when the daemon moved a message between the helper's SEARCH and FETCH
    (tests/servers/dovecot.py ``messages`` then meets a FETCH item without a body: TypeError)."""
    for _ in range(10):
        try:
            return agent.folder_raw(folder)
        except TypeError:
            time.sleep(0.1)
    return agent.folder_raw(folder)


def folder_subjects(agent: Agent, folder: str) -> list[str]:
    return [_key(parse(raw)["Subject"]) for raw in _read(agent, folder).values()]


def _names(subject: str, text: str) -> bool:
    return re.search(f"“{re.escape(subject)}[”\\s]", text) is not None


def account(agent: Agent, subjects: Iterable[str], *, notice_must_say: str = "") -> Tally:
    """What became of each subject. ``notice_must_say``: text every notice about a reported message contains."""
    received = received_subjects(agent)
    attention = Counter(folder_subjects(agent, "Needs attention"))
    notices = [str(n["Subject"]) + "\n" + n.get_content() for n in agent.notices()]
    filed = Counter(folder_subjects(agent, "Sent"))
    tally = Tally()
    for subject in subjects:
        told = [n for n in notices if _names(subject, n) and notice_must_say in n]
        if received[subject] > 1:
            tally.duplicated.append(subject)
        elif attention[subject] and told:
            tally.reported += 1
        elif attention[subject]:
            tally.unreported_attention.append(subject)
        elif received[subject] == 1:
            tally.delivered += 1
        else:
            tally.lost.append(subject)
        if filed[subject] > 1:
            tally.sent_twice_in_sent.append(subject)
    return tally


def settle(
    agent: Agent, subjects: list[str], timeout: float, *, folders: tuple[str, ...] = ("Outbox", "Sending")
) -> float:
    """Wait until ``folders`` are empty and every subject is at the server, in Sent, or in Needs attention.

    Returns the seconds waited; does not raise (the accounting that follows says what is missing).
    """
    began = time.monotonic()
    wanted = set(subjects)
    while time.monotonic() - began < timeout and not agent.process_ended():
        if all(not _read(agent, f) for f in folders):
            attention = set(folder_subjects(agent, "Needs attention"))
            done = set(received_subjects(agent)) | attention
            if wanted <= done and wanted - attention <= set(folder_subjects(agent, "Sent")):
                return time.monotonic() - began
        time.sleep(0.5)
    return time.monotonic() - began
