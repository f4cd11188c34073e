"""``mentor-agent demo`` end to end: pymap and aiosmtpd on loopback, the real daemon, a virtual week.

The demo runs once per module (about twenty seconds) and every test reads what it left: what the SMTP sink
received and when (on the virtual clock), the exported mailbox, and the timeline.
"""

from __future__ import annotations

import mailbox
import time
import tomllib
from datetime import date, datetime
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from agent.demo import week as demo
from agent.demo.servers import Received
from agent.reconcile import events
from agent.rules.invites import parse_itip

ROOT = Path(__file__).resolve().parents[1]
CHICAGO, LONDON = ZoneInfo("America/Chicago"), ZoneInfo("Europe/London")
RIVERA, OKAFOR, CHEN = "arivera@hospital.example.org", "c.okafor@nhs.example.uk", "mchen@research.example.org"


def parsed(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=email_policy.default)
    assert isinstance(message, EmailMessage)
    return message


def to(result: demo.DemoResult, address: str) -> list[Received]:
    return [r for r in result.received if r.rcpt_tos == (address,)]


PUBLISHED: list[events.Event] = []  # what the daemon published during the demo week


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> demo.DemoResult:
    printed: list[str] = []
    began = time.monotonic()
    with events.subscribed(PUBLISHED.append):
        result = demo.run_demo(tmp_path_factory.mktemp("demo") / "mentor-agent-demo", quiet=True, echo=printed.append)
    assert time.monotonic() - began < 60, f"the demo took {time.monotonic() - began:.1f} s"
    assert any(line.startswith("Done in") for line in printed)  # --quiet still prints the summary
    return result


def test_the_mentors_get_what_the_agreements_allow(week: demo.DemoResult) -> None:
    assert len(week.received) == 12
    assert [len(to(week, a)) for a in (RIVERA, OKAFOR, CHEN, "priya.shah@med.example.edu")] == [4, 1, 6, 1]
    digests = [parsed(r.content) for r in week.received if str(parsed(r.content)["Message-ID"]).startswith("<digest.")]
    assert [str(d["Subject"]).split(" —")[0] for d in digests] == ["2 updates from Sam", "3 updates from Sam"]
    assert all(d["To"].addresses[0].addr_spec == RIVERA for d in digests)
    first = digests[0].get_body(preferencelist=("plain",))
    assert isinstance(first, EmailMessage)
    text = first.get_content()
    assert "Question about the research elective" in text and "Draft of my personal statement" in text
    assert any(p.get_filename() == "personal-statement-draft.txt" for p in digests[0].iter_attachments())


def test_each_send_happens_at_its_due_minute_on_the_virtual_clock(week: demo.DemoResult) -> None:
    rivera = [r.at.astimezone(CHICAGO).replace(tzinfo=None) for r in to(week, RIVERA)]
    assert rivera == [
        datetime(2026, 11, 23, 8, 30),
        datetime(2026, 11, 24, 8, 0),
        datetime(2026, 11, 25, 8, 0),
        datetime(2026, 11, 30, 8, 0),
    ]
    okafor = to(week, OKAFOR)[0].at.astimezone(LONDON)
    assert okafor.replace(tzinfo=None) == datetime(2026, 11, 24, 7, 30)  # the first minute of his e-mail hours
    reply_to_thread = parsed(to(week, RIVERA)[2].content)
    assert reply_to_thread["In-Reply-To"] == "<r1.demo@hospital.example.org>"  # on its own, in her thread


def test_the_accepted_offer_stays_and_the_other_invitations_are_cancelled(week: demo.DemoResult) -> None:
    itips = [parse_itip(r.content)[0] for r in to(week, CHEN) if b"text/calendar" in r.content]
    assert [i.method for i in itips] == ["REQUEST"] * 3 + ["CANCEL"] * 2
    requested = [i.uid for i in itips[:3]]
    cancelled = {i.uid for i in itips[3:]}
    assert cancelled == set(requested[1:])  # the simulated mentor accepted the first invitation she received
    assert all(i.sequence == 1 for i in itips[3:])
    assert week.meeting_agreed
    inbox = [
        parsed((week.out / "mailbox" / "INBOX" / name).read_bytes())
        for name in sorted(p.name for p in (week.out / "mailbox" / "INBOX").iterdir())
    ]
    copies = [m for m in inbox if m["X-Mentor-Agent"] == "meeting-copy"]
    assert len(copies) == 1 and parse_itip(copies[0].as_bytes())[0].uid == requested[0]


def test_the_mailbox_is_left_as_files(week: demo.DemoResult) -> None:
    out = week.out
    assert week.folders["Sent"] == 13 and week.folders["Scheduled"] == 1 and week.folders["Mentor Outbox"] == 0
    sent = sorted((out / "mailbox" / "Sent").glob("*.eml"))
    assert len(sent) == 13
    scheduled = list((out / "mailbox" / "Scheduled").glob("*.eml"))
    assert [str(parsed(p.read_bytes())["Subject"]) for p in scheduled] == ["Residency application timeline"]
    box = mailbox.mbox(out / "mbox" / "Sent.mbox", create=False)
    try:
        assert len(box) == 13
    finally:
        box.close()
    assert len(list((out / "received-by-mentors").glob("*.eml"))) == 12
    index = (out / "README.txt").read_text(encoding="utf-8")
    assert "Scheduled (1 message(s))" in index and "Sent (13 message(s))" in index
    notices = [
        p for p in (out / "mailbox" / "INBOX").glob("*.eml") if parsed(p.read_bytes())["X-Mentor-Agent"] == "notice"
    ]
    assert any("Held: Residency application timeline" in str(parsed(p.read_bytes())["Subject"]) for p in notices)
    assert sorted(p.name for p in (out / "policies").iterdir()) == sorted(demo.POLICY_FILES)
    assert (out / "agent.log").stat().st_size > 0


def test_an_agreement_is_made_in_the_week(week: demo.DemoResult) -> None:
    """Dr. Chen gets the proposal when her e-mail hours open, answers with two changed values, the student is
    told and applies them: the exported policy records the agreement, its comments kept."""
    proposal = parsed(to(week, CHEN)[0].content)
    assert str(proposal["Subject"]) == "How we keep in touch: a proposal"
    assert to(week, CHEN)[0].at.astimezone(ZoneInfo("America/Los_Angeles")).replace(tzinfo=None) == datetime(
        2026, 11, 23, 7, 0
    )  # dropped at 06:05 her time: paced like any message
    assert "  1. E-mails from me in a week, at most: 15" in proposal.get_content()
    text = (week.out / "policies" / "chen.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    assert data["email"]["max_per_week"] == 20
    assert data["agreement"] == {"mentor_answers_within": "2d", "agreed_on": date(2026, 11, 23), "version": 1}
    original = (ROOT / "agent" / "examples" / "chen.toml").read_text(encoding="utf-8")
    assert all(line in text for line in original.splitlines() if line.startswith("#"))
    flat = " ".join(" ".join(week.lines).split())
    assert "you propose your standards to Dr. Mei Chen (`mentor-agent agree chen --send`)" in flat
    assert "in your INBOX: “Dr. Mei Chen agreed, with 2 change(s)”" in flat
    assert "1. E-mails from me in a week, at most: 15 → 20" in flat
    assert "10. Your answer, when you can, within: 5 days → 2 days" in flat
    assert "Written into policies/chen.toml (its comments kept): agreed on 2026-11-23, version 1." in flat


def test_the_timeline_says_what_happened_and_why(week: demo.DemoResult) -> None:
    text = "\n".join(week.lines)
    assert (week.out / "timeline.txt").read_text(encoding="utf-8").strip() == text.strip()
    for expected in (
        "sends now",
        "2nd message today; you agreed on 1 a day",
        "one digest of 3 messages",
        "outside Dr. Chidi Okafor's e-mail hours",
        "accepts the invitation",
        "receives a CANCEL",
        "a reply (you agreed on at most",
        "not a mentor",
    ):
        assert expected in " ".join(text.split()), expected
    assert "warning" not in text
    # Each decision line names its message (the demo reads the key from the event, not from a log line).
    flat = " ".join(text.split())
    assert "held “Thank you for the theatre list”: outside Dr. Chidi Okafor's e-mail hours" in flat
    assert "sends “Thank you for Friday's clinic”: within what you agreed with Dr. Ana Rivera; sends now" in flat


def test_the_daemon_publishes_what_it_sent_and_filed(week: demo.DemoResult) -> None:
    sent = [e for e in PUBLISHED if isinstance(e, events.Sent)]
    assert len(sent) == len(week.received) == 12  # one event per e-mail the SMTP server accepted
    assert sorted(len(e.keys) for e in sent if len(e.keys) > 1) == [2, 3]  # the two digests
    filed = {e.key for e in PUBLISHED if isinstance(e, events.Filed)}
    assert {key for e in sent for key in e.keys} <= filed
    decided = [e for e in PUBLISHED if isinstance(e, events.Decided)]
    assert {e.kind for e in decided} == {"send", "delay", "digest", "hold"}
    assert sum(isinstance(e, events.MeetingAgreed) for e in PUBLISHED) == 1
    assert events._subscribers == []  # the demo's own follower is gone after the week


def test_the_timeline_comes_from_events_not_log_text() -> None:
    """What the demo shows of a decision comes from agent.reconcile.events: log lines (whatever their template or the
    function that wrote them) play no part, and an event published to the hub reaches the demo's follower."""
    import logging
    import queue

    from agent.demo.scene import Event

    clock = demo.VirtualClock(demo.START)
    seen: queue.SimpleQueue[Event] = queue.SimpleQueue()
    follow = demo.Follow(clock, seen)
    logging.getLogger("mentor_agent.intake").warning("%s → %s: %s", "k", "Dr. X", "a log line, not a decision")
    with events.subscribed(follow):
        events.publish(events.Decided("<a@x>", "rivera", "Dr. Ana Rivera", "Hello", "send", "within budget"))
        events.publish(
            events.Decided(
                "<b@x>", "rivera", "Dr. Ana Rivera", "Draft", "delay", "2nd today", due=demo.START, digest=None
            )
        )
        events.publish(events.Notice("Scheduled: Draft"))
        events.publish(events.MeetingOffered("r1", "chen", "Dr. Mei Chen", 3))
        events.publish(events.MeetingAgreed("chen", "Dr. Mei Chen", demo.START))
        events.publish(events.Filed("<a@x>", "Sent"))  # not shown: the SMTP sink shows what went out
    events.publish(events.Notice("after unsubscribing"))
    got = []
    while not seen.empty():
        got.append(seen.get_nowait())
    assert [(e.tag, e.text, e.mentor, e.key) for e in got] == [
        ("sends", "within budget", "Dr. Ana Rivera", "<a@x>"),
        ("held", "2nd today", "Dr. Ana Rivera", "<b@x>"),
        ("notice", "in your INBOX: “Scheduled: Draft”", "", ""),
        ("meeting", "3 time(s) offered to Dr. Mei Chen, one invitation each (via the Outbox)", "Dr. Mei Chen", ""),
        ("meeting", "agreed with Dr. Mei Chen; the other offers are cancelled", "Dr. Mei Chen", ""),
    ]
    assert all(e.at == clock() for e in got)


def test_the_command_line(tmp_path: Path) -> None:
    """Through the real group: its one error handler prints the refusal (the demo module knows no click handler)."""
    from agent.cli.main import main

    runner = CliRunner()
    shown = runner.invoke(main, ["demo", "--help"])
    assert shown.exit_code == 0 and "--out" in shown.output and "--speed" in shown.output
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    refused = runner.invoke(main, ["demo", "--out", str(tmp_path / "mine")])
    assert refused.exit_code == 1 and "not written by the demo" in refused.output
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_the_packaged_examples_match_the_checkout() -> None:
    assert (ROOT / "agent" / "examples" / "okafor.toml").read_bytes() == (
        ROOT / "policies" / "okafor.toml"
    ).read_bytes()
    student = tomllib.loads((ROOT / "config" / "example.toml").read_text())["student"]
    assert (student["name"], student["address"], student["timezone"]) == (
        demo.STUDENT_NAME,
        demo.STUDENT_ADDRESS,
        demo.STUDENT_ZONE,
    )
