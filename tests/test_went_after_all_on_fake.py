"""A send in doubt whose copy turns up in Sent later went (agent.reconcile.went_after_all): what the hostile round
of that change found. Each of these sent a message twice, counted one twice, or took a copy that proves nothing
for proof. (On the in-memory mailbox and the real aiosmtpd server, as tests/test_in_doubt_counts_on_fake.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.mail.session import MailboxError
from agent.reconcile.doors.submission import SUBMITTED
from agent.reconcile.history import Seen
from agent.reconcile.recovery import recover
from agent.reconcile.went_after_all import TOLD
from agent.rules.envelope import parse_envelope
from agent.store.in_doubt_kept import TAKEN_BACK
from agent.store.ledger import ATTENTION, CANCELLED, DONE
from tests.agent_process import MENTOR, OUTBOX, policy_text
from tests.servers.smtp import SmtpServer
from tests.test_answers_on_fake import notice_texts
from tests.test_in_doubt_counts_on_fake import (  # noqa: F401  (the fixture)
    START,
    Crash,
    _digest_in_doubt_on_day_two,
    hourly,
)
from tests.test_passes_on_fake import SENT, Pass, mail


def _uid(made: Pass, folder: str, subject: str) -> int:
    return next(u for u, raw in made.server.messages(folder).items() if parse_envelope(raw).subject == subject)


def _sent_times(made: Pass) -> list[datetime]:
    return [item.at for item in made.world.ledger.history("rivera", START - timedelta(days=1)).sent]


@pytest.fixture
def digest_day_two(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[tuple[Pass, list[datetime]]]:
    """tests.test_in_doubt_counts_on_fake._digest_in_doubt_on_day_two, its ledger closed after the test."""
    made, clock = _digest_in_doubt_on_day_two(tmp_path, smtp_server)
    try:
        yield made, clock
    finally:
        made.world.ledger.close()


def _through_the_door(made: Pass, message_id: str) -> bytes:
    """A message her mail program handed to the submission door (logged as the door logs it)."""
    made.world.ledger.log(SUBMITTED, message=message_id, detail="via the door")
    return mail("via the door", message_id=message_id)


def _moved_back_and_held(made: Pass, clock: list[datetime], raw: bytes | None = None) -> bytes:
    """ "only one" in doubt at START; moved back ten minutes later, it waits in Scheduled for the hour's gap.
    Returns what the first try handed to SMTP."""
    made.server.put(OUTBOX, raw or mail("only one"))
    made.smtp.drop_after_data()
    made.run()
    first = made.smtp.messages[-1].content
    clock[0] = START + timedelta(minutes=10)
    subject = parse_envelope(first).subject or ""
    made.box.move("Needs attention", _uid(made, "Needs attention", subject), OUTBOX)
    made.run()
    made.run()
    assert made.subjects("Scheduled") == [subject]
    return first


def test_set_aside_then_moved_back_once_more_it_is_still_not_sent_twice(
    hourly: tuple[Pass, list[datetime]],  # noqa: F811
) -> None:
    made, clock = hourly
    first = _moved_back_and_held(made, clock)
    made.server.put(SENT, first)
    made.run()
    assert made.subjects("Needs attention") == ["only one"]
    clock[0] = START + timedelta(hours=2)
    made.box.move("Needs attention", _uid(made, "Needs attention", "only one"), OUTBOX)  # she did not read it
    for _ in range(3):
        made.run()
    assert made.received() == ["only one"], "its first try reached her: never a second copy"
    assert made.subjects("Needs attention") == ["only one"] and made.subjects(OUTBOX) == []
    assert _sent_times(made) == [START]


def test_a_digest_member_moved_back_is_not_sent_alone_once_the_digests_copy_turns_up(
    digest_day_two: tuple[Pass, list[datetime]],
) -> None:
    made, clock = digest_day_two
    for _ in range(3):
        made.run()
    digest = made.smtp.messages[-1].content
    assert made.subjects("Needs attention") == ["B", "C", "D"]
    clock[0] = START + timedelta(days=1, minutes=10)
    made.box.move("Needs attention", _uid(made, "Needs attention", "B"), OUTBOX)  # she: send B again
    made.run()
    made.run()
    assert made.subjects("Scheduled") == ["B"]
    made.server.put(SENT, digest)  # the provider's copy of the digest of B, C and D
    made.run()
    assert made.subjects("Scheduled") == [] and sorted(made.subjects("Needs attention")) == ["B", "C", "D"]
    clock[0] = START + timedelta(days=2, hours=1)
    for _ in range(4):
        made.run()
    assert made.received().count("B") == 0, "B went in the digest: never again alone"
    assert sorted(_sent_times(made)) == [START, START + timedelta(days=1)], "A, and the digest once"


def test_one_message_of_a_digest_dragged_to_sent_settles_the_digest_and_counts_it_once(
    digest_day_two: tuple[Pass, list[datetime]],
) -> None:
    made, clock = digest_day_two
    for _ in range(3):
        made.run()
    before = _sent_times(made)
    clock[0] = START + timedelta(days=1, minutes=10)
    made.box.move("Needs attention", _uid(made, "Needs attention", "B"), SENT)  # she: "it went"
    made.run()
    assert _sent_times(made) == before, "B, C and D went as one e-mail: counted once"
    assert sorted(row.subject for row in made.world.ledger.in_states(DONE)) == ["A", "B", "C", "D"]
    assert made.world.ledger.in_states(ATTENTION) == []


def test_another_message_sharing_its_message_id_in_sent_proves_nothing(
    hourly: tuple[Pass, list[datetime]],  # noqa: F811
) -> None:
    made, clock = hourly
    made.server.put(OUTBOX, mail("only one", message_id="<reused@med.example.edu>"))
    made.smtp.drop_after_data()
    made.run()
    clock[0] = START + timedelta(minutes=5)
    for other in (
        mail("lunch on friday?", to="friend@elsewhere.example", message_id="<reused@med.example.edu>"),
        mail("another subject", message_id="<reused@med.example.edu>"),  # to her, but another message
    ):
        made.server.put(SENT, other)
        made.run()
    assert [(row.subject, row.state) for row in made.world.ledger.in_states(ATTENTION, DONE)] == [
        ("only one", ATTENTION)
    ]
    assert not any("Went after all" in subject for subject in made.subjects("INBOX"))


def test_a_mail_programs_own_copy_of_what_it_handed_to_the_door_proves_nothing(
    hourly: tuple[Pass, list[datetime]],  # noqa: F811
) -> None:
    made, clock = hourly
    raw = _through_the_door(made, "<door1@med.example.edu>")
    made.server.put(OUTBOX, raw)
    made.smtp.drop_after_data()
    made.run()
    clock[0] = START + timedelta(minutes=1)
    made.server.put(SENT, raw)  # the program's own copy, filed late
    made.run()
    assert made.world.ledger.in_states(DONE) == []
    assert not any("Went after all" in subject for subject in made.subjects("INBOX"))


def test_a_mail_programs_own_copy_does_not_hold_back_what_she_moved_back(
    hourly: tuple[Pass, list[datetime]],  # noqa: F811
) -> None:
    made, clock = hourly
    raw = _through_the_door(made, "<door2@med.example.edu>")
    _moved_back_and_held(made, clock, raw)
    made.server.put(SENT, raw)  # her mail program's own copy of what it handed to the door
    made.run()
    clock[0] = START + timedelta(hours=2)
    for _ in range(3):
        made.run()
    assert not any("Not sent again" in subject for subject in made.subjects("INBOX"))
    assert made.received() == ["via the door", "via the door"], "she decided to send it again"


@pytest.mark.parametrize("sent_copy", ["kept", "gone by the restart"])
@pytest.mark.parametrize("at", ["before the move", "after the move"])
def test_a_stop_while_setting_the_moved_back_copy_aside_is_finished_at_the_next_start(
    hourly: tuple[Pass, list[datetime]],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    at: str,
    sent_copy: str,
) -> None:
    """Found by the hostile rounds: killed between the copy's move and the ledger's word, the next start read the
    copy gone from Scheduled as her cancel ("taken out of Scheduled by the student"), and she was never told; with
    the copy in Sent gone by then (she deleted it), the stop was never finished and the copy stayed held."""
    made, clock = hourly
    first = _moved_back_and_held(made, clock)
    made.server.put(SENT, first)
    mailbox = made.world.mailbox
    real_move = mailbox.move

    def move(folder: str, uid: int, target: str) -> int | None:
        if at == "before the move" and target == "Needs attention":
            raise Crash(at)
        moved = real_move(folder, uid, target)
        if target == "Needs attention":
            raise Crash(at)
        return moved

    monkeypatch.setattr(mailbox, "move", move)
    with pytest.raises(Crash):
        made.run()
    monkeypatch.undo()
    if sent_copy != "kept":
        for uid in list(made.server.messages(SENT)):
            made.box.delete(SENT, uid)
    made.seen = Seen()  # the restart: Sent is read again
    clock[0] = START + timedelta(hours=2)
    asyncio.run(recover(made.world))
    for _ in range(3):
        made.run()
    assert made.received() == ["only one"]
    assert made.subjects("Needs attention") == ["only one"] and made.subjects("Scheduled") == []
    assert "[mentor-agent] Not sent again: only one" in made.subjects("INBOX")
    assert made.world.ledger.in_states(CANCELLED) == [], "she did not cancel it"


def test_moved_back_and_claimed_when_the_daemon_stopped_it_is_not_sent_after_the_restart(
    hourly: tuple[Pass, list[datetime]],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made, clock = hourly
    first = _moved_back_and_held(made, clock)
    clock[0] = START + timedelta(hours=1)

    def crash_point(point: str) -> None:
        if point == "claimed":
            raise Crash(point)

    monkeypatch.setattr("agent.reconcile.delivery.crash_point", crash_point)
    with pytest.raises(Crash):
        made.run()  # claimed into Sending, never handed to SMTP
    monkeypatch.undo()
    made.server.put(SENT, first)  # the first try's copy turns up meanwhile
    made.seen = Seen()
    asyncio.run(recover(made.world))
    for _ in range(3):
        made.run()
    assert made.received() == ["only one"]
    assert made.subjects("Needs attention") == ["only one"] and made.subjects("Sending") == []
    assert "[mentor-agent] Not sent again: only one" in made.subjects("INBOX")


# -- its copy turns up in Sent later: it went (agent.reconcile.went_after_all) ------------------------------------


def test_a_send_in_doubt_whose_copy_turns_up_in_sent_later_went_and_is_never_sent_again(
    hourly: tuple[Pass, list[datetime]],  # noqa: F811
) -> None:
    made, clock = hourly
    made.server.put(OUTBOX, mail("only one"))
    made.smtp.drop_after_data()
    made.run()
    assert made.subjects("Needs attention") == ["only one"]
    clock[0] = START + timedelta(minutes=5)
    made.server.put(SENT, made.smtp.messages[-1].content)  # the provider filed what its server took, late
    made.run()
    (went,) = made.world.ledger.in_states(DONE)
    assert went.subject == "only one"
    assert made.world.ledger.in_states(ATTENTION) == []
    assert "[mentor-agent] Went after all: only one" in made.subjects("INBOX")
    history = made.world.ledger.history("rivera", START - timedelta(days=1))
    assert [item.at for item in history.sent] == [START], "once, from its hand-over"
    # She moves it back to send it anyway: it is not sent twice
    clock[0] = START + timedelta(hours=2)
    (uid,) = made.server.messages("Needs attention")
    made.box.move("Needs attention", uid, OUTBOX)
    for _ in range(3):
        made.run()
    assert made.received() == ["only one"]
    assert made.subjects(OUTBOX) == [] and made.subjects("Needs attention") == ["only one"]
    history = made.world.ledger.history("rivera", START - timedelta(days=1))
    assert [item.at for item in history.sent] == [START]


def test_moved_back_and_held_when_its_earlier_copy_turns_up_in_sent_the_held_copy_is_not_sent(
    hourly: tuple[Pass, list[datetime]],  # noqa: F811
) -> None:
    made, clock = hourly
    first = _moved_back_and_held(made, clock)
    made.server.put(SENT, first)  # then the provider's copy of the first try turns up
    made.run()
    assert made.subjects("Scheduled") == [] and made.subjects("Needs attention") == ["only one"]
    assert "[mentor-agent] Not sent again: only one" in made.subjects("INBOX")
    clock[0] = START + timedelta(hours=2)
    for _ in range(3):
        made.run()
    assert made.received() == ["only one"], "the first try reached her: not a second"
    assert _sent_times(made) == [START], "its hand-over, once"


def test_a_digest_in_doubt_whose_copy_turns_up_in_sent_went_for_each_of_its_messages(
    digest_day_two: tuple[Pass, list[datetime]],
) -> None:
    made, clock = digest_day_two
    for _ in range(3):
        made.run()
    assert made.subjects("Needs attention") == ["B", "C", "D"]
    made.server.put(SENT, made.smtp.messages[-1].content)
    clock[0] = START + timedelta(days=1, minutes=10)
    made.run()
    assert sorted(row.subject for row in made.world.ledger.in_states(DONE)) == ["A", "B", "C", "D"]
    assert any(s.startswith("[mentor-agent] Went after all") for s in made.subjects("INBOX"))
    history = made.world.ledger.history("rivera", START)
    assert [item.at for item in history.sent] == [START, START + timedelta(days=1)], "the digest once"


# -- the second hostile round ------------------------------------------------------------------------------------


def test_a_message_to_bcc_only_settles_and_is_not_sent_twice(hourly: tuple[Pass, list[datetime]]) -> None:  # noqa: F811
    """SMTP never carries the Bcc line: the provider's copy of a message to Bcc only names no one."""
    made, clock = hourly
    bcc_only = mail("to bcc only", to="undisclosed-recipients:;", Bcc=MENTOR)
    first = _moved_back_and_held(made, clock, bcc_only)
    made.server.put(SENT, first)
    made.run()
    clock[0] = START + timedelta(hours=2)
    for _ in range(3):
        made.run()
    assert made.received() == ["to bcc only"]
    assert "[mentor-agent] Not sent again: to bcc only" in made.subjects("INBOX")


def test_a_message_without_a_subject_settles_and_is_not_sent_twice(hourly: tuple[Pass, list[datetime]]) -> None:  # noqa: F811
    made, clock = hourly
    first = _moved_back_and_held(made, clock, mail("x").replace(b"Subject: x\r\n", b""))
    made.server.put(SENT, first)
    made.run()
    clock[0] = START + timedelta(hours=2)
    for _ in range(3):
        made.run()
    assert len(made.received()) == 1


def test_moved_back_before_the_links_were_kept_it_is_still_not_sent_twice(hourly: tuple[Pass, list[datetime]]) -> None:  # noqa: F811
    """A ledger from before this version has no link from the copy taken in again to its send in doubt: its own
    Message-ID and the hand-over kept for it tell."""
    made, clock = hourly
    first = _moved_back_and_held(made, clock)
    with made.world.ledger.transaction():
        made.world.ledger.db.execute("DELETE FROM log WHERE event = ?", (TAKEN_BACK,))
    made.server.put(SENT, first)
    made.run()
    clock[0] = START + timedelta(hours=2)
    for _ in range(3):
        made.run()
    assert made.received() == ["only one"]


def test_a_message_sent_under_a_message_id_the_agent_made_is_known_by_it(hourly: tuple[Pass, list[datetime]]) -> None:  # noqa: F811
    """Her program reused a Message-ID already sent: the second message went out under one the agent made, which
    is what its copy in Sent carries. Moved back and held, it went twice, and was counted once too often."""
    made, clock = hourly
    made.server.put(OUTBOX, mail("first one", message_id="<same@med.example.edu>"))
    made.run()
    clock[0] = START + timedelta(hours=2)
    made.server.put(OUTBOX, mail("second one", message_id="<same@med.example.edu>"))
    made.smtp.drop_after_data()
    made.run()
    second = made.smtp.messages[-1].content
    clock[0] = START + timedelta(hours=2, minutes=10)
    made.box.move("Needs attention", _uid(made, "Needs attention", "second one"), OUTBOX)
    made.run()
    made.run()
    made.server.put(SENT, second)
    made.run()
    clock[0] = START + timedelta(hours=5)
    for _ in range(3):
        made.run()
    assert made.received() == ["first one", "second one"]
    assert _sent_times(made) == [START, START + timedelta(hours=2)]


def test_a_member_dragged_to_sent_settles_its_digest_and_a_sibling_moved_back_is_not_sent_alone(
    digest_day_two: tuple[Pass, list[datetime]],
) -> None:
    made, clock = digest_day_two
    for _ in range(3):
        made.run()
    sent = len(made.smtp.messages)
    clock[0] = START + timedelta(days=1, minutes=10)
    made.box.move("Needs attention", _uid(made, "Needs attention", "B"), OUTBOX)  # she: send B again
    made.run()
    made.run()
    clock[0] = START + timedelta(days=1, minutes=20)
    made.box.move("Needs attention", _uid(made, "Needs attention", "C"), SENT)  # then: "it went"
    clock[0] = START + timedelta(days=2, hours=1)
    for _ in range(4):
        made.run()
    assert len(made.smtp.messages) == sent, "B went in the digest she says went"
    assert sorted(_sent_times(made)) == [START, START + timedelta(days=1)]


def _in_doubt_again(made: Pass, clock: list[datetime], members: tuple[str, ...]) -> bytes:
    """The digest (B, C, D) in doubt on day two; ``members`` moved back ten minutes apart, and what they went in on
    day three in doubt again. Returns what the first digest handed to SMTP."""
    made.run()
    made.run()
    first_digest = made.smtp.messages[-1].content
    for n, subject in enumerate(members):
        clock[0] = START + timedelta(days=1, minutes=10 * (n + 1))
        made.box.move("Needs attention", _uid(made, "Needs attention", subject), OUTBOX)
        for _ in range(3):
            made.run()
    clock[0] = START + timedelta(days=2)
    made.smtp.drop_after_data()
    for _ in range(3):
        made.run()
    return first_digest


def test_members_in_doubt_again_in_a_later_digest_went_in_the_first(
    digest_day_two: tuple[Pass, list[datetime]],
) -> None:
    made, clock = digest_day_two
    first_digest = _in_doubt_again(made, clock, ("B", "C"))  # B and C's new digest, in doubt again
    sent = len(made.smtp.messages)
    clock[0] = START + timedelta(days=2, minutes=5)
    made.server.put(SENT, first_digest)  # the first digest (B, C, D) went after all
    made.run()
    assert made.world.ledger.in_states(ATTENTION) == [], "B and C went in the first: no longer in doubt"
    clock[0] = START + timedelta(days=3, hours=1)
    made.box.move("Needs attention", _uid(made, "Needs attention", "B"), OUTBOX)  # she moves B back anyway
    for _ in range(4):
        made.run()
    assert len(made.smtp.messages) == sent, "B went in the first digest: never a third time"
    days = [START + timedelta(days=n) for n in range(3)]
    assert sorted(_sent_times(made)) == days, "A; the first digest; the second's hand-over, each once"


@pytest.mark.parametrize("title", ["Went after all", "Not sent again"])
def test_a_stop_before_the_notice_is_appended_owes_it_until_it_is(
    hourly: tuple[Pass, list[datetime]],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    title: str,
) -> None:
    made, clock = hourly
    if title == "Went after all":
        made.server.put(OUTBOX, mail("only one"))
        made.smtp.drop_after_data()
        made.run()
        first = made.smtp.messages[-1].content
    else:
        first = _moved_back_and_held(made, clock)
    made.server.put(SENT, first)
    real = made.world.notify

    async def killed(subject: str, lines: list[str], about: str | None = None, **own: Any) -> bool:
        if subject.startswith(title):
            raise Crash("kill -9")
        return await real(subject, lines, about, **own)

    monkeypatch.setattr(made.world, "notify", killed)
    with pytest.raises(Crash):
        made.run()
    monkeypatch.undo()
    made.seen = Seen()  # the restart
    asyncio.run(recover(made.world))
    for _ in range(2):
        made.run()
    assert [s for s in made.subjects("INBOX") if title in s] == [f"[mentor-agent] {title}: only one"]


# -- the third hostile round -------------------------------------------------------------------------------------


def _redirected(raw: bytes) -> bytes:
    """Her mail program's Redirect (RFC 5322 3.6.6) to her advisor: the message as it was, Resent- fields on top."""
    head = b"Resent-From: sam@med.example.edu\r\nResent-To: advisor@med.example.edu\r\n"
    return head + b"Resent-Date: Mon, 07 Dec 2026 12:00:00 +0000\r\nResent-Message-ID: <r1@med.example.edu>\r\n" + raw


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(_redirected, id="a Redirect of it to someone else"),
        pytest.param(
            lambda raw: mail(
                "only one",
                to="undisclosed-recipients:;",
                Bcc="advisor@med.example.edu",
                message_id="<one@med.example.edu>",
            ),
            id="another message to someone else in Bcc",
        ),
    ],
)
def test_a_copy_sent_to_someone_else_proves_nothing(
    hourly: tuple[Pass, list[datetime]],  # noqa: F811
    other: Callable[[bytes], bytes],
) -> None:
    made, clock = hourly
    made.server.put(OUTBOX, mail("only one", message_id="<one@med.example.edu>"))
    made.smtp.drop_after_data()
    made.run()
    raw = next(iter(made.server.messages("Needs attention").values()))
    clock[0] = START + timedelta(minutes=10)
    made.server.put(SENT, other(raw))
    made.run()
    assert [row.state for row in made.world.ledger.in_states(ATTENTION, DONE)] == [ATTENTION]
    assert not any("Went after all" in subject for subject in made.subjects("INBOX"))


def test_the_copy_of_a_first_try_alone_proves_nothing_of_the_digest_it_went_in_next(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """A alone, in doubt; moved back, it went with B as one digest, in doubt again; then the copy of A's first
    try turns up. B was recorded as gone (and, moved back, never sent): nothing said B went."""
    clock = [START]
    made = Pass(tmp_path, smtp_server, policy_text(max_per_day=1, over_limit="batch"))
    made.world.clock = lambda: clock[0]
    try:
        made.server.put(OUTBOX, mail("A"))
        made.smtp.drop_after_data()
        made.run()
        first_a = made.smtp.messages[-1].content
        clock[0] = START + timedelta(minutes=10)
        made.box.move("Needs attention", _uid(made, "Needs attention", "A"), OUTBOX)
        made.run()
        made.server.put(OUTBOX, mail("B"))
        made.run()
        made.run()
        clock[0] = START + timedelta(days=1)
        made.smtp.drop_after_data()  # A and B as one digest: in doubt again
        made.run()
        made.run()
        clock[0] = START + timedelta(days=1, minutes=20)
        made.server.put(SENT, first_a)
        made.run()
        rows = {row.subject: row for row in made.world.ledger.in_states(ATTENTION, DONE)}
        assert rows["B"].state == ATTENTION, "still in doubt: nothing said it went"
        assert rows["A"].state == DONE and rows["A"].sent_at == START, "A went at its first try"
        assert sorted(_sent_times(made)) == [START, START + timedelta(days=1)], "each hand-over once"
    finally:
        made.world.ledger.close()


def test_in_doubt_again_on_its_own_a_copy_is_taken_for_the_first_try(hourly: tuple[Pass, list[datetime]]) -> None:  # noqa: F811
    made, clock = hourly
    first = _moved_back_and_held(made, clock)
    clock[0] = START + timedelta(hours=1, minutes=5)
    made.smtp.drop_after_data()
    made.run()
    made.run()
    clock[0] = START + timedelta(hours=1, minutes=20)
    made.server.put(SENT, first)
    made.run()
    (row,) = made.world.ledger.in_states(DONE)
    assert row.sent_at == START
    assert _sent_times(made) == [START, START + timedelta(hours=1, minutes=5)], "both hand-overs count"


def test_a_notice_whose_append_went_unanswered_is_not_appended_twice(
    hourly: tuple[Pass, list[datetime]],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made, clock = hourly
    made.server.put(OUTBOX, mail("only one"))
    made.smtp.drop_after_data()
    made.run()
    made.server.put(SENT, made.smtp.messages[-1].content)
    real = made.world.mailbox.append

    def unanswered(folder: str, raw: bytes, *rest: Any, **named: Any) -> Any:
        stored = real(folder, raw, *rest, **named)
        if b"Went after all" in raw:
            raise MailboxError("the line dropped after the APPEND, before its answer")
        return stored

    monkeypatch.setattr(made.world.mailbox, "append", unanswered)
    clock[0] = START + timedelta(minutes=10)
    made.run()
    monkeypatch.undo()
    asyncio.run(recover(made.world))
    made.run()
    assert [s for s in made.subjects("INBOX") if "Went after all" in s] == ["[mentor-agent] Went after all: only one"]


def test_dragged_to_sent_she_is_not_told_to_delete_a_copy_that_is_not_there(
    hourly: tuple[Pass, list[datetime]],  # noqa: F811
) -> None:
    made, clock = hourly
    made.server.put(OUTBOX, mail("only one"))
    made.smtp.drop_after_data()
    made.run()
    clock[0] = START + timedelta(minutes=10)
    made.box.move("Needs attention", _uid(made, "Needs attention", "only one"), SENT)  # she: "it went"
    made.run()
    (notice,) = [raw for raw in made.server.messages("INBOX").values() if b"Went after all" in raw]
    assert b"can be deleted" not in notice and b"will not send it" in notice


# -- the fourth hostile round ------------------------------------------------------------------------------------


def test_a_stop_between_the_told_marks_of_one_notice_does_not_tell_it_twice(
    tmp_path: Path, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    made, clock = _digest_in_doubt_on_day_two(tmp_path, smtp_server)
    try:
        for _ in range(3):
            made.run()
        made.server.put(SENT, made.smtp.messages[-1].content)
        clock[0] = START + timedelta(days=1, minutes=10)
        ledger = made.world.ledger
        real = ledger.log
        marks = [0]

        def log(event: str, **named: Any) -> None:
            if event == TOLD:
                marks[0] += 1
                if marks[0] == 2:
                    raise Crash("killed between two rows' told marks")
            real(event, **named)

        monkeypatch.setattr(ledger, "log", log)
        with pytest.raises(Crash):
            made.run()
        monkeypatch.undo()
        made.seen = Seen()
        asyncio.run(recover(made.world))
        made.run()
        assert len([s for s in made.subjects("INBOX") if "Went after all" in s]) == 1
    finally:
        made.world.ledger.close()


def test_a_member_in_doubt_again_is_told_with_the_digest_it_went_in(
    digest_day_two: tuple[Pass, list[datetime]],
) -> None:
    made, clock = digest_day_two
    first_digest = _in_doubt_again(made, clock, ("B",))  # B alone, in doubt again
    clock[0] = START + timedelta(days=2, minutes=5)
    made.server.put(SENT, first_digest)
    made.run()
    made.run()
    told = [s for s in made.subjects("INBOX") if "Went after all" in s or "Not sent again" in s]
    assert len(told) == 1, told
    days = [START + timedelta(days=n) for n in range(3)]
    assert sorted(_sent_times(made)) == days, "A; the digest; B's second hand-over, each once"


def _went_after_all_notice(made: Pass) -> str:
    """The one "Went after all" notice's subject and text, decoded, on one line."""
    (text,) = [t for t in notice_texts(made) if "Went after all" in t]
    return " ".join(text.split())


def test_in_doubt_twice_she_is_told_her_mentor_may_have_it_twice(hourly: tuple[Pass, list[datetime]]) -> None:  # noqa: F811
    """Both hand-overs in doubt, then a copy in Sent: it proves one went, not that the other did not."""
    made, clock = hourly
    first = _moved_back_and_held(made, clock)
    clock[0] = START + timedelta(hours=1, minutes=5)
    made.smtp.drop_after_data()  # the second try, in doubt too
    made.run()
    made.run()
    clock[0] = START + timedelta(hours=1, minutes=20)
    made.server.put(SENT, first)
    made.run()
    text = _went_after_all_notice(made)
    assert "handed to the mail server 2 times" in text and "more than once" in text, text


def test_in_doubt_once_the_notice_says_nothing_of_twice(hourly: tuple[Pass, list[datetime]]) -> None:  # noqa: F811
    made, clock = hourly
    made.server.put(OUTBOX, mail("only one"))
    made.smtp.drop_after_data()
    made.run()
    first = made.smtp.messages[-1].content
    clock[0] = START + timedelta(minutes=10)
    made.server.put(SENT, first)
    made.run()
    text = _went_after_all_notice(made)
    assert "did reach the mail server" in text and "more than once" not in text, text
