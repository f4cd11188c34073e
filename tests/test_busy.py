"""Busy times from .ics files and URLs: recurrences, exceptions, all-day events, free and cancelled events."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.calendars.busy import busy_from_ics, clip, load_busy
from agent.errors import UserError

ICS = Path(__file__).parent / "ics"
BERLIN = ZoneInfo("Europe/Berlin")
START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 5, 1, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_expands_recurrences_exceptions_all_day_and_skips_free_and_cancelled() -> None:
    busy = busy_from_ics((ICS / "student-busy.ics").read_bytes(), START, END, BERLIN)
    assert busy == [
        (utc(2026, 3, 16, 8), utc(2026, 3, 16, 9, 30)),  # Monday lecture, 09:00 CET
        # 17 Mar (transparent) and 18 Mar (cancelled) are free; 23 Mar is an EXDATE
        (utc(2026, 3, 19, 17), utc(2026, 3, 19, 18)),  # floating 18:00, read in the student's zone
        (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22)),  # all-day on the 23-hour spring-forward day
        (utc(2026, 3, 31, 12), utc(2026, 3, 31, 13, 30)),  # the 30 Mar lecture, moved by RECURRENCE-ID
        (utc(2026, 4, 6, 7), utc(2026, 4, 6, 8, 30)),  # 09:00 CEST now
        (utc(2026, 4, 13, 7), utc(2026, 4, 13, 8, 30)),
        (utc(2026, 4, 20, 7), utc(2026, 4, 20, 8, 30)),
    ]


def test_all_day_event_follows_the_students_zone() -> None:
    chicago = ZoneInfo("America/Chicago")
    busy = busy_from_ics((ICS / "student-busy.ics").read_bytes(), utc(2026, 3, 28), utc(2026, 3, 30), chicago)
    assert (utc(2026, 3, 29, 5), utc(2026, 3, 30, 5)) in busy


def test_only_events_overlapping_the_range() -> None:
    busy = busy_from_ics((ICS / "student-busy.ics").read_bytes(), utc(2026, 4, 1), utc(2026, 4, 14), BERLIN)
    assert [s.date().isoformat() for s, _ in busy] == ["2026-04-06", "2026-04-13"]
    assert clip(busy, utc(2026, 4, 6, 8), utc(2026, 4, 13, 8)) == [
        (utc(2026, 4, 6, 8), utc(2026, 4, 6, 8, 30)),
        (utc(2026, 4, 13, 7), utc(2026, 4, 13, 8)),
    ]


def test_overlapping_events_are_merged() -> None:
    text = "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//t//t//EN",
            "BEGIN:VEVENT",
            "UID:a",
            "DTSTAMP:20260101T000000Z",
            "DTSTART:20260310T090000Z",
            "DTEND:20260310T100000Z",
            "END:VEVENT",
            "BEGIN:VEVENT",
            "UID:b",
            "DTSTAMP:20260101T000000Z",
            "DTSTART:20260310T093000Z",
            "DTEND:20260310T110000Z",
            "END:VEVENT",
            "BEGIN:VEVENT",
            "UID:c",
            "DTSTAMP:20260101T000000Z",
            "DTSTART:20260310T120000Z",
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
    )
    assert busy_from_ics(text, START, END, BERLIN) == [(utc(2026, 3, 10, 9), utc(2026, 3, 10, 11))]


@pytest.mark.parametrize("text", [b"not a calendar", b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n", b"\xff\xfe\x00"])
def test_bad_file_is_one_user_error_naming_it(text: bytes) -> None:
    with pytest.raises(UserError, match=r"bad\.ics"):
        busy_from_ics(text, START, END, BERLIN, source="bad.ics")


def test_load_busy_reports_every_broken_source(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ics"
    bad.write_text("nonsense")
    with pytest.raises(UserError) as caught:
        load_busy([bad, tmp_path / "missing.ics", ICS / "student-busy.ics"], START, END, BERLIN)
    assert [p.file for p in caught.value.problems] == [str(bad), str(tmp_path / "missing.ics")]


@pytest.fixture
def ics_server() -> Iterator[str]:
    body = (ICS / "student-busy.ics").read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/cal.ics":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/calendar")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_reads_a_url_and_a_file_together(ics_server: str, tmp_path: Path) -> None:
    extra = tmp_path / "extra.ics"
    extra.write_bytes(
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:x\r\n"
        b"DTSTAMP:20260101T000000Z\r\nDTSTART:20260316T093000Z\r\nDTEND:20260316T100000Z\r\nEND:VEVENT\r\n"
        b"END:VCALENDAR\r\n"
    )
    busy = load_busy([f"{ics_server}/cal.ics", extra], START, END, BERLIN)
    assert busy[0] == (utc(2026, 3, 16, 8), utc(2026, 3, 16, 10))
    assert len(busy) == 7
    with pytest.raises(UserError, match="cannot read"):
        load_busy([f"{ics_server}/missing.ics"], START, END, BERLIN)


def test_naive_range_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        busy_from_ics(b"", datetime(2026, 3, 1), END, BERLIN)
