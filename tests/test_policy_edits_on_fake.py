"""Policy files edited while mail waits, reloaded as the daemon reloads them (Daemon.reload_policies on the
in-memory mailbox and the real aiosmtpd server). What a hostile hunt found:

- her file rewritten for another mentor (no file names her any more) sent her held mail at once, under the other
  mentor's rules, without a word: the file's name still matched, and a file of that name paced her;
- a file removed while her mail waited was told of twice: when it went, and again after a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.daemon.service import Daemon
from agent.rules.policy import PolicyBook, load_policies
from tests.agent_process import MENTOR, OUTBOX, closed_window, policy_text
from tests.servers.smtp import SmtpServer
from tests.test_passes_on_fake import Pass, mail

LEE = "lee@clinic.example.org"


class Live:
    """A Pass whose policies are reloaded by the daemon's own code."""

    def __init__(self, tmp_path: Path, smtp: SmtpServer, policy: str) -> None:
        self.made = Pass(tmp_path, smtp, policy)
        self.daemon = Daemon(self.made.settings)
        self.folder = self.made.settings.policies_dir

    def reload(self) -> None:
        asyncio.run(self.daemon.reload_policies(self.made.world))

    def run(self, passes: int = 1) -> None:
        for _ in range(passes):
            self.made.run()
            self.daemon.let_go_of_policies(self.made.world)

    def restart(self) -> None:
        """A new start: the policies as the folder has them (nothing held from before)."""
        self.daemon.ledger.close()
        self.daemon = Daemon(self.made.settings)
        self.made.world.book = PolicyBook(load_policies(self.folder))

    def held_notices(self) -> list[str]:
        return [s for s in self.made.subjects("INBOX") if "held" in s.lower() and "Scheduled:" not in s]


@pytest.fixture
def live(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Live]:
    made = Live(tmp_path, smtp_server, policy_text(windows=closed_window()))
    try:
        yield made
    finally:
        made.made.world.ledger.close()
        made.daemon.ledger.close()


def test_her_file_rewritten_for_another_mentor_holds_her_mail_and_tells_her_once(live: Live) -> None:
    live.made.server.put(OUTBOX, mail("held for Dr. Rivera"))
    live.run()
    assert live.made.subjects("Scheduled") == ["held for Dr. Rivera"]
    lee = policy_text().replace("Dr. Ana Rivera", "Dr. Min Lee").replace(MENTOR, LEE)  # open all week
    (live.folder / "rivera.toml").write_text(lee)
    live.reload()
    live.made.server.put(OUTBOX, mail("to Dr. Lee", to=LEE))
    live.run(3)
    assert live.made.received() == ["to Dr. Lee"], "her held mail never goes under Dr. Lee's rules"
    assert live.made.subjects("Scheduled") == ["held for Dr. Rivera"]
    assert len(live.held_notices()) == 1, live.held_notices()


def test_her_address_edited_out_of_her_file_holds_what_waits_for_that_address(live: Live) -> None:
    live.made.server.put(OUTBOX, mail("held for her old address"))
    live.run()
    moved = policy_text().replace(MENTOR, "ana.rivera@newhospital.example.org")  # open all week, another address
    (live.folder / "rivera.toml").write_text(moved)
    live.reload()
    live.run(3)
    assert live.made.received() == []
    assert len(live.held_notices()) == 1


def test_a_file_removed_while_her_mail_waits_is_told_once_across_a_restart(live: Live) -> None:
    live.made.server.put(OUTBOX, mail("held for Dr. Rivera"))
    live.run()
    (live.folder / "rivera.toml").unlink()
    live.reload()
    live.run(2)
    assert [s for s in live.held_notices() if "Policy file removed" in s] and len(live.held_notices()) == 1
    live.restart()
    live.run(2)
    assert len(live.held_notices()) == 1, live.held_notices()
    assert live.made.received() == []


# -- a second hostile round ---------------------------------------------------------------------------------------
def test_her_file_rewritten_for_someone_her_message_copies_still_holds_it(live: Live) -> None:
    """To Dr. Rivera, Cc lee@ (no mentor when it came): the file rewritten for Dr. Lee names a recipient, not her."""
    live.made.server.put(OUTBOX, mail("to Dr. Rivera, Cc Dr. Lee", Cc=LEE))
    live.run()
    lee = policy_text().replace("Dr. Ana Rivera", "Dr. Min Lee").replace(MENTOR, LEE)  # open all week
    (live.folder / "rivera.toml").write_text(lee)
    live.reload()
    live.run(3)
    assert live.made.received() == []
    assert len(live.held_notices()) == 1


def test_removed_with_a_copy_to_another_mentor_it_stays_held_after_a_restart(live: Live) -> None:
    live.made.server.put(OUTBOX, mail("to Dr. Rivera, Cc Dr. Lee", Cc=LEE))
    live.run()
    (live.folder / "lee.toml").write_text(policy_text().replace("Dr. Ana Rivera", "Dr. Min Lee").replace(MENTOR, LEE))
    live.reload()
    live.run(2)
    (live.folder / "rivera.toml").unlink()  # told: nothing goes to Dr. Rivera because a file went missing
    live.reload()
    live.run(2)
    live.restart()
    live.run(3)
    assert live.made.received() == [], "it went after a restart, under Dr. Lee's rules"


@pytest.mark.parametrize("later", ["removed while stopped", "her address edited out"])
def test_removed_put_back_then_lost_again_she_is_told_again(live: Live, later: str) -> None:
    live.made.server.put(OUTBOX, mail("waits"))
    live.run()
    path = live.folder / "rivera.toml"
    good = path.read_text()
    path.unlink()
    live.reload()
    live.run(2)
    path.write_text(good)  # put back: paced again
    live.reload()
    live.run(2)
    if later == "removed while stopped":
        path.unlink()
        live.restart()
    else:
        path.write_text(good.replace(MENTOR, "ana.rivera@newhospital.example.org"))
        live.reload()
    live.run(2)
    assert live.made.received() == []
    assert len(live.held_notices()) == 2, live.held_notices()


def test_a_broken_file_removed_and_put_back_broken_is_told_again(live: Live) -> None:
    path = live.folder / "rivera.toml"
    broken = path.read_text().replace("max_per_day", "max_per_dya")
    path.write_text(broken)
    live.reload()
    path.unlink()
    live.reload()
    path.write_text(broken)
    live.reload()
    told = [s for s in live.made.subjects("INBOX") if "Policy not taken in" in s]
    assert len(told) == 2, told


# -- a third hostile round ----------------------------------------------------------------------------------------
SECOND = "ana.rivera@newhospital.example.org"


def test_her_questions_for_an_agenda_are_never_proposed_to_the_mentor_her_file_now_names(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    from agent.reconcile import agenda_desk
    from tests.test_meeting_desk import MEETINGS

    agenda = policy_text(max_unanswered=1, over_limit="agenda") + MEETINGS.format(
        strategy="sequential", proposals=2, timeout="3d"
    )
    live = Live(tmp_path, smtp_server, agenda)
    try:
        live.made.server.put(OUTBOX, mail("first question"))
        live.run()
        for subject in ("Which elective first?", "Poster feedback?"):
            live.made.server.put(OUTBOX, mail(subject))
        live.run()  # held for her next meeting's agenda
        (live.folder / "rivera.toml").write_text(agenda.replace("Dr. Ana Rivera", "Dr. Min Lee").replace(MENTOR, LEE))
        live.reload()
        for _ in range(3):
            asyncio.run(agenda_desk.pass_once(live.made.world))
            live.run()
        sent = [m for m in smtp_server.messages if LEE in m.rcpt_tos]
        waits = [r for f in ("Scheduled", OUTBOX) for r in live.made.server.messages(f).values() if LEE.encode() in r]
        assert sent == [] and waits == [], "her questions went to Dr. Lee in an invitation"
    finally:
        live.made.world.ledger.close()
        live.daemon.ledger.close()


def test_a_message_edited_to_her_second_address_follows_that_address(live: Live) -> None:
    path = live.folder / "rivera.toml"
    both = path.read_text().replace(f'["{MENTOR}"]', f'["{MENTOR}", "{SECOND}"]')
    path.write_text(both)
    live.reload()
    live.made.server.put(OUTBOX, mail("edited", message_id="<edited@med.example.edu>"))
    live.run(2)
    (uid,) = live.made.server.messages("Scheduled")
    live.made.box.delete("Scheduled", uid)  # she edits it there: To her second address
    live.made.server.put("Scheduled", mail("edited", to=SECOND, message_id="<edited@med.example.edu>"))
    live.run(2)
    path.write_text(both.replace(f'"{MENTOR}", ', ""))  # her first address edited out: the message is to the second
    live.reload()
    live.run(2)
    assert live.made.received() == [] and live.held_notices() == []


def test_a_broken_file_put_back_after_its_removal_is_said_not_to_be_in_force(live: Live) -> None:
    path = live.folder / "rivera.toml"
    broken = path.read_text().replace("max_per_day", "max_per_dya")
    path.unlink()
    live.reload()
    path.write_text(broken)
    live.reload()
    told = [m for m in live.made.server.messages("INBOX").values() if b"Policy not taken in" in m]
    assert len(told) == 1 and b"not in force" in told[0].replace(b"=\r\n", b"") and b"last good" not in told[0]
