"""Whole reconcile passes (intake, history, pacing, delivery, filing) on the in-memory mailbox and the real
aiosmtpd server: what the daemon's pass does, without Dovecot or a daemon process, in well under a second each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest

from agent.config.settings import Folders, Imap, Settings, Smtp, Student
from agent.errors import UserError
from agent.mail.session import MailboxError
from agent.reconcile.attention import tell_owed
from agent.reconcile.context import World
from agent.reconcile.doors.drafts import DraftDoor
from agent.reconcile.history import Seen, scan_replies, scan_sent
from agent.reconcile.intake import carry_out, follow_scheduled, know_mentors, take_in_outbox
from agent.reconcile.outbox_folders import settle_folders
from agent.reconcile.recovery import recover
from agent.rules.envelope import parse_envelope
from agent.rules.policy import PolicyBook, load_policies
from agent.store.answer_times import written_to
from agent.store.ledger import DONE, SCHEDULED, Ledger
from tests.agent_process import MENTOR, OUTBOX, STUDENT, policy_text
from tests.fakes.memory_mailbox import MemoryMailbox, MemoryServer
from tests.servers.smtp import SmtpServer

SENT = "Sent Items"


def mail(subject: str, to: str = MENTOR, *, sender: str = STUDENT, at: datetime | None = None, **headers: str) -> bytes:
    lines = [
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {subject}",
        f"Message-ID: {headers.pop('message_id', make_msgid(domain='med.example.edu'))}",
        f"Date: {format_datetime(at or datetime.now(UTC))}",
        *(f"{name.replace('_', '-')}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\nHello.\r\n").encode()


class Pass:
    """A World on the fake mailbox with one mentor's policy; :meth:`run` is one daemon pass."""

    def __init__(
        self,
        tmp_path: Path,
        smtp: SmtpServer,
        policy: str,
        *,
        server: MemoryServer | None = None,
        folders: Folders | None = None,
        agent_id: str = "memory",
    ) -> None:
        (tmp_path / "policies").mkdir()
        (tmp_path / "policies" / "rivera.toml").write_text(policy)
        self.server = server or MemoryServer(sent=SENT)
        self.box = MemoryMailbox(self.server, agent_id=agent_id)
        self.smtp = smtp
        settings = Settings(
            student=Student(name="Sam Patel", address=STUDENT, timezone="America/Chicago"),
            imap=Imap(folders=folders or Folders()),
            smtp=Smtp(host="127.0.0.1", port=smtp.port, security="plain", timeout=10, file_in_sent="always"),
            state_dir=tmp_path / "state",
            policies_dir=tmp_path / "policies",
        )
        self.settings = settings
        resolved = self.box.resolve_folders(settings.imap.folders)
        book = PolicyBook(load_policies(settings.policies_dir))
        self.world = World(settings, self.box, resolved, Ledger(settings.ledger_path), book, smtp_login=lambda: None)
        self.seen = Seen()
        know_mentors(self.world)
        asyncio.run(recover(self.world))

    def run(self) -> None:
        async def one() -> None:
            await scan_replies(self.world, self.seen)
            await scan_sent(self.world, self.seen)
            await take_in_outbox(self.world)
            await follow_scheduled(self.world)
            await carry_out(self.world)
            await tell_owed(self.world)

        asyncio.run(one())

    def subjects(self, folder: str) -> list[str]:
        return [parse_envelope(raw).subject for raw in self.server.messages(folder).values()]

    def received(self) -> list[str]:
        return [parse_envelope(r.content).subject for r in self.smtp.messages]


@pytest.fixture
def one_a_day(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Pass]:
    made = Pass(tmp_path, smtp_server, policy_text(max_per_day=1))
    try:
        yield made
    finally:
        made.world.ledger.close()


def test_a_message_dropped_in_the_outbox_goes_once_and_is_filed_once(one_a_day: Pass) -> None:
    one_a_day.server.put(OUTBOX, mail("first"))
    one_a_day.run()
    one_a_day.run()  # a second pass changes nothing
    assert one_a_day.received() == ["first"]
    assert one_a_day.subjects(SENT) == ["first"]
    assert one_a_day.subjects(OUTBOX) == [] and one_a_day.subjects("Sending") == []
    rows = one_a_day.world.ledger.in_states(DONE)
    assert [row.subject for row in rows] == ["first"]


def test_over_the_daily_limit_it_waits_in_scheduled_with_a_notice(one_a_day: Pass) -> None:
    one_a_day.server.put(OUTBOX, mail("first"))
    one_a_day.run()
    one_a_day.server.put(OUTBOX, mail("second"))
    one_a_day.run()
    assert one_a_day.received() == ["first"]
    assert one_a_day.subjects("Scheduled") == ["second"]
    assert [row.subject for row in one_a_day.world.ledger.in_states(SCHEDULED)] == ["second"]
    assert any("second" in subject for subject in one_a_day.subjects("INBOX")), "the student is told"


def test_mail_to_the_mentor_sent_without_the_agent_counts(one_a_day: Pass) -> None:
    one_a_day.server.put(SENT, mail("sent from the phone"))  # counted from Sent: the agreement is what she gets
    one_a_day.server.put(OUTBOX, mail("through the agent"))
    one_a_day.run()
    assert one_a_day.received() == []
    assert one_a_day.subjects("Scheduled") == ["through the agent"]


def test_mail_sent_without_the_agent_is_said_to_be_counted_once_not_at_every_start(one_a_day: Pass) -> None:
    one_a_day.server.put(SENT, mail("sent from the phone"))
    for _ in range(3):  # three starts (or reconnects): Sent is read again each time
        one_a_day.seen = Seen()
        one_a_day.run()
    counted = one_a_day.world.ledger.db.execute("SELECT count(*) FROM log WHERE event = 'counted'").fetchone()[0]
    assert counted == 1
    assert len(one_a_day.world.ledger.history("rivera", datetime.now(UTC) - timedelta(days=1)).sent) == 1


KIM = "jkim@clinic.example.org"


def test_mail_sent_without_the_agent_to_two_mentors_counts_for_each(one_a_day: Pass) -> None:
    kim = policy_text(max_per_day=1).replace("Dr. Ana Rivera", "Dr. Jae Kim").replace(MENTOR, KIM)
    (one_a_day.settings.policies_dir / "kim.toml").write_text(kim)
    one_a_day.world.book = PolicyBook(load_policies(one_a_day.settings.policies_dir))
    know_mentors(one_a_day.world)
    one_a_day.server.put(SENT, mail("to both of you, from my phone", Cc=KIM))  # To Dr. Rivera, Cc Dr. Kim
    one_a_day.server.put(OUTBOX, mail("to Dr. Kim today", to=KIM))
    one_a_day.server.put(OUTBOX, mail("to Dr. Rivera today"))
    one_a_day.run()
    assert one_a_day.received() == [], "each of them got one today: one a day, agreed with each"
    assert sorted(one_a_day.subjects("Scheduled")) == ["to Dr. Kim today", "to Dr. Rivera today"]


def test_an_item_found_in_sent_recorded_for_one_mentor_is_widened_to_the_other(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite3")
    at = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    ledger.add_item("rivera", "<p@x.org>", at, ["<p@x.org>"], source="sent-folder", addresses=[MENTOR])  # before
    ledger.add_item("kim", "<p@x.org>", at, ["<p@x.org>"], source="sent-folder", addresses=[MENTOR, KIM])  # now
    for mentor, address in (("rivera", MENTOR), ("kim", KIM)):
        assert [item.at for item in ledger.history(mentor, at - timedelta(days=1), [address]).sent] == [at]
    ledger.add_item("kim", "<q@x.org>", at, ["<q@x.org>"], addresses=[KIM])  # the agent's own: never widened
    ledger.add_item("rivera", "<q@x.org>", at, ["<q@x.org>"], addresses=[MENTOR])
    assert [item.ids[0] for item in ledger.history("rivera", at - timedelta(days=1), [MENTOR]).sent] == ["<p@x.org>"]
    ledger.close()


def test_a_flagged_message_in_scheduled_goes_now(one_a_day: Pass) -> None:
    one_a_day.server.put(OUTBOX, mail("first"))
    one_a_day.run()
    one_a_day.server.put(OUTBOX, mail("urgent"))
    one_a_day.run()
    _, (uid,) = one_a_day.box.uids("Scheduled")
    one_a_day.box.set_flags("Scheduled", uid, ["\\Flagged"])  # the student's call
    one_a_day.run()
    assert one_a_day.received() == ["first", "urgent"]
    assert sorted(one_a_day.subjects(SENT)) == ["first", "urgent"]


def test_a_reply_from_the_mentor_is_recorded_once(tmp_path: Path, smtp_server: SmtpServer) -> None:
    made = Pass(tmp_path, smtp_server, policy_text(max_unanswered=1))
    try:
        made.server.put(OUTBOX, mail("question", message_id="<q1@med.example.edu>"))
        made.run()
        assert made.received() == ["question"]
        made.server.put(OUTBOX, mail("another"))
        made.run()
        assert made.subjects("Scheduled") == ["another"], "one unanswered is the limit"
        # Dated a moment later than now: a Date header has whole seconds, and the send was within this second.
        later = datetime.now(UTC) + timedelta(seconds=2)
        reply = mail("Re: question", to=STUDENT, sender=MENTOR, at=later, In_Reply_To="<q1@med.example.edu>")
        made.server.put("INBOX", reply)
        made.run()  # the reply counts: "another" goes now
        assert made.received() == ["question", "another"]
    finally:
        made.world.ledger.close()


# -- round trips before the first decision (issue 21: a backlog at start waits for them) ----------------------------
def test_the_looks_at_sent_and_inbox_take_one_select_and_search_each(one_a_day: Pass) -> None:
    """Her mail to the mentor in Sent and the mentor's replies in INBOX are still read before the Outbox: the UIDs
    since the look-back and the folder's UIDVALIDITY come from one fresh SELECT and one SEARCH."""
    one_a_day.server.put(SENT, mail("sent from the phone"))
    one_a_day.server.put("INBOX", mail("Re: hello", to=STUDENT, sender=MENTOR, In_Reply_To="<q1@med.example.edu>"))
    one_a_day.server.commands.clear()
    asyncio.run(scan_sent(one_a_day.world, one_a_day.seen))
    asyncio.run(scan_replies(one_a_day.world, one_a_day.seen))
    looks = [(op, folder) for op, folder in one_a_day.server.commands if folder in (SENT, "INBOX") and op != "headers"]
    assert looks == [("uids_since", SENT), ("uids_since", "INBOX")]
    assert len(one_a_day.world.ledger.in_states(DONE)) == 0  # nothing sent: only read
    one_a_day.server.put(OUTBOX, mail("through the agent"))
    one_a_day.run()
    assert one_a_day.subjects("Scheduled") == ["through the agent"], "the phone's message still counts"


def test_settling_the_folders_at_start_lists_them_once(one_a_day: Pass) -> None:
    """The Outbox's owner, the old default Outbox and the drafts door's folder: all from one LIST."""
    one_a_day.server.commands.clear()
    listed = asyncio.run(settle_folders(one_a_day.world, "config.toml"))
    door = DraftDoor()
    assert asyncio.run(door.find_folder(one_a_day.world, listed)) == "Drafts"
    assert asyncio.run(door.pass_once(one_a_day.world)) is None
    assert [op for op, _ in one_a_day.server.commands if op == "folder_list"] == ["folder_list"]


# -- what intake sends to Needs attention ---------------------------------------------------------------------------
def test_a_copy_of_a_sent_message_dropped_again_is_not_sent_twice(one_a_day: Pass) -> None:
    raw = mail("once only")
    one_a_day.server.put(OUTBOX, raw)
    one_a_day.run()
    one_a_day.server.put(OUTBOX, raw)  # the same message (same Message-ID) dropped again
    one_a_day.run()
    assert one_a_day.received() == ["once only"]
    assert one_a_day.subjects("Needs attention") == ["once only"]
    assert any(s.endswith("Not sent: once only") for s in one_a_day.subjects("INBOX"))


def test_two_copies_in_one_pass_go_once(one_a_day: Pass) -> None:
    raw = mail("twice dropped")
    one_a_day.server.put(OUTBOX, raw)
    one_a_day.server.put(OUTBOX, raw)
    one_a_day.run()
    assert one_a_day.received() == ["twice dropped"]
    assert one_a_day.subjects("Needs attention") == ["twice dropped"]


@pytest.mark.parametrize("after", [False, True], ids=["before the claim", "after the claim"])
def test_a_connection_drop_at_the_claim_loses_nothing_and_sends_once(one_a_day: Pass, after: bool) -> None:
    one_a_day.server.put(OUTBOX, mail("claimed"))
    one_a_day.server.fail("move_many", OUTBOX, after=after)  # the MOVE refused, or done with its answer lost
    with pytest.raises(MailboxError):
        one_a_day.run()
    one_a_day.box.connect()  # the daemon reconnects: recover(), then the pass again
    asyncio.run(recover(one_a_day.world))
    one_a_day.run()
    assert one_a_day.received() == ["claimed"]
    assert one_a_day.subjects(SENT) == ["claimed"]
    assert one_a_day.subjects(OUTBOX) == [] and one_a_day.subjects("Sending") == []


# -- settle_folders: never a provider's own Outbox; the old default outbox brought along -----------------------------
def exchange() -> MemoryServer:
    """A mailbox with Exchange's folder set, where "Outbox" is Outlook's own."""
    return MemoryServer(sent="Sent Items", extra_folders=("Deleted Items", "Junk Email"))


def test_outlooks_own_outbox_is_refused_naming_the_setting(tmp_path: Path, smtp_server: SmtpServer) -> None:
    made = Pass(tmp_path, smtp_server, policy_text(), server=exchange(), folders=Folders(outbox="Outbox"))
    try:
        with pytest.raises(UserError) as refused:
            asyncio.run(settle_folders(made.world, "config.toml"))
        (problem,) = refused.value.problems
        assert (problem.file, problem.key) == ("config.toml", "imap.folders.outbox")
        assert "Outlook's own Outbox" in problem.message
    finally:
        made.world.ledger.close()


def test_mail_in_the_old_default_outbox_the_agent_never_took_is_never_taken(one_a_day: Pass) -> None:
    """Issue 20: once the ledger held any message, the next start moved whatever sat in "Outbox" and sent it."""
    one_a_day.server.put("Outbox", mail("someone else's"))
    asyncio.run(settle_folders(one_a_day.world, "config.toml"))
    one_a_day.server.put(OUTBOX, mail("used before"))
    one_a_day.run()  # the ledger knows a message now
    for _ in range(2):
        asyncio.run(settle_folders(one_a_day.world, "config.toml"))
        one_a_day.run()
    assert one_a_day.subjects("Outbox") == ["someone else's"] and one_a_day.received() == ["used before"]
    assert len([s for s in one_a_day.subjects("INBOX") if "not “Outbox”" in s]) == 1, "told once"


def test_outlooks_own_outbox_is_never_touched_and_told_once(tmp_path: Path, smtp_server: SmtpServer) -> None:
    made = Pass(tmp_path, smtp_server, policy_text(), server=exchange())
    try:
        made.server.put(OUTBOX, mail("used before"))
        made.run()
        made.server.put("Outbox", mail("Outlook's to send"))
        for _ in range(2):
            asyncio.run(settle_folders(made.world, "config.toml"))
        assert made.subjects("Outbox") == ["Outlook's to send"], "Outlook's Outbox is left alone"
        told = [s for s in made.subjects("INBOX") if "not “Outbox”" in s]
        assert len(told) == 1, "told once"
    finally:
        made.world.ledger.close()


def test_status_counts_mail_from_sent_to_two_mentors_as_written_to_each(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite3")
    at = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    ledger.add_item("rivera", "<p@x.org>", at, ["<p@x.org>"], source="sent-folder", addresses=[MENTOR, KIM])
    since = at - timedelta(days=1)
    assert written_to(ledger, "kim", since, [KIM]) == [at] and written_to(ledger, "rivera", since, [MENTOR]) == [at]
    ledger.close()
