"""setup's door question: the rows of agent/cli/doors.py, and what setup writes and prints for a program."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.cli.doors import CLIENTS, DOORS, steps_for
from agent.config.settings import load_settings
from tests.agent_process import Agent, mail
from tests.test_setup import Student, cli, student

__all__ = ["student"]  # the fixture


def test_every_program_named_in_the_issue_has_a_row_and_its_steps_read_whole() -> None:
    names = " / ".join(client.name for client in CLIENTS)
    for wanted in ("Thunderbird", "Apple Mail", "Outlook (desktop)", "Outlook on the web", "Gmail on the web",
                   "Gmail app", "iPhone", "Thunderbird for Android", "mutt", "neomutt", "aerc"):  # fmt: skip
        assert wanted in names
    assert len({client.key for client in CLIENTS}) == len(CLIENTS)
    for client in CLIENTS:
        assert client.door in DOORS
        lines = steps_for(client, outbox="Mentor Outbox", password="s3cret")
        assert all("{" not in line for line in lines), lines  # every placeholder filled


@pytest.mark.servers
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_setup_for_a_program_that_sends_opens_the_door_and_prints_its_settings(student: Student) -> None:
    result = cli(
        "setup", "--yes", *student.flags(client="thunderbird", **{"submission-port": "2587"}), cwd=student.root
    )
    assert result.returncode == 0, result.stdout + result.stderr
    settings = load_settings(student.config)
    assert settings.submission is not None and settings.submission.port == 2587
    secret = (Path(student.root) / "state" / "submission-password").read_text().strip()
    assert "Thunderbird: Send as usual, through mentor-agent as the outgoing server." in result.stdout
    assert f"server 127.0.0.1, port 2587, no encryption on this computer (STARTTLS beyond it), user mentor-agent, " \
           f"password {secret}" in result.stdout  # fmt: skip


@pytest.mark.servers
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_setup_for_a_program_with_the_star_door_prints_its_steps_and_opens_no_port(student: Student) -> None:
    result = cli("setup", "--yes", *student.flags(client="outlook-web"), cwd=student.root)
    assert result.returncode == 0, result.stdout + result.stderr
    settings = load_settings(student.config)
    assert settings.submission is None
    assert settings.drafts.take_flagged, "the star door is opened for a program whose door it is"
    assert "Outlook on the web: Flag (star) the finished draft." in result.stdout
    assert "In Drafts, flag it" in result.stdout


@pytest.mark.servers
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_setup_keeps_the_star_doors_baseline_a_star_set_after_it_is_taken_one_set_before_is_not(
    student: Student,
) -> None:
    """Found by the third hostile round: a draft starred between setup and the daemon's first pass counted as an
    old flag (the baseline was the first pass's). setup, which opens the door, keeps the baseline itself."""
    with student.dovecot.client(student.user) as client:  # starred in June as a reminder
        client.append("Drafts", mail("(unfinished) residency thoughts"), flags=(b"\\Draft", b"\\Flagged"),
                      msg_time=datetime(2026, 6, 2, 22, 10, tzinfo=UTC))  # fmt: skip
    config = student.root / "config.toml"
    result = cli("setup", "--yes", *student.flags(client="outlook-web", config=str(config)), cwd=student.root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 draft to a mentor is flagged in Drafts now: left alone" in result.stdout
    assert "  - (unfinished) residency thoughts" in result.stdout
    # After setup, before the daemon starts: she stars the question she finished writing ten minutes ago
    with student.dovecot.client(student.user) as client:
        client.append("Drafts", mail("Finished question"), flags=(b"\\Draft", b"\\Flagged"),
                      msg_time=datetime.now(UTC) - timedelta(minutes=10))  # fmt: skip
    config.write_text(config.read_text().replace("take_flagged = true", "take_flagged = true\nsettle = 0"))
    agent = Agent(student.root, student.dovecot, student.user, student.smtp)
    try:
        agent.start()
        assert agent.smtp.wait_for(1)[0].content.count(b"Finished question") == 1
        # The pass that took it looked at both (settle 0): had it meant to take the reminder, it had
        assert agent.subjects("Drafts") == ["(unfinished) residency thoughts"]
        assert not [n for n in agent.notices() if "flagged draft left" in str(n["Subject"])], "told by setup"
    finally:
        agent.end()


def test_the_guide_shows_each_programs_steps_as_setup_prints_them() -> None:
    """docs/handing-over.md has a section per program holding exactly the steps `setup --client` prints."""
    guide = (Path(__file__).resolve().parent.parent / "docs" / "handing-over.md").read_text(encoding="utf-8")
    for client in CLIENTS:
        lines = steps_for(client, outbox="Mentor Outbox", password="PASSWORD")
        section = guide.split(f"### {client.name} (`--client {client.key}`)", 1)[1].split("\n### ", 1)[0]
        assert lines[0].split(": ", 1)[1] in section, client.key
        for line in lines[1:]:
            assert line.strip().removeprefix("Also: ") in section, (client.key, line)
