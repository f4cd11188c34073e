"""`mentor-agent status` and a send in doubt: it counts against the day and the week as the pacing rules count it
(so "today 1/1" says why her next one waits), and it is listed with where it is and what to do.

Before: status counted only what was known to have reached the mentor, so after a cut line it said "today 0/1"
while her next message was held "because one went today", and the message in doubt was not named at all.
(On the in-memory mailbox and the real aiosmtpd server, as tests/test_in_doubt_counts_on_fake.py.)"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.reconcile.intake import know_mentors
from agent.rules.policy import PolicyBook, load_policies
from agent.store.ledger import ATTENTION
from agent.store.status import collect, render
from tests.agent_process import MENTOR, OUTBOX
from tests.servers.smtp import SmtpServer
from tests.test_in_doubt_counts_on_fake import (  # noqa: F401  (the fixture)
    START,
    _digest_in_doubt_on_day_two,
    hourly,
    killed_while_sending,
)
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
    assert lines[at].endswith("in doubt (put in Needs attention)"), text
    assert "sending began" in lines[at + 1] and "whether the server took it is not known" in lines[at + 1], text
    assert "counted as sent" in lines[at + 2], text


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


# -- found by the hostile round: what is listed is what is counted, and nothing is hidden -------------------------

KIM = "jkim@clinic.example.org"


def _in_doubt(made: Pass, subject: str = "in doubt", cc: str = "") -> None:
    made.server.put(OUTBOX, mail(subject, Cc=cc) if cc else mail(subject))
    made.smtp.drop_after_data()
    made.run()
    made.run()
    assert made.subjects("Needs attention") == [subject]


def _policies_changed(made: Pass) -> None:
    made.world.book = PolicyBook(load_policies(made.settings.policies_dir))
    know_mentors(made.world)


def _status(made: Pass, now: datetime) -> tuple[dict[str, Any], str]:
    data = collect(made.world.book, made.world.ledger, now)
    return data, render(data, color=False, zone=made.settings.student.zone)


def test_after_her_address_changed_it_is_listed_only_where_it_counts(hourly: tuple[Pass, list[datetime]]) -> None:  # noqa: F811
    made, _ = hourly
    _in_doubt(made)
    path = made.settings.policies_dir / "rivera.toml"
    path.write_text(path.read_text().replace(MENTOR, "ana.rivera@newhospital.example.org"))
    _policies_changed(made)
    data, text = _status(made, START + timedelta(minutes=5))
    (mentor,) = data["mentors"]
    assert mentor["in_doubt"] == [] and mentor["today"]["sent"] == 0, text  # the pacing rules match by address
    (uncounted,) = data["in_doubt_uncounted"]
    assert uncounted["subject"] == "in doubt" and uncounted["to"] == [MENTOR]
    assert "counted for no mentor" in text and "counted as sent" not in text, text


def test_with_her_policy_file_gone_it_is_still_listed(hourly: tuple[Pass, list[datetime]]) -> None:  # noqa: F811
    made, _ = hourly
    _in_doubt(made)
    (made.settings.policies_dir / "rivera.toml").unlink()
    _policies_changed(made)
    data, text = _status(made, START + timedelta(minutes=5))
    assert [item["subject"] for item in data["in_doubt_uncounted"]] == ["in doubt"], text
    assert "[" + data["in_doubt_uncounted"][0]["id"] + "] in doubt" in text


def test_a_copy_to_a_mentor_given_a_policy_later_is_listed_under_each_it_counts_for(
    hourly: tuple[Pass, list[datetime]],  # noqa: F811
) -> None:
    made, _ = hourly
    _in_doubt(made, "cc kim", cc=KIM)
    path = made.settings.policies_dir
    kim = (path / "rivera.toml").read_text().replace("Dr. Ana Rivera", "Dr. Jae Kim").replace(MENTOR, KIM)
    (path / "kim.toml").write_text(kim)
    _policies_changed(made)
    data, text = _status(made, START + timedelta(minutes=5))
    for mentor in data["mentors"]:
        assert mentor["today"]["sent"] == 1 and [i["subject"] for i in mentor["in_doubt"]] == ["cc kim"], text
    assert data["in_doubt_uncounted"] == []


def test_killed_before_the_smtp_server_was_reached_it_is_not_said_to_be_handed_over(
    hourly: tuple[Pass, list[datetime]],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made, clock = hourly
    killed_while_sending(hourly, monkeypatch, "never left")
    _, text = _status(made, clock[0])
    assert made.received() == []
    assert "never left" in text and "whether the server took it is not known" in text, text
    assert "handed to the SMTP server" not in text


def test_older_than_the_weeks_shown_it_is_no_longer_listed_as_counted(hourly: tuple[Pass, list[datetime]]) -> None:  # noqa: F811
    made, _ = hourly
    _in_doubt(made, "last winter")
    data, text = _status(made, START + timedelta(days=364))
    (mentor,) = data["mentors"]
    assert mentor["in_doubt"] == [] and data["in_doubt_uncounted"] == [], text
    assert "last winter" not in text


def test_a_time_written_without_an_offset_is_read_as_utc_not_a_crash(hourly: tuple[Pass, list[datetime]]) -> None:  # noqa: F811
    made, _ = hourly
    _in_doubt(made)
    (row,) = made.world.ledger.in_states(ATTENTION)
    made.world.ledger.db.execute("UPDATE messages SET sent_at = ? WHERE key = ?", ("2026-12-07T16:00:00", row.key))
    data, text = _status(made, START + timedelta(minutes=5))
    (mentor,) = data["mentors"]
    assert mentor["today"]["sent"] == 1 and mentor["in_doubt"][0]["handed_over"] == START.isoformat(), text


def test_outside_her_chart_but_inside_eight_weeks_it_is_not_said_to_have_no_policy(
    hourly: tuple[Pass, list[datetime]],  # noqa: F811
) -> None:
    """Found by the second hostile round: the chart starts on a Monday in her zone, seven weeks back; a send in doubt
    on the Sunday before, looked at eight weeks on, fell under "no policy names its recipients now"."""
    made, _ = hourly
    _in_doubt(made)
    (row,) = made.world.ledger.in_states(ATTENTION)
    sunday = datetime.fromisoformat("2026-12-06T20:00:00+00:00")
    made.world.ledger.db.execute("UPDATE messages SET sent_at = ? WHERE key = ?", (sunday.isoformat(), row.key))
    data, text = _status(made, sunday + timedelta(weeks=8) - timedelta(hours=1))
    assert data["in_doubt_uncounted"] == [], text
    assert "no policy names" not in text


def test_after_one_message_of_a_digest_in_doubt_is_moved_back_the_others_are_still_listed(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """Found by a hostile round: the digest of B, C and D in doubt; once she moved B back, its hand-over is counted
    through the record kept for it, and C and D, still in doubt in Needs attention, were no longer listed."""
    made, clock = _digest_in_doubt_on_day_two(tmp_path, smtp_server)
    try:
        for _ in range(3):
            made.run()
        uid = next(u for u, raw in made.server.messages("Needs attention").items() if b"Subject: B" in raw)
        clock[0] += timedelta(minutes=10)
        made.box.move("Needs attention", uid, OUTBOX)
        for _ in range(2):
            made.run()
        (mentor,) = collect(made.world.book, made.world.ledger, clock[0])["mentors"]
        listed = [(d["subject"], [w["subject"] for w in d["with"]]) for d in mentor["in_doubt"]]
        assert listed == [("C", ["D"])], listed
        assert made.subjects("Needs attention") == ["C", "D"]
    finally:
        made.world.ledger.close()
