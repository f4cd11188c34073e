"""The star door on the in-memory mailbox (third hostile round): which flagged draft with the subject and the
recipients of one taken earlier is a copy of it (the compose window saved it again) and which is a new message.

A copy "came back" when it has the taken draft's Message-ID or, with no Message-ID in common, the same recipients
and subject AND a text that is the taken one or an edit of it; a different message is taken as its own. Either
way the student is told; a flag is never taken off without a word."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest

from agent.config.settings import Drafts, Imap, Settings, Smtp, Student
from agent.reconcile.context import World
from agent.reconcile.doors.drafts import DraftDoor
from agent.reconcile.intake import take_in_outbox
from agent.rules.envelope import parse_envelope
from agent.rules.policy import PolicyBook, load_policies
from agent.store.ledger import Ledger
from tests.agent_process import MENTOR, OUTBOX, STUDENT, policy_text
from tests.fakes.memory_mailbox import MemoryMailbox, MemoryServer

DRAFTS = "Drafts"
FLAGGED = ("\\Draft", "\\Seen", "\\Flagged")
QUESTION = (
    "Dear Dr. Rivera,\n\nThank you for Tuesday. I read the two papers you sent on sepsis bundles and I have a "
    "question about the second one: the lactate threshold they used seems lower than the guideline.\n\n"
    "Would it be all right to bring it up at our next meeting?\n\nBest,\nSam\n"
)
OTHER = (
    "Dear Dr. Rivera,\n\nI am sorry to write twice in a day: the clinic moved my Thursday shift, so I cannot come "
    "to the journal club this week. Could I present in two weeks instead?\n\nBest,\nSam\n"
)
THIRD = "Dear Dr. Rivera,\n\nOne more thing: the slides are attached as a PDF, four pages.\n\nSam\n"


def draft(subject: str, body: str, message_id: str | None = None) -> bytes:
    head = [
        f"From: Sam Patel <{STUDENT}>",
        f"To: Dr. Ana Rivera <{MENTOR}>",
        f"Subject: {subject}",
        f"Message-ID: {message_id or make_msgid(domain='med.example.edu')}",
        f"Date: {format_datetime(datetime.now(UTC))}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=UTF-8",
    ]
    return ("\r\n".join(head) + "\r\n\r\n" + body.replace("\n", "\r\n")).encode()


class Door:
    """The star door's passes on the fake mailbox, with a clock the test moves."""

    def __init__(self, tmp_path: Path, settle: float = 0) -> None:
        (tmp_path / "policies").mkdir()
        (tmp_path / "policies" / "rivera.toml").write_text(policy_text())
        self.server = MemoryServer()
        self.box = MemoryMailbox(self.server)
        settings = Settings(
            student=Student(name="Sam Patel", address=STUDENT, timezone="America/Chicago"),
            imap=Imap(),
            smtp=Smtp(host="127.0.0.1", port=2525, security="plain"),
            state_dir=tmp_path / "state",
            policies_dir=tmp_path / "policies",
            drafts=Drafts(take_flagged=True, settle=settle),
        )
        self.at = datetime.now(UTC)
        resolved = self.box.resolve_folders(settings.imap.folders)
        book = PolicyBook(load_policies(settings.policies_dir))
        ledger = Ledger(settings.ledger_path)
        self.world = World(settings, self.box, resolved, ledger, book, smtp_login=lambda: None, clock=lambda: self.at)
        self.door = DraftDoor()

    def save(self, raw: bytes, flags: tuple[str, ...] = FLAGGED) -> int:
        return self.server.put(DRAFTS, raw, flags, when=self.at)

    def run(self, *, later: timedelta = timedelta(minutes=1)) -> None:
        self.at += later
        asyncio.run(self.door.pass_once(self.world))

    def subjects(self, folder: str) -> list[str]:
        return [parse_envelope(raw).subject for raw in self.server.messages(folder).values()]

    def bodies(self, folder: str) -> list[bytes]:
        return [raw.split(b"\r\n\r\n", 1)[1] for raw in self.server.messages(folder).values()]

    def notices(self) -> list[str]:
        return [s.removeprefix("[mentor-agent] ") for s in self.subjects(self.world.folders.notices)]


@pytest.fixture
def door(tmp_path: Path) -> Iterator[Door]:
    made = Door(tmp_path)
    made.run()  # the door opens on an empty Drafts
    try:
        yield made
    finally:
        made.world.ledger.close()


def test_a_second_and_a_third_different_draft_with_the_same_subject_are_taken_as_their_own(door: Door) -> None:
    door.save(draft("Sepsis papers", QUESTION))
    door.run()
    assert door.subjects(OUTBOX) == ["Sepsis papers"]
    door.save(draft("Sepsis papers", OTHER))  # another message, the same subject: written an hour later
    door.run(later=timedelta(hours=1))
    door.save(draft("Sepsis papers", THIRD))
    door.run()
    assert door.subjects(DRAFTS) == []
    assert [b.decode() for b in door.bodies(OUTBOX)] == [t.replace("\n", "\r\n") for t in (QUESTION, OTHER, THIRD)]
    assert door.notices().count("Taken from Drafts: Sepsis papers") == 3
    assert not [n for n in door.notices() if n.startswith("Not taken again")]
    told = b"".join(door.server.messages(door.world.folders.notices).values()).replace(b"=\r\n", b"")
    assert told.count(b"taken as a message of its own") == 2


@pytest.mark.parametrize(
    "edit",
    [
        lambda text: text,
        lambda text: text.replace("Best,", "P.S. I can also send my notes beforehand.\n\nBest,"),
        lambda text: text.replace("lower than the guideline", "much lower than the 2021 guideline says"),
    ],
    ids=["unchanged", "a line added", "a line changed"],
)
def test_a_resave_with_a_new_message_id_is_a_copy_and_is_never_taken_twice(door: Door, edit: object) -> None:
    assert callable(edit)
    door.save(draft("Sepsis papers", QUESTION))
    door.run()
    door.save(draft("Sepsis papers", edit(QUESTION)))  # the compose window saves again, still starred
    door.run()
    assert door.subjects(OUTBOX) == ["Sepsis papers"] and door.subjects(DRAFTS) == ["Sepsis papers"]
    assert door.notices().count("Not taken again: Sepsis papers") == 1


def test_a_copy_starred_again_later_is_told_again_never_unflagged_silently(door: Door) -> None:
    message_id = make_msgid(domain="med.example.edu")
    door.save(draft("Sepsis papers", QUESTION, message_id))
    door.run()
    first = door.save(draft("Sepsis papers", QUESTION, message_id))  # saved again, starred
    door.run()
    assert door.notices().count("Not taken again: Sepsis papers") == 1
    assert "\\Flagged" not in door.server.flags(DRAFTS, first)
    door.server.folders[DRAFTS].messages[first].flags.add("\\Flagged")  # an hour later she stars it again
    door.run(later=timedelta(hours=1))
    assert "\\Flagged" not in door.server.flags(DRAFTS, first)
    assert door.notices().count("Not taken again: Sepsis papers") == 2
    assert door.subjects(OUTBOX) == ["Sepsis papers"]


def test_a_restart_keeps_how_long_a_flagged_draft_has_waited(tmp_path: Path) -> None:
    """The settle wait's start is kept in the ledger: a restart neither starts it again nor shortens it."""
    door = Door(tmp_path, settle=60)
    door.run()  # the door opens on an empty Drafts
    door.save(draft("Sepsis papers", QUESTION))
    door.run(later=timedelta(seconds=1))  # first seen flagged
    door.run(later=timedelta(seconds=40))
    assert door.subjects(OUTBOX) == []
    door.door = DraftDoor()  # a restart (or an IMAP reconnect): a new session
    door.run(later=timedelta(seconds=10))
    assert door.subjects(OUTBOX) == []  # 50 s: not earlier
    door.run(later=timedelta(seconds=11))
    assert door.subjects(OUTBOX) == ["Sepsis papers"]  # 61 s since it was first seen flagged
    door.world.ledger.close()


def test_a_restart_keeps_how_long_a_draft_in_the_outbox_has_waited(tmp_path: Path) -> None:
    """The label door's wait (a draft still typed in the Outbox) is kept in the ledger too."""
    door = Door(tmp_path, settle=60)
    raw = draft("Sepsis papers", QUESTION)
    door.server.put(OUTBOX, raw, ("\\Draft", "\\Seen"), when=door.at)
    key = parse_envelope(raw).key

    def take_in(later: float) -> bool:
        door.at += timedelta(seconds=later)
        asyncio.run(take_in_outbox(door.world))
        return door.world.ledger.get(key) is not None

    assert not take_in(1)  # first seen
    assert not take_in(40)
    door.world.outbox_drafts.clear()  # a restart: a new World
    assert not take_in(10)  # 50 s: not earlier
    assert take_in(11)  # 61 s since it was first seen
    door.world.ledger.close()
