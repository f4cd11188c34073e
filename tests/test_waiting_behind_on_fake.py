"""A backlog to one mentor: what waits behind the message going now leaves the Outbox in the same pass.

The pass that sends a mentor's first message puts the ones waiting behind it in Scheduled while it sends (planned as
if it went at once); the student is told in the next pass, once, with the times planned from the real send. A send
that fails only makes the next pass plan again. (On the in-memory mailbox and the real aiosmtpd server.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from agent.mail.session import Login, MailboxError
from agent.reconcile.intake import know_mentors
from agent.reconcile.recovery import recover
from agent.rules.policy import PolicyBook, load_policies
from agent.store.ledger import CANCELLED, DONE, SCHEDULED
from tests.agent_process import MENTOR, OUTBOX, policy_text
from tests.fakes.memory_mailbox import MemoryMailbox
from tests.servers.smtp import SmtpServer
from tests.test_in_doubt_counts_on_fake import START
from tests.test_passes_on_fake import Pass, mail


@pytest.fixture
def hourly(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Pass]:
    made = Pass(tmp_path, smtp_server, policy_text(min_gap="1h"))
    try:
        yield made
    finally:
        made.world.ledger.close()


def notices(made: Pass) -> list[str]:
    return [subject for subject in made.subjects("INBOX") if "Scheduled" in subject]


def test_the_messages_behind_the_first_leave_the_outbox_with_it_and_she_is_told_once(hourly: Pass) -> None:
    for n in range(4):
        hourly.server.put(OUTBOX, mail(f"backlog {n}"))
    hourly.run()
    assert hourly.received() == ["backlog 0"]
    assert hourly.subjects(OUTBOX) == [], "nothing waits in the Outbox for a second pass"
    assert sorted(hourly.subjects("Scheduled")) == ["backlog 1", "backlog 2", "backlog 3"]
    assert notices(hourly) == [], "told in the next pass, with the real send's times"
    hourly.run()
    hourly.run()  # and never again while nothing changes
    assert len(notices(hourly)) == 1, hourly.subjects("INBOX")
    ledger = hourly.world.ledger
    (sent,) = ledger.in_states(DONE)
    assert sent.sent_at is not None
    due = {row.subject: row.due for row in ledger.in_states(SCHEDULED)}
    assert due == {f"backlog {n}": sent.sent_at + timedelta(hours=n) for n in (1, 2, 3)}
    assert hourly.received() == ["backlog 0"]


def test_a_first_message_refused_leaves_the_others_for_the_next_pass(hourly: Pass) -> None:
    hourly.smtp.refuse(MENTOR, "550 5.1.1 no such user", times=1)
    for n in range(3):
        hourly.server.put(OUTBOX, mail(f"backlog {n}"))
    hourly.run()
    assert hourly.received() == []
    assert hourly.subjects("Scheduled") == [], "placed only once her first went: the plan did not stand"
    hourly.run()  # the plan without the refused one: the next is due at once
    assert hourly.received() == ["backlog 1"]
    hourly.run()
    assert hourly.received() == ["backlog 1"]
    assert hourly.subjects("Scheduled") == ["backlog 2"]
    (sent,) = hourly.world.ledger.in_states(DONE)
    (waiting,) = hourly.world.ledger.in_states(SCHEDULED)
    assert sent.sent_at is not None and waiting.due == sent.sent_at + timedelta(hours=1)
    assert any("backlog 2" in subject for subject in notices(hourly)), hourly.subjects("INBOX")


# -- the hostile round on the placing (each failed before its fix) ----------------------------------------------------


def states(made: Pass) -> dict[str, tuple[str, str | None, str]]:
    every = ("new", "scheduled", "claimed", "queued", "sending", "accepted", "done", "cancelled", "attention")
    return {row.subject: (row.state, row.folder, row.told) for row in made.world.ledger.in_states(*every)}


def move_fails(made: Pass, into: str, *, done: bool) -> None:
    """The next MOVE into ``into`` breaks the connection: before Dovecot moved (``done=False``) or after, with
    its answer lost (``done=True``)."""
    box = made.box
    original = box.move_many
    left = [1]

    def move_many(folder: str, uids: Sequence[int], target: str, *, claim: bool = True) -> dict[int, int | None]:
        if target == into and left[0]:
            left[0] = 0
            if done:
                original(folder, uids, target, claim=claim)
            box.connected = False
            raise MailboxError("connection dropped (test)")
        return original(folder, uids, target, claim=claim)

    box.move_many = move_many  # type: ignore[method-assign]


def run_and_reconnect(made: Pass) -> None:
    with contextlib.suppress(MailboxError):
        made.run()
    made.box.connected = True
    asyncio.run(recover(made.world))


@pytest.mark.parametrize("done", [False, True], ids=["refused", "answer lost"])
def test_a_placing_move_that_breaks_loses_nothing_and_paces_her_first_alone(hourly: Pass, done: bool) -> None:
    for n in range(12):
        hourly.server.put(OUTBOX, mail(f"friend {n}", to="friend@example.org"))
    for n in range(4):
        hourly.server.put(OUTBOX, mail(f"backlog {n}"))
    move_fails(hourly, "Scheduled", done=done)
    for _ in range(4):
        run_and_reconnect(hourly)
    got = hourly.received()
    assert len(got) == len(set(got)), "twice"
    assert sorted(s for s in got if s.startswith("friend")) == sorted(f"friend {n}" for n in range(12))
    assert [s for s in got if s.startswith("backlog")] == ["backlog 0"], "min_gap 1h: her first alone"
    found = states(hourly)
    for n in (1, 2, 3):
        assert found[f"backlog {n}"][:2] == (SCHEDULED, "Scheduled"), found
    assert sorted(hourly.subjects("Scheduled")) == ["backlog 1", "backlog 2", "backlog 3"]
    assert len(notices(hourly)) == 1, hourly.subjects("INBOX")


def test_a_message_left_claimed_by_a_stop_is_paced_before_her_next(hourly: Pass) -> None:
    for n in range(3):
        hourly.server.put(OUTBOX, mail(f"backlog {n}"))
    box = hourly.box
    original = box.move_many

    def move_many(folder: str, uids: Sequence[int], target: str, *, claim: bool = True) -> dict[int, int | None]:
        moved = original(folder, uids, target, claim=claim)
        if target == "Sending":
            hourly.world.stopping.set()  # SIGTERM right after the claim: her first stays claimed
        return moved

    box.move_many = move_many  # type: ignore[method-assign]
    hourly.run()
    box.move_many = original  # type: ignore[method-assign]
    hourly.world.stopping.clear()  # the restart
    asyncio.run(recover(hourly.world))
    for _ in range(3):
        hourly.run()
    assert hourly.received() == ["backlog 0"]
    assert sorted(hourly.subjects("Scheduled")) == ["backlog 1", "backlog 2"]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_nothing_is_placed_while_the_smtp_login_is_refused(tmp_path: Path) -> None:
    server = SmtpServer(auth=("sam", "right"))
    server.start()
    made = Pass(tmp_path, server, policy_text(min_gap="1h"))
    try:
        made.world.smtp_login = lambda: Login("sam", "wrong")
        for n in range(4):
            made.server.put(OUTBOX, mail(f"backlog {n}"))
        for _ in range(3):
            made.run()
        # Her first was claimed and put back in Scheduled: the notice about the refused login covers it.
        untold = [
            s
            for s, (_, folder, told) in states(made).items()
            if folder == "Scheduled" and not told and s != "backlog 0"
        ]
        assert not untold, f"in Scheduled, never told: {untold}; INBOX: {made.subjects('INBOX')}"
        assert made.received() == []
    finally:
        made.world.ledger.close()
        server.stop()


def test_nothing_is_placed_untold_while_the_providers_daily_limit_holds_her_first(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    made = Pass(tmp_path, smtp_server, policy_text())
    try:
        smtp = made.world.settings.smtp.model_copy(update={"max_per_day": 1})
        made.world.settings = made.world.settings.model_copy(update={"smtp": smtp})
        made.server.put(OUTBOX, mail("friend", to="friend@example.org"))
        made.run()  # the provider's one a day is spent
        for n in range(3):
            made.server.put(OUTBOX, mail(f"backlog {n}"))
        for _ in range(3):
            made.run()
        untold = [s for s, (_, folder, told) in states(made).items() if folder == "Scheduled" and not told]
        assert not untold, f"in Scheduled, never told: {untold}; INBOX: {made.subjects('INBOX')}"
        assert made.received() == ["friend"]
    finally:
        made.world.ledger.close()


def test_a_notice_that_could_not_be_appended_is_appended_at_the_next_pass(hourly: Pass) -> None:
    for n in range(4):
        hourly.server.put(OUTBOX, mail(f"backlog {n}"))
    hourly.run()
    hourly.server.fail("append", "INBOX", times=1)
    for _ in range(3):
        run_and_reconnect(hourly)
    assert len(notices(hourly)) == 1, hourly.subjects("INBOX")


def test_killed_after_the_placing_move_before_its_ledger_update_the_placed_messages_still_go(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """Found by the kill -9 soak: the placing MOVE into Scheduled done on the server, the daemon killed before
    the ledger recorded where they went (the rows still said Outbox). Once due, the next life claimed them from
    the Outbox, found nothing there, and cancelled them as "gone": they stayed in Scheduled, never sent, and she
    was told nothing."""
    clock = [START]
    made = Pass(tmp_path, smtp_server, policy_text(min_gap="1h"))
    made.world.clock = lambda: clock[0]
    try:
        outbox_uids = [made.server.put(OUTBOX, mail(f"backlog {n}")) for n in range(3)]
        made.run()
        assert made.received() == ["backlog 0"]
        assert sorted(made.subjects("Scheduled")) == ["backlog 1", "backlog 2"]
        ledger = made.world.ledger
        with ledger.transaction():  # as a kill between the MOVE and its ledger update leaves them
            for row, uid in zip(
                sorted(ledger.in_states(SCHEDULED), key=lambda r: r.subject), outbox_uids[1:], strict=True
            ):
                ledger.update(row.key, folder=OUTBOX, uid=uid)
        clock[0] = START + timedelta(hours=3)
        for _ in range(3):
            made.run()
        assert made.received() == ["backlog 0", "backlog 1"], "min_gap 1h: one now"
        clock[0] = START + timedelta(hours=5)
        for _ in range(3):
            made.run()
        assert made.received() == ["backlog 0", "backlog 1", "backlog 2"]
        assert made.subjects("Scheduled") == [] and made.subjects(OUTBOX) == []
    finally:
        made.world.ledger.close()


KIM = "jkim@clinic.example.org"


def two_mentors(tmp_path: Path, smtp_server: SmtpServer, kim_rules: str) -> tuple[Pass, list[datetime]]:
    """Dr. Rivera at one a day and Dr. Kim (``KIM``) under ``kim_rules``, on a clock the test moves (from START)."""
    clock = [START]
    made = Pass(tmp_path, smtp_server, policy_text(max_per_day=1))
    text = kim_rules.replace("Dr. Ana Rivera", "Dr. Jae Kim").replace(MENTOR, KIM)
    (made.settings.policies_dir / "kim.toml").write_text(text)
    made.world.book = PolicyBook(load_policies(made.settings.policies_dir))
    know_mentors(made.world)
    made.world.clock = lambda: clock[0]
    return made, clock


def firsts_gone(made: Pass, clock: list[datetime]) -> str:
    """Each mentor got a first message (one a day each); ten minutes later. The Message-ID the tests' namesakes share."""
    made.server.put(OUTBOX, mail("rivera first"))
    made.server.put(OUTBOX, mail("kim first", to=KIM))
    made.run()
    clock[0] = START + timedelta(minutes=10)
    return "<same@med.example.edu>"


def test_a_placed_message_found_by_its_message_id_is_claimed_only_if_it_is_the_same_message(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """Found by the second hostile round: A (to Dr. Kim) and B (to Dr. Rivera, one a day) share a Message-ID and both
    wait in Scheduled; a kill left A's row in the Outbox; she cancels A (Scheduled to Drafts). A's claim found the
    one message with that Message-ID in Scheduled, B, and sent B's text to Dr. Kim, early; A was recorded as sent."""
    made, clock = two_mentors(tmp_path, smtp_server, policy_text(min_gap="1h"))
    kim = KIM
    try:
        made.server.put(OUTBOX, mail("rivera today"))
        made.server.put(OUTBOX, mail("kim first", to=kim))
        made.run()
        made.run()
        same = "<same@med.example.edu>"
        a_uid = made.server.put(OUTBOX, mail("A to Kim", to=kim, message_id=same))
        made.server.put(OUTBOX, mail("B to Rivera", message_id=same))
        clock[0] = START + timedelta(minutes=5)
        made.run()
        ledger = made.world.ledger
        rows = {row.subject: row for row in ledger.in_states(SCHEDULED)}
        assert sorted(made.subjects("Scheduled")) == ["A to Kim", "B to Rivera"]
        with ledger.transaction():  # a kill between the placing MOVE and its ledger update
            ledger.update(rows["A to Kim"].key, folder=OUTBOX, uid=a_uid)
        held = made.server.messages("Scheduled")
        uid = next(u for u, raw in held.items() if b"Subject: A to Kim" in raw)
        student = MemoryMailbox(made.server, agent_id="student")  # her mail program
        student.ensure_folder("Drafts")
        student.move("Scheduled", uid, "Drafts")  # she cancels A
        clock[0] = START + timedelta(minutes=70)
        for _ in range(3):
            made.run()
        for received in smtp_server.messages:
            assert kim not in received.rcpt_tos or b"Subject: B to Rivera" not in received.content, "misdirected"
        assert "B to Rivera" not in made.received()[2:], "Rivera: one a day, B is due tomorrow"
        assert ledger.get(rows["A to Kim"].key).state != DONE, "A was never sent"  # type: ignore[union-attr]
        assert made.subjects("Scheduled") == ["B to Rivera"]
    finally:
        made.world.ledger.close()


def test_one_of_two_held_with_one_message_id_cancelled_leaves_the_other_its_own(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """Found by the second hostile round, without any kill: A and B share a Message-ID (issue 20) and wait in
    Scheduled; she cancels A (Scheduled to Drafts). Looking for A where it might have been renumbered found B, the
    one message left with that Message-ID: A's row took B's place, was sent as done with B's text, and B was
    recorded as cancelled by her."""
    clock = [START]
    made = Pass(tmp_path, smtp_server, policy_text(min_gap="1h"))
    made.world.clock = lambda: clock[0]
    try:
        made.server.put(OUTBOX, mail("backlog 0"))
        made.server.put(OUTBOX, mail("A cancel me", message_id="<same@med.example.edu>"))
        made.server.put(OUTBOX, mail("B later", message_id="<same@med.example.edu>"))
        made.run()
        made.run()
        assert sorted(made.subjects("Scheduled")) == ["A cancel me", "B later"]
        held = made.server.messages("Scheduled")
        uid = next(u for u, raw in held.items() if b"Subject: A cancel me" in raw)
        student = MemoryMailbox(made.server, agent_id="student")
        student.ensure_folder("Drafts")
        student.move("Scheduled", uid, "Drafts")
        clock[0] = START + timedelta(hours=3)
        for _ in range(3):
            made.run()
        assert made.received() == ["backlog 0", "B later"]
        states = {
            row.subject: row.state
            for row in made.world.ledger.get_many(
                [row.key for row in made.world.ledger.in_states(DONE, CANCELLED)]
            ).values()
        }
        assert states == {"backlog 0": DONE, "A cancel me": CANCELLED, "B later": DONE}
    finally:
        made.world.ledger.close()


@pytest.mark.parametrize("first", ["rivera", "kim"])
@pytest.mark.parametrize("cancel", ["rivera", "kim"])
def test_namesakes_to_two_mentors_both_left_in_the_outbox_by_a_kill_never_swap(
    tmp_path: Path, smtp_server: SmtpServer, cancel: str, first: str
) -> None:
    """Found by the fourth hostile round: two held messages share a Message-ID, one to Dr. Rivera and one to Dr. Kim;
    a kill leaves both rows saying Outbox; she deletes one from Scheduled. The other's copy, the only one left with
    that Message-ID, was taken for the cancelled row's: it went to both mentors."""
    made, clock = two_mentors(tmp_path, smtp_server, policy_text(max_per_day=1))
    kim = KIM
    try:
        same = firsts_gone(made, clock)
        namesakes = {
            "rivera": mail("for RIVERA only", message_id=same),
            "kim": mail("for KIM only", to=kim, message_id=same),
        }
        order = [first, "kim" if first == "rivera" else "rivera"]
        out = {f"for {who.upper()} only": made.server.put(OUTBOX, namesakes[who]) for who in order}
        made.run()
        ledger = made.world.ledger
        with ledger.transaction():  # the kill: the placing MOVE done, no row told where
            for row in ledger.in_states(SCHEDULED):
                ledger.update(row.key, folder=OUTBOX, uid=out[row.subject])
        held = {
            raw.split(b"Subject: ")[1].split(b"\r\n")[0]: uid for uid, raw in made.server.messages("Scheduled").items()
        }
        MemoryMailbox(made.server, agent_id="student").delete("Scheduled", held[f"for {cancel.upper()} only".encode()])
        for day in (0, 1, 2):
            clock[0] = START + timedelta(days=day, hours=2 if day else 0, minutes=20)
            for _ in range(3):
                made.run()
        for received in smtp_server.messages:
            to_kim = b"Subject: for KIM only" in received.content or b"Subject: kim first" in received.content
            assert received.rcpt_tos == ((kim,) if to_kim else (MENTOR,)), received
        assert not [r for r in smtp_server.messages if f"for {cancel.upper()} only".encode() in r.content]
    finally:
        made.world.ledger.close()
