"""Every invite we build, read by independent parsers and real calendar programs.

icalendar, vobject and ics parse the calendar part; ``khal printics`` shows it at the student's local time;
a real Radicale server (started here on 127.0.0.1, auth none, storage in tmp_path) must store it with 201.
"""

from __future__ import annotations

import base64
import email
import email.policy
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import ics
import pytest
import vobject
from icalendar import Calendar

from agent.rules.invites import (
    Meeting,
    Party,
    build_cancel,
    build_request,
    build_student_copy,
    build_suggestion,
    make_uid,
    parse_itip,
)
from agent.rules.slots import Slot

CHICAGO = ZoneInfo("America/Chicago")
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
STUDENT = Party("Jürgen Müller", "juergen@uni.example")
MENTOR = Party("Dr. Ana Rivera", "arivera@hospital.example.org")
# 16:00 in Chicago two days after its spring switch, while Berlin is still on winter time: 22:00 there.
SLOT = Slot(datetime(2026, 3, 10, 16, 0, tzinfo=CHICAGO), datetime(2026, 3, 10, 16, 30, tzinfo=CHICAGO))
MEETING = Meeting(
    make_uid("round1-0", "uni.example"),
    0,
    SLOT,
    "Mentoring: Jürgen Müller — Ana Rivera",
    "Clinic office 3B, Raum für Besprechungen",
    "Mentoring meeting; bring the case log",
)

BUILDERS: dict[str, Callable[[], EmailMessage]] = {
    "request": lambda: build_request(
        MEETING, organizer=STUDENT, attendee=MENTOR, mentor_zone=CHICAGO, student_zone=BERLIN, now=NOW
    ),
    "cancel": lambda: build_cancel(
        Meeting(MEETING.uid, 1, SLOT, MEETING.summary),
        organizer=STUDENT,
        attendee=MENTOR,
        mentor_zone=CHICAGO,
        student_zone=BERLIN,
        now=NOW,
    ),
    "student copy": lambda: build_student_copy(
        MEETING, student=STUDENT, mentor=MENTOR, student_zone=BERLIN, mentor_zone=CHICAGO, now=NOW
    ),
    "suggestion": lambda: build_suggestion(
        Meeting("suggest-1@uni.example", 0, SLOT, "Meet Dr. Ana Rivera?"),
        student=STUDENT,
        mentor=MENTOR,
        waiting=4,
        student_zone=BERLIN,
        mentor_zone=CHICAGO,
        now=NOW,
    ),
}
METHODS = {"request": "REQUEST", "cancel": "CANCEL", "student copy": "PUBLISH", "suggestion": "REQUEST"}


def calendar_bytes(name: str) -> bytes:
    """The text/calendar part of the built message, as it arrives after a trip through SMTP."""
    raw = BUILDERS[name]().as_bytes(policy=email.policy.SMTP)
    message = email.message_from_bytes(raw, policy=email.policy.default)
    parts = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1
    assert parts[0].get_param("method") == METHODS[name]
    data = parts[0].get_payload(decode=True)
    assert isinstance(data, bytes)
    return data


KINDS = sorted(BUILDERS)


@pytest.mark.parametrize("name", KINDS)
def test_icalendar_reads_it_without_errors(name: str) -> None:
    calendar = Calendar.from_ical(calendar_bytes(name))
    assert calendar["METHOD"] == METHODS[name]
    (event,) = calendar.walk("VEVENT")
    assert not event.errors and not calendar.errors
    assert event.decoded("DTSTART") == SLOT.utc_start
    assert event.decoded("DTEND") == SLOT.utc_end


@pytest.mark.parametrize("name", KINDS)
def test_vobject_reads_it(name: str) -> None:
    calendar: Any = vobject.readOne(calendar_bytes(name).decode("utf-8"))
    assert calendar.method.value == METHODS[name]
    event = calendar.vevent
    assert event.dtstart.value == SLOT.utc_start
    assert event.dtend.value == SLOT.utc_end
    assert event.uid.value
    assert event.organizer.params["CN"][0] in (STUDENT.name, f"mentor-agent for {STUDENT.name}")


@pytest.mark.parametrize("name", KINDS)
def test_ics_py_reads_it(name: str) -> None:
    calendar = ics.Calendar(calendar_bytes(name).decode("utf-8"))
    (event,) = calendar.events
    assert event.begin is not None and event.begin.datetime == SLOT.utc_start
    assert event.end.datetime == SLOT.utc_end


def test_round_trip_through_our_own_parser() -> None:
    for name in KINDS:
        raw = BUILDERS[name]().as_bytes(policy=email.policy.SMTP)
        (parsed,) = parse_itip(raw)  # the inline part and the attachment are one object
        assert parsed.method == METHODS[name] and parsed.start == SLOT.utc_start


# -- khal ---------------------------------------------------------------------------------------------------

KHAL = shutil.which("khal")


@pytest.mark.skipif(KHAL is None, reason="khal is not installed (Debian package khal)")
@pytest.mark.parametrize("name", KINDS)
def test_khal_shows_it_at_the_students_local_time(name: str, tmp_path: Path) -> None:
    (tmp_path / "calendar").mkdir()
    config = tmp_path / "khal.conf"
    config.write_text(
        f"[calendars]\n[[test]]\npath = {tmp_path / 'calendar'}\n"
        "[locale]\nlocal_timezone = Europe/Berlin\ndefault_timezone = Europe/Berlin\n"
        "timeformat = %H:%M\ndateformat = %Y-%m-%d\nlongdateformat = %Y-%m-%d\n"
        "datetimeformat = %Y-%m-%d %H:%M\nlongdatetimeformat = %Y-%m-%d %H:%M\n"
        f"[sqlite]\npath = {tmp_path / 'khal.db'}\n"
    )
    file = tmp_path / "invite.ics"
    file.write_bytes(calendar_bytes(name))
    assert KHAL is not None
    result = subprocess.run(
        [KHAL, "-c", str(config), "printics", str(file)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "1 events found" in result.stdout
    assert "2026-03-10 22:00-2026-03-10 22:30" in result.stdout


# -- Radicale -----------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Radicale:
    def __init__(self, base: str) -> None:
        self.base = base
        self.auth = "Basic " + base64.b64encode(b"student:unused").decode()

    def request(self, method: str, path: str, body: bytes | None = None, **headers: str) -> tuple[int, bytes]:
        request = urllib.request.Request(
            self.base + path, data=body, method=method, headers={"Authorization": self.auth, **headers}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()


@pytest.fixture
def radicale(tmp_path: Path) -> Iterator[Radicale]:
    port = _free_port()
    log = (tmp_path / "radicale.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "radicale",
            "--config",
            "",
            "--server-hosts",
            f"127.0.0.1:{port}",
            "--auth-type",
            "none",
            "--rights-type",
            "owner_only",
            "--storage-filesystem-folder",
            str(tmp_path / "collections"),
            "--logging-level",
            "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp_path / "radicale.log").read_text()) from None
                time.sleep(0.05)
        server = Radicale(f"http://127.0.0.1:{port}")
        assert server.request("PROPFIND", "/student/", Depth="0")[0] == 207
        assert server.request("MKCALENDAR", "/student/meetings/")[0] == 201
        yield server
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.mark.parametrize("name", KINDS)
def test_radicale_stores_it(name: str, radicale: Radicale) -> None:
    data = calendar_bytes(name)
    status, body = radicale.request(
        "PUT", "/student/meetings/event.ics", data, **{"Content-Type": "text/calendar; charset=utf-8"}
    )
    assert status == 201, body
    status, stored = radicale.request("GET", "/student/meetings/event.ics")
    assert status == 200
    (event,) = Calendar.from_ical(stored).walk("VEVENT")
    assert event.decoded("DTSTART") == SLOT.utc_start


def test_radicale_refuses_broken_calendar_so_the_check_means_something(radicale: Radicale) -> None:
    status, _ = radicale.request(
        "PUT",
        "/student/meetings/bad.ics",
        b"BEGIN:VCALENDAR\r\nnot a line\r\nEND:VCALENDAR\r\n",
        **{"Content-Type": "text/calendar"},
    )
    assert status == 400
