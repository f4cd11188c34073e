"""Every e-mail the mentor receives is one send to the pacing engine: each part of a split digest and each
original too large for any digest counts against her day and week, keeps ``min_gap`` and her windows. A split
release sends only the parts that fit now; the rest wait in Scheduled (the student told when) and go when her
rules allow, and ``status`` counts the e-mails she got.

The attacker's case of issue 20: ``max_per_day = 2``, ``min_gap = "3m"``, ``[digest] max_bytes = 150000``; after
one message went, four waiting ones (two of 80 kB, one of 400 kB, one small) reached her as three e-mails in the
same second. On the in-memory mailbox and the real aiosmtpd server, whole daemon passes on the virtual clock.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.config.settings import Digest
from agent.reconcile.intake import carry_out
from agent.rules.policy import PolicyBook, load_policies
from agent.store.ledger import DONE, SCHEDULED
from agent.store.status import collect
from tests.agent_process import MENTOR, parse, policy_text
from tests.servers.smtp import SmtpServer
from tests.test_split_digest_rest import Paced, run

CHICAGO = ZoneInfo("America/Chicago")
START = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # a Tuesday, 09:00 in Chicago


def letter(subject: str, size: int) -> bytes:
    line = f"A line of {subject}, to make it as long as the attacker wanted.\r\n"
    body = line * max(1, size // len(line))
    return (
        f"From: Student <student@example.org>\r\nTo: {MENTOR}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}.{time.monotonic_ns()}@student.example.org>\r\n"
        f"Date: Tue, 24 Nov 2026 09:00:00 +0000\r\n\r\n{body}"
    ).encode()


class Clocked(Paced):
    """Rivera paced at two a day, three minutes apart, batching; digests of at most 150 kB."""

    def __init__(self, tmp_path: Path, smtp: SmtpServer) -> None:
        super().__init__(tmp_path, smtp, policy_text(max_per_day=2, min_gap="3m", over_limit="batch"))
        self.world.ledger.close()
        self.settings = self.settings.model_copy(update={"digest": Digest(max_bytes=150_000)})
        self.world = self._world()
        self.now = START
        self.sent_at: list[datetime] = []  # the virtual time of each e-mail the mentor received

    def drive(self, until: datetime, step: timedelta = timedelta(minutes=1)) -> None:
        """The daemon's passes up to ``until``, noting when each e-mail reached the mentor."""
        while self.now < until:
            before = len(self.smtp.messages)
            run(carry_out(self.world))
            self.sent_at += [self.now] * (len(self.smtp.messages) - before)
            self.now += step

    def add(self, subject: str, size: int, arrived: datetime) -> str:
        row = self.row(letter(subject, size), "Scheduled")
        self.world.ledger.update(row.key, arrived=arrived)
        return row.key

    def status_today(self) -> tuple[int, int]:
        book = PolicyBook(load_policies(self.settings.policies_dir))
        today = collect(book, self.world.ledger, self.now)["mentors"][0]["today"]
        return today["sent"], today["limit"]


@pytest.fixture
def clocked(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Clocked]:
    made = Clocked(tmp_path, smtp_server)
    try:
        yield made
    finally:
        made.close()


def per_day(times: list[datetime]) -> dict[str, int]:
    days: dict[str, int] = {}
    for at in times:
        day = at.astimezone(CHICAGO).date().isoformat()
        days[day] = days.get(day, 0) + 1
    return days


def test_a_split_release_never_breaks_the_day_limit_or_the_gap(clocked: Clocked) -> None:
    first = clocked.add("First", 500, START - timedelta(hours=1))
    clocked.drive(START + timedelta(minutes=1))
    assert len(clocked.smtp.messages) == 1
    waiting = [
        clocked.add("Big one", 80_000, START + timedelta(seconds=1)),
        clocked.add("Big two", 80_000, START + timedelta(seconds=2)),
        clocked.add("Huge", 400_000, START + timedelta(seconds=3)),
        clocked.add("Small", 500, START + timedelta(seconds=4)),
    ]
    clocked.drive(START + timedelta(hours=2))
    assert len(clocked.smtp.messages) == 2, "one more e-mail today (two a day), not three at once"
    assert clocked.status_today() == (2, 2), "status counts the e-mails she received"
    assert any(clocked.state(row) == SCHEDULED for row in map(clocked.world.ledger.get, waiting) if row)
    told = " ".join(clocked.subjects("INBOX"))
    assert "Scheduled" in told or "scheduled" in told or "goes" in told, told
    clocked.drive(START + timedelta(days=3))
    assert len(clocked.smtp.messages) == 4, "three e-mails carry the four, over the next days"
    assert max(per_day(clocked.sent_at).values()) <= 2, per_day(clocked.sent_at)
    gaps = [b - a for a, b in pairwise(clocked.sent_at)]
    assert min(gaps) >= timedelta(minutes=3), gaps
    ledger = clocked.world.ledger
    assert [(row.state if row else None) for row in map(ledger.get, [first, *waiting])] == [DONE] * 5
    assert sorted(clocked.subjects("Scheduled")) == []


def test_the_rest_of_a_split_release_is_never_said_to_go_in_one_digest(clocked: Clocked) -> None:
    """The rest waits for room: it is still too big for one e-mail, so its reason (and the notice) says several."""
    clocked.add("First", 500, START - timedelta(hours=1))
    clocked.drive(START + timedelta(minutes=1))
    waiting = [
        clocked.add("Big one", 80_000, START + timedelta(seconds=1)),
        clocked.add("Big two", 80_000, START + timedelta(seconds=2)),
        clocked.add("Huge", 400_000, START + timedelta(seconds=3)),
        clocked.add("Small", 500, START + timedelta(seconds=4)),
    ]
    clocked.drive(START + timedelta(hours=2))
    rest = [row for row in map(clocked.world.ledger.get, waiting) if row and row.state == SCHEDULED]
    assert len(rest) > 1, rest
    for row in rest:
        assert "in one digest" not in row.reason and "several e-mails" in row.reason, row.reason
    told = [
        " ".join(str(m.get_content()).split())
        for m in map(parse, clocked.server.messages("INBOX").values())
        if m["X-Mentor-Agent"] == "notice"
    ]
    assert any("several e-mails" in text for text in told), told


def signed_inside(subject: str) -> bytes:
    """A message whose signed part sits inside a multipart/mixed: split out of the digest when it is composed."""
    head = letter(subject, 100).split(b"\r\n\r\n")[0]
    return head + (
        b"\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=OO\r\n\r\n--OO\r\n"
        b'Content-Type: multipart/signed; protocol="application/pgp-signature"; boundary=SS\r\n\r\n'
        b"--SS\r\nContent-Type: text/plain\r\n\r\nsigned text\r\n--SS\r\n"
        b"Content-Type: application/pgp-signature\r\n\r\nSIG\r\n--SS--\r\n--OO--\r\n"
    )


def test_a_message_split_out_of_a_digest_when_composed_counts_and_keeps_the_gap(clocked: Clocked) -> None:
    """digest23 finding 4: a signed part inside a message (found only when the digest is composed) made it go in
    the same second as the digest; it is one more e-mail to the engine, like any other."""
    clocked.add("First", 500, START - timedelta(hours=1))
    clocked.drive(START + timedelta(minutes=1))
    clocked.add("Plain a", 500, START + timedelta(seconds=1))
    row = clocked.row(signed_inside("Signed inside"), "Scheduled")
    clocked.world.ledger.update(row.key, arrived=START + timedelta(seconds=2))
    clocked.add("Plain b", 500, START + timedelta(seconds=3))
    clocked.drive(START + timedelta(days=2))
    assert len(clocked.smtp.messages) == 3, "the digest and the signed one, after the first"
    assert max(per_day(clocked.sent_at).values()) <= 2, per_day(clocked.sent_at)
    assert min(b - a for a, b in pairwise(clocked.sent_at)) >= timedelta(minutes=3), clocked.sent_at
    assert sum(b"signed text" in r.content for r in clocked.smtp.messages) == 1


def test_the_rest_that_now_fits_in_one_e_mail_is_said_to_go_in_one_digest(clocked: Clocked) -> None:
    """Two big messages and two small ones: the first big one goes, the rest fits one e-mail: its reason says one
    digest, and it goes as one."""
    clocked.add("First", 500, START - timedelta(hours=1))
    clocked.drive(START + timedelta(minutes=1))
    waiting = [
        clocked.add("Big one", 100_000, START + timedelta(seconds=1)),
        clocked.add("Big two", 100_000, START + timedelta(seconds=2)),
        clocked.add("Small a", 500, START + timedelta(seconds=3)),
        clocked.add("Small b", 500, START + timedelta(seconds=4)),
    ]
    clocked.drive(START + timedelta(hours=2))
    rest = [row for row in map(clocked.world.ledger.get, waiting) if row and row.state == SCHEDULED]
    assert len(rest) == 3, rest
    for row in rest:
        assert "several e-mails" not in row.reason and "in one digest of 3" in row.reason, row.reason
    before = len(clocked.smtp.messages)
    clocked.drive(START + timedelta(days=2), step=timedelta(minutes=5))
    assert len(clocked.smtp.messages) - before == 1, "the rest went as one e-mail"


def test_the_split_notice_names_what_goes_now_apart_from_what_waits(clocked: Clocked) -> None:
    """It listed every message of the release under "the messages of the others wait in Scheduled", those that had
    just gone among them (found by a hostile round on digests)."""
    clocked.add("First", 500, START - timedelta(hours=1))
    clocked.drive(START + timedelta(minutes=1))
    for number, (subject, size) in enumerate([("Big one", 80_000), ("Big two", 80_000), ("Huge", 400_000)], 1):
        clocked.add(subject, size, START + timedelta(seconds=number))
    clocked.drive(START + timedelta(hours=2))
    notices = [m for m in map(parse, clocked.server.messages("INBOX").values()) if m["X-Mentor-Agent"] == "notice"]
    (told,) = [" ".join(str(m.get_content()).split()) for m in notices if "wait in Scheduled" in str(m.get_content())]
    going, waiting = told.split("wait in Scheduled", 1)
    gone = [parse(received.content) for received in clocked.smtp.messages[1:]]
    sent = {str(message["Subject"]) for message in gone}
    assert len(gone) == 1 and sent, "one more e-mail today (two a day)"
    carried = [subject for subject in ("Big one", "Big two", "Huge") if subject in going.split("now, with:", 1)[1]]
    assert carried and all(subject not in waiting for subject in carried), told
    assert any(subject in waiting for subject in ("Big one", "Big two", "Huge") if subject not in carried), told
