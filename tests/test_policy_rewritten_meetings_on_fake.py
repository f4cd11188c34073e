"""Her policy file rewritten for another mentor while meetings are under way (a fourth hostile round): the meeting
and agenda desks went by the file's name, so the mentor the file names now was mixed into hers. Her questions went
into the new mentor's invitation (and the new mentor's into her meeting's), her held invitation went at once when
one question was deleted, and the new mentor's ACCEPTED was recorded as hers. A file that names none of the
addresses it named is another mentor: what the one before left under its name is retired (Ledger.bind).
(The in-memory mailbox, the real aiosmtpd server, the daemon's own reload between passes.)"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from agent.daemon.service import Daemon
from agent.reconcile import agenda_desk, meeting_desk
from agent.reconcile.attention import tell_owed
from agent.reconcile.history import scan_replies, scan_sent
from agent.reconcile.intake import carry_out, follow_scheduled, take_in_outbox
from agent.rules.envelope import parse_envelope
from tests.agent_process import MENTOR, OUTBOX, policy_text
from tests.servers.smtp import SmtpServer
from tests.test_meeting_desk import MEETINGS, event_of, gmail, ics
from tests.test_meetings_on_fake import Desk
from tests.test_passes_on_fake import mail

LEE = "lee@clinic.example.org"
AGENDA = policy_text(max_unanswered=1, over_limit="agenda") + MEETINGS.format(
    strategy="sequential", proposals=2, timeout="3d"
)
FOR_LEE = AGENDA.replace("Dr. Ana Rivera", "Dr. Min Lee").replace(MENTOR, LEE)


class Live(Desk):
    """A Desk whose passes run the agenda desk too, with the daemon's own policy reload."""

    def __init__(self, tmp_path: Path, smtp: SmtpServer) -> None:
        super().__init__(tmp_path, smtp, AGENDA)
        self.daemon = Daemon(self.settings)

    def rewrite_for_lee(self) -> None:
        (self.settings.policies_dir / "rivera.toml").write_text(FOR_LEE)
        asyncio.run(self.daemon.reload_policies(self.world))

    def passes(self, count: int) -> None:
        async def one() -> None:
            await scan_replies(self.world, self.seen)
            await scan_sent(self.world, self.seen)
            await take_in_outbox(self.world)
            await follow_scheduled(self.world)
            await carry_out(self.world)
            await agenda_desk.pass_once(self.world)
            await meeting_desk.pass_once(self.world)
            await tell_owed(self.world)

        for _ in range(count):
            asyncio.run(one())
            self.daemon.let_go_of_policies(self.world)

    def to(self, address: str) -> list[bytes]:
        return [m.content for m in self.smtp.messages if address in m.rcpt_tos]


@pytest.fixture
def live(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Live]:
    made = Live(tmp_path, smtp_server)
    try:
        yield made
    finally:
        made.close()
        made.daemon.ledger.close()


def offered(live: Live) -> tuple[str, datetime, datetime]:
    assert live.propose(topic="Residency").offered
    live.passes(4)
    event = event_of(live.smtp.messages[0].content)
    return str(event["UID"]), event.decoded("DTSTART"), event.decoded("DTEND")


def test_the_new_mentors_accept_of_her_invitation_is_not_hers(live: Live) -> None:
    uid, start, end = offered(live)
    live.rewrite_for_lee()
    live.passes(1)
    accept = ics(uid, "ACCEPTED", attendee=LEE, start=start, end=end)
    live.server.put("INBOX", gmail(accept, sender=f"Min Lee <{LEE}>"))
    live.passes(3)
    assert live.statuses()[uid] != "accepted"


def test_a_question_to_the_new_mentor_never_rides_on_her_agreed_meeting(live: Live) -> None:
    uid, start, end = offered(live)
    live.reply(uid, "ACCEPTED", start=start, end=end)
    live.passes(3)
    assert live.statuses()[uid] == "accepted"
    sent = len(live.to(MENTOR))
    live.rewrite_for_lee()
    live.server.put(OUTBOX, mail("[agenda] Question for Dr. Lee about my poster", to=LEE))
    live.passes(3)
    live.now = start - timedelta(hours=23)  # her meeting's agenda would be sent now
    live.passes(5)
    assert not [m for m in live.to(MENTOR)[sent:] if b"poster" in m], "Dr. Lee's question went to her"


def test_deleting_one_of_her_held_questions_does_not_send_her_held_invitation(live: Live) -> None:
    live.server.put(OUTBOX, mail("first question"))
    live.passes(2)
    live.server.put(OUTBOX, mail("Which elective first?"))
    live.server.put(OUTBOX, mail("Poster feedback?"))
    live.passes(4)
    assert any(s.startswith("Invitation") for s in live.subjects("Scheduled"))
    live.rewrite_for_lee()
    live.passes(2)
    held = next(
        u for u, r in live.server.messages("Scheduled").items() if parse_envelope(r).subject == "Poster feedback?"
    )
    live.box.delete("Scheduled", held)
    live.passes(5)
    assert len(live.smtp.messages) == 1, "only the first question went"


# -- a fifth hostile round: what was retired is hers again when her file names her again; a move is no rewrite ----
def test_rewritten_for_another_and_back_her_offer_is_hers_again(live: Live) -> None:
    offered(live)
    live.rewrite_for_lee()
    live.passes(2)
    (live.settings.policies_dir / "rivera.toml").write_text(AGENDA)  # her file back, word for word
    asyncio.run(live.daemon.reload_policies(live.world))
    live.passes(2)
    assert asyncio.run(meeting_desk.call_off(live.world, live.world.book.by_id["rivera"])), "withdraw finds it"


def test_her_decline_from_her_new_address_counts_when_she_moved(live: Live) -> None:
    """The same mentor at a new address (she moved hospitals) is her: nothing of hers is retired."""
    uid, start, end = offered(live)
    live.reply(uid, "ACCEPTED", start=start, end=end)
    live.passes(3)
    new = "ana.rivera@newhospital.example.org"
    (live.settings.policies_dir / "rivera.toml").write_text(AGENDA.replace(MENTOR, new))
    asyncio.run(live.daemon.reload_policies(live.world))
    live.passes(2)
    decline = ics(uid, "DECLINED", attendee=new, start=start, end=end)
    live.server.put("INBOX", gmail(decline, sender=f"Ana Rivera <{new}>"))
    live.passes(3)
    assert live.statuses()[uid] == "declined"
