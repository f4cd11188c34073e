"""The star door on the in-memory mailbox (issue 22, fourth hostile round): when the agent cannot tell a re-saved
copy from a new message, it does not send: the draft stays in Drafts and one true notice says why.

- A draft with no readable words (an attachment only, an emoji only, a charset Python does not know) re-saved with
  a new Message-ID is a copy unless something tells them apart (another file attached).
- Two short notes with one subject that share half their words ("Sounds good", "Sounds great") are one message.
- A reply quoting the taken one Outlook's way (a rule, then From:/Sent:) or in HTML only (a blockquote) is its own.
"""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, make_msgid

import pytest

from agent.reconcile.intake import take_in_outbox
from agent.rules.draft_edits import is_edit, word_prints
from agent.store.ledger import CANCELLED
from tests.agent_process import MENTOR, OUTBOX, STUDENT
from tests.test_star_door_copies import DRAFTS, FLAGGED, QUESTION, Door, draft
from tests.test_star_door_resaves import door, told_text

__all__ = ["door"]
CV = base64.encodebytes(b"%PDF-1.4 her cv " * 40).decode()
LETTER = base64.encodebytes(b"%PDF-1.4 a letter " * 40).decode()
FIRST = (
    "Dear Dr. Rivera,\n\nThank you, Tuesday at 3 works for me. I will bring the two case write-ups and the lab "
    "values we discussed.\n\nBest,\nSam\n"
)


def attached(subject: str, pdf: str = CV, boundary: str = "b0und") -> bytes:
    """Her CV attached, no text typed; each save with a boundary of its own."""
    head = [
        f"From: Sam Patel <{STUDENT}>",
        f"To: Dr. Ana Rivera <{MENTOR}>",
        f"Subject: {subject}",
        f"Message-ID: {make_msgid(domain='med.example.edu')}",
        f"Date: {format_datetime(datetime.now(UTC))}",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/mixed; boundary="{boundary}"',
    ]
    body = (
        f"--{boundary}\r\nContent-Type: application/pdf; name=cv.pdf\r\nContent-Disposition: attachment; "
        f"filename=cv.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n{pdf}\r\n--{boundary}--\r\n"
    )
    return ("\r\n".join(head) + "\r\n\r\n" + body).encode()


def thai() -> bytes:
    """Outlook's name for Thai, windows-874, which Python knows only as cp874."""
    text = "เรียน อาจารย์ริเวรา ขอบคุณสำหรับบทความเรื่องภาวะติดเชื้อ หนูมีคำถามเรื่องค่าแลคเตทค่ะ"
    head = draft("Question", "x").split(b"\r\n\r\n")[0].replace(b"charset=UTF-8", b"charset=windows-874")
    return head + b"\r\n\r\n" + text.encode("cp874")


@pytest.mark.parametrize(
    ("first", "again"),
    [
        (attached("My CV"), attached("My CV", boundary="other")),
        (attached("My CV"), attached("CV as promised", boundary="other")),  # the subject fixed too
        (draft("Thanks", "🙏🙏"), draft("Thanks", "🙏🙏")),
        (thai(), thai()),
    ],
    ids=["attachment-only", "attachment-only-subject-fixed", "emoji-only", "windows-874"],
)
def test_a_draft_without_readable_words_saved_again_is_not_sent_twice(door: Door, first: bytes, again: bytes) -> None:
    door.save(first)
    door.run()
    assert len(door.subjects(OUTBOX)) == 1
    door.save(again)
    door.run()
    assert len(door.subjects(OUTBOX)) == 1, door.notices()
    assert len(door.subjects(DRAFTS)) == 1
    assert "Not taken again" in door.notices()[-1]
    assert "this one was not sent" in told_text(door)


def test_another_file_sent_on_its_own_is_taken_as_its_own(door: Door) -> None:
    door.save(attached("My CV"))
    door.run()
    door.save(attached("My CV", pdf=LETTER))
    door.run(later=timedelta(hours=1))
    assert door.subjects(OUTBOX) == ["My CV", "My CV"]


def test_a_short_reply_changed_by_one_word_is_not_sent_twice(door: Door) -> None:
    quote = "\n\nOn Mon, Dr. Rivera wrote:\n> Shall we meet Tuesday at 3?\n"
    door.save(draft("Re: Tuesday", "Sounds good" + quote))
    door.run()
    door.save(draft("Re: Tuesday", "Sounds great" + quote))
    door.run()
    assert door.subjects(OUTBOX) == ["Re: Tuesday"]
    assert door.subjects(DRAFTS) == ["Re: Tuesday"]


def test_an_outlook_style_reply_quoting_the_taken_one_is_its_own(door: Door) -> None:
    door.save(draft("Case write-ups", FIRST))
    door.run()
    second = (
        "Dr. Rivera, I have clinic Tuesday after all. Could we do Wednesday instead? Sorry for the change.\n\nSam\n\n"
        f"________________________________\nFrom: Ana Rivera <{MENTOR}>\nSent: Monday\nTo: Sam Patel\n"
        "Subject: RE: Case write-ups\n\nGreat, see you then.\n\n________________________________\n"
        "From: Sam Patel\nSent: Monday\nTo: Ana Rivera\nSubject: Case write-ups\n\n" + FIRST
    )
    door.save(draft("RE: RE: Case write-ups", second))
    door.run(later=timedelta(hours=3))
    assert len(door.subjects(OUTBOX)) == 2, door.notices()


def test_an_html_only_reply_quoting_the_taken_one_in_a_blockquote_is_its_own(door: Door) -> None:
    door.save(draft("Case write-ups", FIRST))
    door.run()
    html = (
        "<div>Dr. Rivera, I have clinic Tuesday after all. Could we do Wednesday instead?</div><br>"
        '<div class="gmail_quote"><blockquote class="gmail_quote">Great, see you then.<br>'
        '<blockquote class="gmail_quote">' + FIRST.replace("\n", "<br>") + "</blockquote></blockquote></div>"
    )
    door.save(draft("Re: Case write-ups", html).replace(b"text/plain", b"text/html"))
    door.run(later=timedelta(hours=3))
    assert len(door.subjects(OUTBOX)) == 2, door.notices()


def test_what_tells_two_drafts_apart() -> None:
    cv, cv_again, letter = (
        word_prints(attached("CV")),
        word_prints(attached("CV", boundary="x")),
        word_prints(attached("CV", pdf=LETTER)),
    )
    assert is_edit(cv, cv_again) and not is_edit(cv, letter)
    assert not is_edit(word_prints(draft("Hi", FIRST)), cv)  # words on one side only, no file in common
    assert is_edit("", "")  # a row kept with neither words nor evidence: in doubt, a copy
    short = word_prints(draft("Quick question", "Can we meet Tuesday at noon instead?"))
    assert not is_edit(short, word_prints(draft("Quick question", "Which journal should I submit it to?")))
    assert is_edit(word_prints(draft("Re: x", "Sounds good")), word_prints(draft("Re: x", "Sounds great")))
    assert not is_edit(word_prints(draft("Re: x", "Sounds good")), word_prints(draft("Other", "Sounds great")))


def test_a_resave_stored_with_a_client_clock_behind_the_servers_is_not_sent_twice(door: Door) -> None:
    """Some clients APPEND with their own INTERNALDATE: a re-save may look older than the draft taken."""
    door.save(draft("Sepsis papers", QUESTION))
    door.run()
    assert door.subjects(OUTBOX) == ["Sepsis papers"]
    resave = draft("Sepsis papers", QUESTION + "\nP.S. thanks\n")
    door.server.put(DRAFTS, resave, FLAGGED, when=door.at - timedelta(minutes=2))
    door.run()
    assert door.subjects(OUTBOX) == ["Sepsis papers"], door.notices()
    assert door.subjects(DRAFTS) == ["Sepsis papers"]


def test_a_similar_draft_written_before_the_one_taken_is_its_own(door: Door) -> None:
    """Saved (a lower UID) before the draft taken: no re-save of it, whatever the clocks say."""
    door.save(draft("Sepsis papers, notes", QUESTION), ("\\Draft", "\\Seen"))
    door.save(draft("Sepsis papers", QUESTION + "\nP.S. thanks\n"))
    door.run()
    assert door.subjects(OUTBOX) == ["Sepsis papers"]
    earlier = next(iter(door.server.messages(DRAFTS)))
    door.server.folders[DRAFTS].messages[earlier].flags.add("\\Flagged")
    door.run(later=timedelta(hours=1))
    assert door.subjects(OUTBOX) == ["Sepsis papers", "Sepsis papers, notes"], door.notices()


def cancel_back_to_drafts(door: Door, *, ledger_told: bool = True) -> int:
    """What `mentor-agent cancel` does to the message taken: back to Drafts (hers again), the ledger says so."""
    asyncio.run(take_in_outbox(door.world))
    (key, folder), *_ = door.world.ledger.db.execute("SELECT key, folder FROM messages")
    (uid, raw), *_ = door.server.messages(str(folder)).items()
    del door.server.folders[str(folder)].messages[uid]
    if ledger_told:
        door.world.ledger.update(str(key), state=CANCELLED)
    return door.server.put(DRAFTS, raw, ("\\Draft", "\\Seen"), when=door.at)


def test_a_cancelled_message_back_in_drafts_is_hers_and_her_star_hands_it_over(door: Door) -> None:
    door.save(draft("Sepsis papers", QUESTION))
    door.run()
    uid = cancel_back_to_drafts(door)
    door.run()
    assert not [n for n in door.notices() if n.startswith("Not taken again")]
    door.server.folders[DRAFTS].messages[uid].flags.add("\\Flagged")
    door.run()
    assert door.subjects(OUTBOX) == ["Sepsis papers"], door.notices()
    assert not [n for n in door.notices() if n.startswith("Not taken again")]


def test_a_message_moved_back_to_drafts_before_the_ledger_knows_is_never_claimed_held(door: Door) -> None:
    door.save(draft("Sepsis papers", QUESTION))
    door.run()
    uid = cancel_back_to_drafts(door, ledger_told=False)  # moved by hand; the delivery pass has not seen it gone
    door.server.folders[DRAFTS].messages[uid].flags.add("\\Flagged")
    door.run()
    assert not [n for n in door.notices() if n.startswith("Not taken again")], door.notices()
    assert "\\Flagged" in door.server.flags(DRAFTS, uid)  # her star as she left it


def test_a_new_short_update_starred_soon_after_a_copy_notice_is_told_never_unstarred_silently(door: Door) -> None:
    door.save(draft("Running late", "Running 10 minutes late, sorry!\n\nSam\n"))
    door.run()
    door.save(draft("Running late", "Running 10 minutes late, sorry!\n\nSam\n"))  # the compose window's re-save
    door.run()
    told = len(door.notices())
    uid = door.save(draft("Update", "Now running 20 minutes late, very sorry!\n\nSam\n"))
    door.run(later=timedelta(minutes=4))
    assert len(door.subjects(OUTBOX)) == 2 or len(door.notices()) > told, "her star taken off, nothing said"
    if "\\Flagged" not in door.server.flags(DRAFTS, uid):
        assert "Its flag was taken off" in told_text(door).rsplit("Not taken again", 1)[-1]


def test_the_same_copy_starred_again_within_minutes_keeps_its_star_until_she_is_told(door: Door) -> None:
    door.save(draft("Sepsis papers", QUESTION))
    door.run()
    copy = door.save(draft("Sepsis papers", QUESTION), ("\\Draft", "\\Seen"))
    door.run()
    told = len(door.notices())
    door.server.folders[DRAFTS].messages[copy].flags.add("\\Flagged")
    door.run(later=timedelta(minutes=2))
    assert len(door.notices()) > told or "\\Flagged" in door.server.flags(DRAFTS, copy)
    door.run(later=timedelta(minutes=10))
    assert len(door.notices()) == told + 1 and "\\Flagged" not in door.server.flags(DRAFTS, copy)
    assert door.subjects(OUTBOX) == ["Sepsis papers"]


def test_a_copy_notice_is_titled_with_this_drafts_subject_and_names_the_one_taken(door: Door) -> None:
    signature = "\n\nSam Patel\nMS3, Class of 2027\nUniversity Medical School\nPager 555 0100 | Cell 555 0199\n"
    door.save(draft("Tuesday", "Can we meet Tuesday at noon instead?" + signature))
    door.run()
    door.save(draft("Journal", "Which journal should I submit the case report to?" + signature))
    door.run(later=timedelta(hours=2))
    if len(door.subjects(OUTBOX)) == 1:  # in doubt (a signature without "--"): left in Drafts, and told so
        assert door.notices()[-1] == "Not taken again: Journal"
        assert "The draft “Journal” in Drafts looks like the draft “Tuesday” taken" in told_text(door)


# Across the doors: what the Outbox took and what the star door took are one record (taken_drafts.copy_of)
DRAFT_FLAGS = ("\\Draft", "\\Seen")


def take_in(door: Door) -> None:
    asyncio.run(take_in_outbox(door.world))


def keys(door: Door) -> list[str]:
    return [str(key) for (key,) in door.world.ledger.db.execute("SELECT key FROM messages")]


def test_a_starred_resave_of_a_message_dropped_in_the_outbox_is_not_sent_twice(door: Door) -> None:
    door.server.put(OUTBOX, draft("Sepsis papers", QUESTION), ("\\Seen",), when=door.at)
    take_in(door)
    assert len(keys(door)) == 1
    door.save(draft("Sepsis papers", QUESTION + "P.S. notes.\n"))  # her compose window, a new Message-ID, starred
    door.run()
    take_in(door)
    assert len(keys(door)) == 1 and door.subjects(DRAFTS) == ["Sepsis papers"], door.notices()
    assert door.notices()[-1] == "Not taken again: Sepsis papers"


def test_a_labelled_resave_of_a_starred_draft_is_set_aside_not_sent_twice(door: Door) -> None:
    door.save(draft("Sepsis papers", QUESTION))
    door.run()
    take_in(door)
    assert len(keys(door)) == 1
    # Gmail: the still open compose window saves again with the label "Mentor Outbox" added (a new Message-ID):
    # one message in Drafts and in the Outbox
    again = draft("Sepsis papers", QUESTION + "P.S. notes\n")
    door.save(again, DRAFT_FLAGS)
    door.server.put(OUTBOX, again, DRAFT_FLAGS, when=door.at)
    take_in(door)
    assert len(keys(door)) == 1, door.notices()
    assert door.subjects(door.world.folders.needs_attention) == ["Sepsis papers"]


def test_a_starred_and_labelled_resave_of_a_starred_and_labelled_draft_is_not_sent_twice(door: Door) -> None:
    first = draft("Sepsis papers", QUESTION)
    door.save(first)  # Gmail: one message with the star and both labels, Drafts and Mentor Outbox
    door.server.put(OUTBOX, first, DRAFT_FLAGS, when=door.at)
    take_in(door)
    door.run()
    assert len(keys(door)) == 1 and door.subjects(DRAFTS) == []
    again = draft("Sepsis papers", QUESTION + "P.S. notes\n")
    door.save(again)
    door.server.put(OUTBOX, again, DRAFT_FLAGS, when=door.at)
    door.run()
    take_in(door)
    door.run()
    take_in(door)
    assert len(keys(door)) == 1, door.notices()


def test_a_compose_window_left_open_overnight_saving_the_same_text_a_day_later_is_not_sent_twice(door: Door) -> None:
    door.save(draft("Sepsis papers", QUESTION))
    door.run()
    door.at += timedelta(hours=26)  # the laptop slept; the window saves once more, a new Message-ID
    door.save(draft("Sepsis papers", QUESTION))
    door.run()
    assert door.subjects(OUTBOX) == ["Sepsis papers"], door.notices()
    door.at += timedelta(days=2)
    door.save(draft("Sepsis papers", QUESTION + "P.S. one more question on the lactate threshold.\n"))
    door.run()  # an edit, days later: a message of its own
    assert door.subjects(OUTBOX) == ["Sepsis papers", "Sepsis papers"], door.notices()


def test_a_draft_called_a_copy_and_moved_to_the_outbox_as_the_notice_says_is_taken(door: Door) -> None:
    signature = "\n\nSam Patel\nMS3, Class of 2027\nUniversity Medical School\nPager 555 0100 | Cell 555 0199\n"
    door.save(draft("Tuesday", "Can we meet Tuesday at noon instead?" + signature))
    door.run()
    take_in(door)
    uid = door.save(draft("Journal", "Which journal should I submit the case report to?" + signature))
    door.run(later=timedelta(hours=2))
    if door.subjects(DRAFTS) == ["Journal"]:  # called a copy (in doubt): she follows the notice
        door.box.move(DRAFTS, uid, OUTBOX)
    take_in(door)
    assert len(keys(door)) == 2, door.notices()
    assert door.subjects(door.world.folders.needs_attention) == []
