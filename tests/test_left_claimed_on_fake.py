"""A message left claimed (in Sending, never handed to SMTP) by a stop or a kill right after the claim goes first
after the restart only if its mentor's policy allows it then; otherwise it goes back to Scheduled, paced and told
like any other. (On the in-memory mailbox and the real aiosmtpd server; the hostile round's finding A.)"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.reconcile.recovery import recover
from agent.rules.policy import PolicyBook, load_policies
from agent.store.ledger import ATTENTION, CLAIMED, SCHEDULED
from tests.agent_process import OUTBOX, policy_text
from tests.servers.smtp import SmtpServer
from tests.test_passes_on_fake import Pass, mail

CLOSING = datetime(2026, 12, 7, 23, 59, 30, tzinfo=UTC)  # 17:59:30 in Chicago: her window 08:00-18:00 closes


@pytest.fixture
def windowed(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[tuple[Pass, list[datetime]]]:
    clock = [CLOSING]
    made = Pass(tmp_path, smtp_server, policy_text(min_gap="1h", windows='"Mon-Sun 08:00-18:00"'))
    made.world.clock = lambda: clock[0]
    try:
        yield made, clock
    finally:
        made.world.ledger.close()


def stopped_after_the_claim(made: Pass) -> None:
    """One pass stopped (SIGTERM) right after its claim: what was claimed stays in Sending, never sent."""
    box = made.box
    original = box.move_many

    def move_many(folder: str, uids: Sequence[int], target: str, *, claim: bool = True) -> dict[int, int | None]:
        moved = original(folder, uids, target, claim=claim)
        if target == "Sending":
            made.world.stopping.set()
        return moved

    box.move_many = move_many  # type: ignore[method-assign]
    try:
        made.run()
    finally:
        box.move_many = original  # type: ignore[method-assign]
        made.world.stopping.clear()


def restart(made: Pass) -> None:
    asyncio.run(recover(made.world))
    made.run()


def test_left_claimed_after_her_window_closed_goes_back_to_scheduled_and_waits_for_it(
    windowed: tuple[Pass, list[datetime]],
) -> None:
    made, clock = windowed
    made.server.put(OUTBOX, mail("to a friend", to="friend@example.org"))
    for n in range(3):
        made.server.put(OUTBOX, mail(f"backlog {n}"))
    stopped_after_the_claim(made)
    assert made.received() == []
    claimed = made.world.ledger.in_states(CLAIMED)
    assert "backlog 0" in [row.subject for row in claimed] and made.subjects("Sending")
    clock[0] = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)  # 21:00 in Chicago: her window closed at 18:00
    restart(made)
    restart(made)
    assert made.received() == ["to a friend"], "a message to no mentor left claimed just goes; hers waits"
    assert made.subjects("Sending") == []
    assert sorted(made.subjects("Scheduled")) == ["backlog 0", "backlog 1", "backlog 2"]
    rows = {row.subject: row for row in made.world.ledger.in_states(SCHEDULED)}
    opens = datetime(2026, 12, 8, 14, 0, tzinfo=UTC)  # 08:00 in Chicago
    assert [rows[f"backlog {n}"].due for n in range(3)] == [opens + timedelta(hours=n) for n in range(3)]
    assert made.subjects("INBOX") == ["[mentor-agent] Scheduled: 3 messages to Dr. Ana Rivera"], "told once"
    assert rows["backlog 0"].told.startswith(opens.isoformat()), "told of it, like any other"
    clock[0] = datetime(2026, 12, 8, 14, 0, 1, tzinfo=UTC)
    made.run()
    assert made.received() == ["to a friend", "backlog 0"]


def test_left_claimed_goes_first_after_the_restart_when_her_policy_allows_it(
    windowed: tuple[Pass, list[datetime]],
) -> None:
    made, clock = windowed
    for n in range(3):
        made.server.put(OUTBOX, mail(f"backlog {n}"))
    clock[0] = CLOSING - timedelta(hours=3)
    stopped_after_the_claim(made)
    (claimed,) = made.world.ledger.in_states(CLAIMED)
    clock[0] += timedelta(minutes=5)  # still in her window, nothing sent to her for an hour
    restart(made)
    restart(made)
    assert made.received() == [claimed.subject], "it goes first, and alone: the next waits an hour"
    assert made.subjects("Sending") == []


def test_left_claimed_to_a_mentor_whose_policy_is_gone_is_held_with_her_others(
    windowed: tuple[Pass, list[datetime]],
) -> None:
    made, clock = windowed
    for n in range(3):
        made.server.put(OUTBOX, mail(f"backlog {n}"))
    stopped_after_the_claim(made)
    (claimed,) = made.world.ledger.in_states(CLAIMED)
    policies = made.settings.policies_dir
    (policies / "rivera.toml").rename(policies / "rivera.toml.bak")  # removed while the daemon was stopped
    made.world.book = PolicyBook(load_policies(policies))
    clock[0] = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)  # 21:00 in Chicago
    restart(made)
    restart(made)
    assert made.received() == [], "her policy is gone: held, like her others, never sent unpaced"
    assert made.subjects("Sending") == []
    assert made.subjects("Scheduled") == ["backlog 0"], "back to Scheduled; her others stay where they are"
    assert sorted(made.subjects(OUTBOX)) == ["backlog 1", "backlog 2"]
    notices = [s for s in made.subjects("INBOX") if s.startswith("[mentor-agent] Held:")]
    assert len(notices) == 1 and "3 message(s)" in notices[0], "told once, of all three"
    assert made.world.ledger.get(claimed.key).state == SCHEDULED  # type: ignore[union-attr]


def test_left_claimed_flagged_to_a_mentor_whose_policy_is_gone_goes(windowed: tuple[Pass, list[datetime]]) -> None:
    made, _ = windowed
    made.server.put(OUTBOX, mail("backlog 0"))
    stopped_after_the_claim(made)
    (claimed,) = made.world.ledger.in_states(CLAIMED)
    made.world.ledger.update(claimed.key, forced=True)  # she had flagged it to go anyway
    (made.settings.policies_dir / "rivera.toml").unlink()
    made.world.book = PolicyBook(load_policies(made.settings.policies_dir))
    restart(made)
    assert made.received() == ["backlog 0"], "flagged: it goes, as carry_out sends a flagged orphan"


def test_left_claimed_to_no_mentor_after_pass_through_was_turned_off_goes_back_to_the_outbox(
    windowed: tuple[Pass, list[datetime]],
) -> None:
    made, _ = windowed
    made.server.put(OUTBOX, mail("to a friend", to="friend@example.org"))
    made.server.put(OUTBOX, mail("to another friend", to="other@example.org"))
    stopped_after_the_claim(made)
    assert len(made.world.ledger.in_states(CLAIMED)) == 2
    made.world.settings = made.world.settings.model_copy(update={"pass_through": False})
    restart(made)
    restart(made)
    assert made.received() == [], "pass_through is off: mail to no mentor is not sent"
    assert made.subjects("Sending") == []
    assert sorted(made.subjects(OUTBOX)) == ["to a friend", "to another friend"], "left in the Outbox"
    rows = made.world.ledger.in_states(ATTENTION)
    assert sorted((row.subject, row.detail) for row in rows) == [
        ("to a friend", "pass_through is off"),
        ("to another friend", "pass_through is off"),
    ]
    made.world.settings = made.world.settings.model_copy(update={"pass_through": True})
    made.run()
    assert sorted(made.received()) == ["to a friend", "to another friend"], "turned on again: they go"
