"""`mentor-agent status` and a send in doubt: it counts against the day and the week as the pacing rules count it
(so "today 1/1" says why her next one waits), and it is listed with where it is and what to do.

Before: status counted only what was known to have reached the mentor, so after a cut line it said "today 0/1"
while her next message was held "because one went today", and the message in doubt was not named at all.
(On the in-memory mailbox and the real aiosmtpd server, as tests/test_in_doubt_counts_on_fake.py.)"""

from __future__ import annotations

from datetime import datetime, timedelta

from agent.store.status import collect, render
from tests.agent_process import OUTBOX
from tests.test_in_doubt_counts_on_fake import START, hourly  # noqa: F401  (the fixture)
from tests.test_passes_on_fake import Pass, mail


def test_a_send_in_doubt_counts_in_status_and_is_named_there(hourly: tuple[Pass, list[datetime]]) -> None:  # noqa: F811
    made, clock = hourly
    made.server.put(OUTBOX, mail("in doubt"))
    made.server.put(OUTBOX, mail("her next"))
    made.smtp.drop_after_data()
    for _ in range(3):
        made.run()
    assert made.subjects("Needs attention") == ["in doubt"]
    clock[0] = START + timedelta(minutes=5)
    data = collect(made.world.book, made.world.ledger, clock[0])
    (mentor,) = data["mentors"]
    assert mentor["today"]["sent"] == 1 and mentor["this_week"]["sent"] == 1
    assert mentor["weeks"][-1]["sent"] == 1
    (doubt,) = mentor["in_doubt"]
    assert doubt["subject"] == "in doubt" and doubt["handed_over"] == START.isoformat()
    assert [item["subject"] for item in mentor["waiting"]] == ["her next"]
    text = render(data, color=False, zone=made.settings.student.zone)
    assert f"today 1/{mentor['today']['limit']}" in text, text
    lines = text.splitlines()
    at = next(n for n, line in enumerate(lines) if f"[{doubt['id']}] in doubt" in line)
    assert lines[at].endswith("in doubt, in Needs attention"), text
    assert "handed to the SMTP server" in lines[at + 1] and "counted as sent" in lines[at + 2], text


def test_once_she_moves_it_back_it_is_no_longer_listed_as_in_doubt(hourly: tuple[Pass, list[datetime]]) -> None:  # noqa: F811
    made, clock = hourly
    made.server.put(OUTBOX, mail("in doubt"))
    made.smtp.drop_after_data()
    made.run()
    made.run()
    (uid,) = made.server.messages("Needs attention")
    clock[0] = START + timedelta(minutes=2)
    made.box.move("Needs attention", uid, OUTBOX)
    made.run()
    (mentor,) = collect(made.world.book, made.world.ledger, clock[0])["mentors"]
    assert mentor["in_doubt"] == []
    assert mentor["today"]["sent"] == 1, "the hand-over still counts, as the pacing rules count it"
