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
