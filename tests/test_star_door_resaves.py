"""The star door on the in-memory mailbox (issue 22, third hostile round): what is never sent twice, what is never
sent at all, and what the student is told.

- A MOVE the server did whose answer was lost still counts as taken: the re-save of its compose window is a copy.
- A re-save that fixes the subject or adds a Cc is a copy: the text of every draft to that mentor taken that day is
  compared; Japanese text is compared character by character.
- A new reply that quotes the taken one, or shares only a signature with it, is a message of its own; when the
  door cannot tell, the draft stays in Drafts and the notice says plainly what was guessed and what to do.
- An encrypted draft is never taken (it would reach the mentor unreadable): it stays in Drafts, she is told.
- A reminder star never sends a half-written draft: not after the door was closed and opened again, not after one
  more save of the reminder (star kept), not after Drafts was made anew (a new UIDVALIDITY)."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest

from agent.config.settings import Drafts
from agent.mail.session import MailboxError
from agent.reconcile.doors.drafts import DraftDoor
from agent.reconcile.intake import take_in_outbox
from tests.agent_process import MENTOR, OUTBOX, STUDENT
from tests.test_star_door_copies import DRAFTS, QUESTION, Door, draft

SIGNATURE = "\n\n--\nSam Patel\nMS3, Class of 2027\nUniversity Medical School\nPager 555 0100\nPronouns she her\n"
FIRST_REPLY = (
    "Dear Dr. Rivera,\n\nThank you, Tuesday at 3 works for me. I will bring the two case write-ups.\n\nBest,\nSam\n"
)


@pytest.fixture
def door(tmp_path: Path) -> Iterator[Door]:
    made = Door(tmp_path)
    made.run()  # the door opens on an empty Drafts
    try:
        yield made
    finally:
        made.world.ledger.close()


def told_text(door: Door) -> str:
    """The text of every notice, its lines joined."""
    texts = []
    for raw in door.server.messages(door.world.folders.notices).values():
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        body = message.get_body(preferencelist=("plain",))
        assert isinstance(body, EmailMessage)
        texts.append(" ".join(str(body.get_content()).split()))
    return "\n".join(texts)


def rows(door: Door) -> list[tuple[str, str]]:
    return [(str(k), str(s)) for k, s in door.world.ledger.db.execute("SELECT key, state FROM messages")]


def lose_the_move_answer(door: Door, raw: bytes) -> None:
    """The server does the MOVE, its answer never arrives; a new session, the intake takes it from the Outbox."""
    door.save(raw)
    door.server.fail("move_many", DRAFTS, after=True)
    with pytest.raises(MailboxError):
        door.run()
    door.box.connect()
    door.door = DraftDoor()
    door.run()
    asyncio.run(take_in_outbox(door.world))


def test_a_move_whose_answer_was_lost_counts_as_taken_and_its_resave_is_a_copy(door: Door) -> None:
    lose_the_move_answer(door, draft("Sepsis papers", QUESTION))
    assert "Taken from Drafts: Sepsis papers" in door.notices()
    door.save(draft("Sepsis papers", QUESTION))  # the compose window's re-save: a new Message-ID, still starred
    door.run()
    door.run()
    asyncio.run(take_in_outbox(door.world))
    assert len(rows(door)) == 1
    assert door.subjects(DRAFTS) == ["Sepsis papers"]
    assert "Not taken again: Sepsis papers" in door.notices()


def test_a_lost_move_answer_then_an_edit_under_the_same_message_id_is_a_copy(door: Door) -> None:
    message_id = make_msgid(domain="med.example.edu")
    lose_the_move_answer(door, draft("Sepsis papers", QUESTION, message_id))
    door.save(draft("Sepsis papers", QUESTION.replace("Best,", "P.S. notes attached.\n\nBest,"), message_id))
    for _ in range(3):
        door.run()
        asyncio.run(take_in_outbox(door.world))
    assert rows(door) == [(message_id, rows(door)[0][1])]
    assert door.subjects(DRAFTS) == ["Sepsis papers"]


@pytest.mark.parametrize("change", ["subject", "cc"])
def test_a_resave_with_the_subject_fixed_or_a_cc_added_is_a_copy(door: Door, change: str) -> None:
    door.save(draft("Sepsis paper", QUESTION))
    door.run()
    again = draft("Sepsis papers" if change == "subject" else "Sepsis paper", QUESTION)
    if change == "cc":
        again = again.replace(b"Subject:", b"Cc: coordinator@med.example.edu\r\nSubject:")
    door.save(again)
    door.run()
    assert door.subjects(OUTBOX) == ["Sepsis paper"]
    assert len(door.subjects(DRAFTS)) == 1
    assert "same mentor, similar text" in told_text(door)


def test_a_japanese_resave_with_small_edits_is_a_copy(door: Door) -> None:
    first = (
        "リベラ先生\n\nお世話になっております。来週の面談の件でご相談があります。火曜日の午後は空いていますか。"
        "論文を二本読みました。\n\nよろしくお願いいたします。\n山田"
    )
    edited = (
        "リベラ先生\n\nお世話になっております。来週の面談の件で少しご相談があります。"
        "火曜日か水曜日の午後は空いていますか。論文を二本読みましたので。\n\nよろしくお願いいたします。\n山田"
    )
    door.save(draft("=?UTF-8?B?6Z2i6KuH44Gu5Lu2?=", first))
    door.run()
    door.save(draft("=?UTF-8?B?6Z2i6KuH44Gu5Lu2?=", edited))
    door.run()
    assert len(door.subjects(OUTBOX)) == 1
    assert len(door.subjects(DRAFTS)) == 1


def test_a_new_reply_quoting_the_taken_one_is_its_own_message(door: Door) -> None:
    door.save(draft("Re: Case write-ups", FIRST_REPLY))
    door.run()
    second = (
        "Oh no, I have clinic Tuesday after all. Could we do Wednesday?\n\nSam\n\n"
        "On Mon, Dr. Rivera wrote:\n> Great, see you then.\n>\n"
        + "".join("> > " + line + "\n" for line in FIRST_REPLY.splitlines())
    )
    door.save(draft("Re: Case write-ups", second))
    door.run(later=timedelta(hours=3))
    assert door.subjects(OUTBOX) == ["Re: Case write-ups", "Re: Case write-ups"]


def test_two_short_messages_under_one_long_signature_are_two_messages(door: Door) -> None:
    door.save(draft("Quick question", "Can we meet Tuesday at noon instead?" + SIGNATURE))
    door.run()
    door.save(draft("Quick question", "Also, which journal should I submit the case report to?" + SIGNATURE))
    door.run(later=timedelta(hours=2))
    assert len(door.subjects(OUTBOX)) == 2


def test_a_copy_notice_tells_the_truth_and_the_exact_action(door: Door) -> None:
    door.save(draft("Sepsis papers", QUESTION))
    door.run()
    door.save(draft("Sepsis papers", QUESTION.replace("Best,", "P.S. My notes are attached.\n\nBest,")))
    door.run()
    text = told_text(door)
    assert "saved it once more" not in text and "Delete this draft" not in text
    assert "this one was not sent" in text and "same mentor, similar text" in text
    assert f"If it is a new message, move it to the {OUTBOX}" in text


def encrypted(blob: str) -> bytes:
    """A Thunderbird OpenPGP draft: encrypted to her own key, its real subject hidden as "..."."""
    head = [
        f"From: Sam Patel <{STUDENT}>",
        f"To: Dr. Ana Rivera <{MENTOR}>",
        "Subject: ...",
        f"Message-ID: {make_msgid(domain='med.example.edu')}",
        "MIME-Version: 1.0",
        'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="b1"',
    ]
    body = (
        "--b1\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n--b1\r\n"
        'Content-Type: application/octet-stream; name="encrypted.asc"\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\n'
        f"{blob}\r\n-----END PGP MESSAGE-----\r\n\r\n--b1--\r\n"
    )
    return ("\r\n".join(head) + "\r\n\r\n" + body).encode()


def test_an_encrypted_draft_is_left_in_drafts_and_she_is_told_once(door: Door) -> None:
    door.save(encrypted("hQEMA1111111111AQf/first+message+ciphertext"))
    door.run()
    door.run()
    door.save(encrypted("hQEMA2222222222AQf/another+message+entirely"))
    door.run(later=timedelta(hours=2))
    door.run()
    assert door.subjects(OUTBOX) == []
    assert door.subjects(DRAFTS) == ["...", "..."]
    assert door.notices() == ["Not taken: an encrypted draft in Drafts"] * 2
    assert "encrypted" in told_text(door) and "send it from your mail program" in told_text(door)


def test_a_reminder_starred_while_the_door_was_closed_is_not_taken_when_it_opens_again(door: Door) -> None:
    opened = door.world.settings
    door.world.settings = opened.model_copy(update={"drafts": Drafts(take_flagged=False, settle=0)})
    door.door = DraftDoor()  # the daemon restarted with the door closed
    door.run()
    reminder = draft("Half written", "Dear Dr. Rivera,\n\nI wanted to ask about TODO").split(b"\r\n")
    dated = [f"Date: {format_datetime(door.at)}".encode() if line.startswith(b"Date:") else line for line in reminder]
    door.save(b"\r\n".join(dated))  # a reminder star, set seconds before the door opens again
    door.run(later=timedelta(seconds=5))
    door.world.settings = opened  # opened again in the config seconds later, the daemon restarted
    door.door = DraftDoor()
    door.run(later=timedelta(seconds=5))  # no "just saved for the door that opens now": it was open before
    door.run()
    assert door.subjects(OUTBOX) == []
    assert "1 flagged draft left in Drafts" in door.notices()


def test_one_more_save_of_a_reminder_that_keeps_its_star_is_still_a_reminder(tmp_path: Path) -> None:
    door = Door(tmp_path)
    message_ids = [make_msgid(domain="med.example.edu"), None]
    for message_id in message_ids:  # her client keeps the Message-ID, or gives each save a new one
        door.save(
            draft(f"Research idea {message_id is None}", "Dear Dr. Rivera,\n\nI had an idea about TODO", message_id)
        )
    door.run(later=timedelta(days=2))  # the door opens: both are its baseline
    assert door.notices() == ["2 flagged drafts left in Drafts"]
    for uid, message_id in zip(sorted(door.server.messages(DRAFTS)), message_ids, strict=True):
        del door.server.folders[DRAFTS].messages[uid]  # she types two words: a new save, still starred
        text = "Dear Dr. Rivera,\n\nI had an idea about TODO the lactate"
        door.save(draft(f"Research idea {message_id is None}", text, message_id))
    door.run()
    door.run()
    assert door.subjects(OUTBOX) == []
    uid = sorted(door.server.messages(DRAFTS))[0]
    door.server.folders[DRAFTS].messages[uid].flags.discard("\\Flagged")  # star off, then on: hand it over
    door.run()
    door.server.folders[DRAFTS].messages[uid].flags.add("\\Flagged")
    door.run()
    door.run()
    assert door.subjects(OUTBOX) == ["Research idea False"]
    door.world.ledger.close()


def test_a_reminder_without_a_date_in_a_drafts_folder_made_anew_is_not_taken(tmp_path: Path) -> None:
    door = Door(tmp_path)
    raw = draft("Research idea", "Dear Dr. Rivera,\n\nI had an idea about TODO")
    raw = b"\r\n".join(line for line in raw.split(b"\r\n") if not line.startswith(b"Date:"))
    door.at -= timedelta(days=60)
    door.save(raw)  # starred as a reminder two months ago
    door.at += timedelta(days=30)
    door.run()  # the door opens: the reminder is its baseline
    door.at += timedelta(days=30)
    old = door.server.folders.pop(DRAFTS)  # the folder is made anew (a client's resync, a server move)
    door.server.create(DRAFTS, attributes=frozenset({"\\drafts"}))
    for message in old.messages.values():
        door.server.put(DRAFTS, message.raw, tuple(message.flags), when=door.at)  # INTERNALDATE: the re-upload
    door.run()
    door.run()
    assert door.subjects(OUTBOX) == []
    door.world.ledger.close()
