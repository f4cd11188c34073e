"""Nothing about a meeting leaves late (agent/rules/meeting_deadlines.py, agent/reconcile/invite_deadline.py,
agent/reconcile/cancel_pace.py): an agenda *update* of an agreed meeting never leaves after its deadline, and a
CANCEL goes at once, never after the meeting began. Whole daemon passes on the in-memory mailbox and the real aiosmtpd
server, on the virtual clock (tests/test_meetings_on_fake.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agent.reconcile import agenda_desk, delivery, meeting_desk
from agent.rules.meeting_deadlines import cancel_plan, update_send_by
from agent.rules.slots import Slot
from agent.rules.windows import WeeklySchedule, WeeklyWindow
from tests.agent_process import MENTOR, OUTBOX, policy_text
from tests.servers import smtp as smtp_module
from tests.servers.smtp import SmtpServer
from tests.test_meetings_on_fake import Desk, chicago_noon, make
from tests.test_passes_on_fake import mail

KIM = "lkim@hospital.example.org"


class Killed(BaseException):
    """kill -9 at a crash point."""


def methods(desk: Desk) -> list[str]:
    """The iTIP METHOD of each message aiosmtpd received ("" for plain e-mail), in order."""
    found = []
    for received in desk.smtp.messages:
        parts = [p for p in message_from_bytes(received.content).walk() if p.get_content_type() == "text/calendar"]
        found.append(str(parts[0].get_param("method")).upper() if parts else "")
    return found


def told(desk: Desk) -> str:
    return " ".join(" ".join(str(m.get_content()).split()) for m in desk.inbox("notice"))


def settle(desk: Desk) -> None:
    for _ in range(3):
        desk.settle()
        asyncio.run(agenda_desk.pass_once(desk.world))
    desk.settle()


def agree(desk: Desk) -> tuple[Desk, datetime]:
    """A meeting agreed with Rivera tomorrow at 13:00 (the student's zone), its invitation sent today."""
    desk.now = chicago_noon(0, desk.now) - timedelta(hours=2)
    zone = desk.rivera.policy.zone
    tomorrow = (chicago_noon(1, desk.now) + timedelta(hours=1)).astimezone(zone)
    offered = desk.propose(topic="Residency", preferred=Slot(tomorrow, tomorrow + timedelta(minutes=30))).offered[0]
    assert offered.utc_start == tomorrow
    desk.settle()
    uid = next(iter(desk.statuses()))
    desk.reply(uid, "ACCEPTED", start=offered.utc_start, end=offered.utc_end)
    desk.settle()
    assert desk.statuses() == {uid: "accepted"}
    return desk, offered.utc_start


@pytest.fixture
def awaited(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[tuple[Desk, datetime]]:
    """Her answer to the invitation's e-mail still awaited (``max_unanswered = 1``): what follows waits for it."""
    made = make(
        tmp_path, smtp_server, strategy="sequential", proposals=1, timeout="3d", max_unanswered=1, over_limit="agenda"
    )
    yield agree(next(made))
    next(made, None)


@pytest.fixture
def one_a_day(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[tuple[Desk, datetime]]:
    """One e-mail a day: what follows the invitation goes at midnight, her time."""
    made = make(
        tmp_path, smtp_server, strategy="sequential", proposals=1, timeout="3d", max_per_day=1, over_limit="agenda"
    )
    yield agree(next(made))
    next(made, None)


def test_an_agenda_update_held_past_its_deadline_is_not_sent_and_its_questions_go_back_to_email(
    awaited: tuple[Desk, datetime],
) -> None:
    desk, start = awaited
    desk.server.put(OUTBOX, mail("Which elective first?"))  # over the limit: the agenda of the agreed meeting
    settle(desk)
    desk.now = start - timedelta(hours=20)  # within agenda_ahead (24 h): the update is made
    settle(desk)
    assert "On the agenda of your meeting" in " ".join(desk.notices()), desk.notices()
    assert methods(desk) == ["REQUEST"], "the update waits for her answer, like any e-mail"
    desk.now = start - timedelta(minutes=30)  # past its start less min_notice (1h): too late for the update
    settle(desk)
    assert "REQUEST" not in methods(desk)[1:], methods(desk)
    assert "could not leave in time before the meeting" in told(desk), told(desk)
    assert desk.subjects("Scheduled") == ["Which elective first?"], "back to e-mail, still where she sees it"
    desk.later(timedelta(days=8))  # no answer: the one follow-up may go, after the meeting
    settle(desk)
    assert methods(desk) == ["REQUEST", ""], "the question as the follow-up, never the late update"


def test_an_agenda_update_of_a_meeting_she_declined_meanwhile_is_not_sent(awaited: tuple[Desk, datetime]) -> None:
    desk, start = awaited
    desk.now = start - timedelta(hours=20)
    desk.server.put(OUTBOX, mail("Which elective first?"))
    settle(desk)
    assert "On the agenda of your meeting" in " ".join(desk.notices()), desk.notices()
    uid = next(iter(desk.statuses()))
    desk.reply(uid, "DECLINED", start=start, end=start + timedelta(minutes=30))
    settle(desk)
    desk.later(timedelta(days=8))  # no answer to the e-mails: the one follow-up may go
    settle(desk)
    assert "REQUEST" not in methods(desk)[1:], "never an invitation again for a meeting she declined"
    assert "no longer agreed" in told(desk), told(desk)


def test_an_agenda_update_left_claimed_is_not_sent_after_its_deadline(
    one_a_day: tuple[Desk, datetime], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last look before SMTP: the update claimed at midnight, a crash, the agent back after its deadline."""
    desk, start = one_a_day
    desk.server.put(OUTBOX, mail("Which elective first?"))  # over the day's limit: the agenda
    settle(desk)
    assert methods(desk) == ["REQUEST"] and "Which elective first?" in desk.subjects("Scheduled")

    def crash(name: str) -> None:
        if name == "claimed":
            raise Killed(name)

    desk.now = start - timedelta(hours=12)  # the day's limit is over: the update goes
    monkeypatch.setattr(delivery, "crash_point", crash)
    with pytest.raises(Killed):
        settle(desk)
    monkeypatch.undo()
    assert desk.subjects("Sending"), "claimed, never handed to SMTP"
    desk.now = start - timedelta(minutes=10)  # back just before the meeting: past the update's deadline
    desk.restart()
    settle(desk)
    assert "REQUEST" not in methods(desk)[1:], methods(desk)
    assert desk.subjects("Sending") == []
    assert "could not leave in time before the meeting" in told(desk), told(desk)


def test_a_cancel_goes_at_once_whatever_the_pace() -> None:
    """Pure: inside her sending hours at once; outside them when they open, unless that is after the meeting."""
    zone = ZoneInfo("America/Chicago")
    schedule = WeeklySchedule.of((WeeklyWindow.parse("Mon-Fri 09:00-17:00"),), zone)
    tuesday_ten = datetime(2026, 3, 10, 15, tzinfo=UTC)  # 10:00 in Chicago
    assert cancel_plan(schedule, tuesday_ten + timedelta(days=1), tuesday_ten, zone)[0] == tuesday_ten
    evening = tuesday_ten + timedelta(hours=10)  # 20:00: closed until Wednesday 09:00
    at, why = cancel_plan(schedule, evening + timedelta(days=2), evening, zone)
    assert at == datetime(2026, 3, 11, 14, tzinfo=UTC) and "as soon as her sending hours open" in why
    at, why = cancel_plan(schedule, evening + timedelta(hours=2), evening, zone)
    assert at == evening and "outside her sending hours" in why
    start = datetime(2026, 3, 12, 15, tzinfo=UTC)
    assert update_send_by(start, timedelta(hours=48), timedelta(hours=24)) == start - timedelta(hours=12)
    assert update_send_by(start, timedelta(hours=1), timedelta(hours=24)) == start - timedelta(hours=1)


@pytest.fixture
def two_holds(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Desk]:
    """Two times offered at once ("holds"); two e-mails awaiting her answer hold anything more (max_unanswered)."""
    made = make(tmp_path, smtp_server, strategy="holds", proposals=2, timeout="3d", max_unanswered=2)
    desk = next(made)
    desk.now = chicago_noon(1, desk.now)
    desk.propose(topic="Residency")
    desk.settle()
    assert methods(desk) == ["REQUEST", "REQUEST"]
    yield desk
    next(made, None)


def test_a_cancel_is_not_held_by_the_pace(two_holds: Desk) -> None:
    """She accepts one time: the CANCEL of the other goes at once, though two e-mails still await her answer."""
    desk = two_holds
    accepted, other = [uid for _, uid, _ in desk.invitations()]
    desk.reply(accepted, "ACCEPTED")
    desk.settle()
    assert methods(desk) == ["REQUEST", "REQUEST", "CANCEL"], desk.notices()
    assert desk.invitations()[2][1] == other
    assert desk.subjects("Scheduled") == [] and desk.subjects(OUTBOX) == []


def test_a_cancel_never_leaves_after_its_meeting_began(two_holds: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    """Claimed, then a crash; the agent is back after the meeting it calls off began: not sent, the student told."""
    desk = two_holds
    accepted, other = [uid for _, uid, _ in desk.invitations()]
    start = next(s for u, s in desk.world.ledger.db.execute("SELECT uid, start FROM meetings") if u == other)

    def crash(name: str) -> None:
        if name == "claimed":
            raise Killed(name)

    monkeypatch.setattr(delivery, "crash_point", crash)
    desk.reply(accepted, "ACCEPTED")
    with pytest.raises(Killed):
        desk.settle()
    monkeypatch.undo()
    assert desk.subjects("Sending"), "claimed, never handed to SMTP"
    desk.now = datetime.fromisoformat(start) + timedelta(minutes=5)
    desk.restart()
    desk.settle()
    assert methods(desk) == ["REQUEST", "REQUEST"]
    assert desk.subjects("Sending") == []
    assert desk.notices("Cancellation not sent"), desk.notices()


def test_a_cancel_queued_by_the_version_before_is_known_by_its_calendar_part(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """A CANCEL waiting in Scheduled from the version that did not record CANCELs (no extra["cancels"]): after the
    upgrade it is known by its METHOD:CANCEL and UID, and so never leaves after its meeting began."""
    chicago = ZoneInfo("America/Chicago")
    for desk in make(
        tmp_path, smtp_server, strategy="holds", proposals=2, timeout="3d", windows='"Mon-Sun 06:00-06:30"'
    ):
        desk.now = (desk.now + timedelta(days=1)).astimezone(chicago).replace(hour=6, minute=5, second=0, microsecond=0)
        desk.propose(topic="Residency")
        desk.settle()
        rows = desk.world.ledger.db.execute("SELECT start, uid FROM meetings").fetchall()
        (first, early), (second, _) = sorted((datetime.fromisoformat(s), u) for s, u in rows)
        desk.now = desk.now.replace(hour=6, minute=40)  # outside her sending hours: the CANCEL waits for them
        desk.reply(early, "ACCEPTED", start=first, end=first + timedelta(minutes=30))
        desk.settle()
        assert methods(desk) == ["REQUEST", "REQUEST"] and len(desk.subjects("Scheduled")) == 1
        for round_id, text in desk.world.ledger.db.execute("SELECT round_id, state FROM rounds").fetchall():
            data = json.loads(text)
            data.get("extra", {}).pop("cancels", None)  # as the version before wrote the round
            desk.world.ledger.db.execute("UPDATE rounds SET state=? WHERE round_id=?", (json.dumps(data), round_id))
        desk.world.ledger.db.commit()
        desk.now = second + timedelta(minutes=20)  # the agent was stopped; back after the meeting began
        desk.restart()
        desk.settle()
        desk.now = (desk.now + timedelta(days=1)).astimezone(chicago).replace(hour=6, minute=10)  # her next hours
        desk.settle()
        assert "CANCEL" not in methods(desk), "a CANCEL sent after the meeting it calls off began"
        assert desk.notices("Cancellation not sent"), desk.notices()


def test_a_cancel_behind_a_slow_e_mail_in_the_same_pass_is_looked_at_again(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One SMTP connection; an e-mail to another mentor goes first and the server takes five minutes to accept it:
    the CANCEL behind it would start its transaction after its meeting began. Looked at again just before its own
    transaction: taken back, the student told."""
    made = make(tmp_path, smtp_server, strategy="holds", proposals=2, timeout="3d")
    desk = next(made)
    try:
        (tmp_path / "policies" / "kim.toml").write_text(
            policy_text().replace(MENTOR, KIM).replace("Ana Rivera", "Lee Kim")
        )
        desk.world.ledger.close()
        desk.settings = desk.settings.model_copy(
            update={"smtp": desk.settings.smtp.model_copy(update={"connections": 1})}
        )
        desk.world = desk._world()
        desk.now = chicago_noon(1, desk.now)
        desk.propose(topic="Residency")
        desk.settle()
        assert methods(desk) == ["REQUEST", "REQUEST"]
        start = min(datetime.fromisoformat(s) for (s,) in desk.world.ledger.db.execute("SELECT start FROM meetings"))
        desk.now = start - timedelta(minutes=1)
        desk.server.put(OUTBOX, mail("A question for Dr. Kim", to=KIM))
        asyncio.run(meeting_desk.call_off(desk.world, desk.rivera))
        original = smtp_module._Handler.handle_DATA

        async def slow(self: Any, server: Any, session: Any, envelope: Any) -> str:
            answer: str = await original(self, server, session, envelope)
            desk.now += timedelta(minutes=5)  # the server took five minutes to say 250
            return answer

        monkeypatch.setattr(smtp_module._Handler, "handle_DATA", slow)
        desk.run()
        assert methods(desk)[:3] == ["REQUEST", "REQUEST", ""], "the e-mail to Dr. Kim went first"
        assert "CANCEL" not in methods(desk), "a CANCEL handed to SMTP after its meeting began"
        assert desk.notices("Cancellation not sent"), desk.notices()
    finally:
        next(made, None)
