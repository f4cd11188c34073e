"""Making the agreement end to end: `agree` → the proposal in Drafts (or the Outbox) → sent by the real daemon
over aiosmtpd → the mentor's answer in Dovecot's INBOX → a notice → `agree --apply` → the policy file updated
with its comments intact. And the review notice, at its time on a virtual clock."""

from __future__ import annotations

import asyncio
import threading
import time
import tomllib
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from agent.cli.main import main
from agent.config.settings import load_settings
from agent.demo.week import DemoDaemon, VirtualClock
from agent.rules.agreement import SUBJECT
from agent.store.agreements import Agreements
from agent.store.ledger import Ledger
from tests.agent_process import MENTOR, OUTBOX, STUDENT, Agent, agent, eventually, parse, policy_text

__all__ = ["agent"]
pytestmark = pytest.mark.servers

HEADER = "# The agreement with Dr. Ana Rivera, as made at our first meeting.\n"
COMMENTED = HEADER + policy_text().replace(
    "max_per_week = 100\n", "max_per_week = 100                # per ISO week, her zone\n"
).replace('send_windows = ["Mon-Sun 00:00-24:00"]\n', 'send_windows = ["Mon-Sun 00:00-24:00"]  # her local time\n')


def cli(agent: Agent, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*args, "--config", str(agent.config)], env={"NO_COLOR": "1"})
    return result.exit_code, result.stdout + result.stderr


def answer(agent: Agent, proposal_id: str, body: str, sender: str = MENTOR, results: str = "") -> None:
    message = EmailMessage()
    if results:
        message["Authentication-Results"] = f"mx.med.example.edu; {results}"
    message["From"] = f"Dr. Ana Rivera <{sender}>"
    message["To"] = f"Sam Patel <{STUDENT}>"
    message["Subject"] = f"Re: {SUBJECT}"
    message["Date"] = format_datetime(datetime.now().astimezone())
    message["Message-ID"] = make_msgid(domain=sender.split("@")[1])
    message["In-Reply-To"] = proposal_id
    message["References"] = proposal_id
    message.set_content(body)
    agent.dovecot.append(agent.user, "INBOX", message.as_bytes())


def proposal_sent(agent: Agent, *, marked: bool = True) -> EmailMessage:
    # 15 s as for a notice: the drop reaches the daemon by IDLE, slower on a loaded machine (CI's six workers)
    sent = parse(agent.smtp.wait_for(1, timeout=15)[-1].content)
    assert str(sent["Subject"]) == SUBJECT and (sent["X-Mentor-Agent"] == "agreement") == marked
    return sent


def notice(agent: Agent, starts: str) -> EmailMessage:
    def found() -> EmailMessage | None:
        return next((m for m in agent.notices() if str(m["Subject"]).startswith(f"[mentor-agent] {starts}")), None)

    return eventually(found, timeout=15)


def policy_file(agent: Agent) -> str:
    return (agent.root / "policies" / "rivera.toml").read_text(encoding="utf-8")


def test_fine_from_drafts_is_recorded_and_applied(agent: Agent) -> None:
    agent.policy(COMMENTED)
    with agent.config.open("a") as config:  # a draft moved to the Outbox waits to settle (autosaves): not 30 s here
        config.write("\n[drafts]\nsettle = 0.5\n")
    agent.start()
    code, out = cli(agent, "status")
    assert code == 0 and "not agreed yet (`mentor-agent agree rivera` proposes the standards)" in out
    code, out = cli(agent, "agree", "rivera")
    assert code == 0, out
    assert "is in Drafts" in out
    drafts = agent.folder_raw("Drafts")
    assert len(drafts) == 1 and agent.smtp.messages == []  # nothing goes before the student moves it
    uid = next(iter(drafts))
    assert "\\Draft" in {str(f) for f in agent.dovecot.flags(agent.user, "Drafts", uid)}
    with agent.dovecot.client(agent.user) as client:  # the student moves it to the Outbox
        client.select_folder("Drafts")
        client.move([uid], OUTBOX)
    sent = proposal_sent(agent)
    assert "  1. E-mails from me in a week, at most: 100" in sent.get_content()
    code, out = cli(agent, "agree", "rivera", "--apply")
    assert code == 1 and "has not answered your proposal" in out
    answer(agent, str(sent["Message-ID"]), "Fine by me, Sam.\n\nAna\n\n> 1. E-mails from me in a week, at most: 100\n")
    told = notice(agent, "Dr. Ana Rivera agreed to your standards")
    assert "agreed, as proposed" in told.get_content()
    assert "`mentor-agent agree rivera --apply`" in told.get_content()
    assert policy_file(agent) == COMMENTED  # nothing changes before the student applies it
    code, out = cli(agent, "agree", "rivera", "--apply")
    assert code == 0, out
    assert "Dr. Ana Rivera agreed to the standards as proposed." in out
    text = policy_file(agent)
    assert text.startswith(COMMENTED)  # every line and comment as it was, the agreement added at the end
    today = datetime.now(ZoneInfo("America/New_York")).date()
    assert tomllib.loads(text)["agreement"] == {"agreed_on": today, "version": 1}
    code, out = cli(agent, "status")
    assert f"agreed on {today.isoformat()}, version 1" in out
    code, out = cli(agent, "agree", "rivera", "--apply")
    assert code == 1 and "applied to" in out and "already" in out


def test_an_answer_that_cannot_be_read_asks_the_student_and_her_next_one_counts(agent: Agent) -> None:
    agent.policy(COMMENTED)
    agent.start()
    assert cli(agent, "agree", "rivera", "--send")[0] == 0
    sent = proposal_sent(agent)
    answer(agent, str(sent["Message-ID"]), "Let me think about this over the weekend.\n\n3. whenever suits\n")
    told = notice(agent, "Please read Dr. Ana Rivera's answer to your proposal").get_content()
    assert "3. When my e-mails arrive, your time: “whenever suits” names no days and hours" in told
    code, out = cli(agent, "agree", "rivera", "--apply")
    assert code == 1 and "could not be read" in out and policy_file(agent) == COMMENTED
    answer(agent, str(sent["Message-ID"]), "Sorry! Fine as it is.\n")  # "that was unclear" may be about the proposal
    notice(agent, "Dr. Ana Rivera agreed to your standards")
    assert cli(agent, "agree", "rivera", "--apply")[0] == 0
    assert tomllib.loads(policy_file(agent))["agreement"]["version"] == 1


def test_a_refusal_is_not_recorded_as_agreed_and_apply_refuses_it(agent: Agent) -> None:
    """The issue's refusal was recorded "agreed, as proposed" and --apply wrote it; then an answer in HTML only
    (as Gmail and Outlook send) was never read."""
    agent.policy(COMMENTED)
    agent.start()
    assert cli(agent, "agree", "rivera", "--send")[0] == 0
    sent = proposal_sent(agent)
    refusal = "This is not fine with me, sorry. Let us talk first."
    answer(agent, str(sent["Message-ID"]), f"{refusal}\n\nAna\n\nOn Mon, Sam Patel wrote:\n> 1. E-mails: 100\n")
    told = notice(agent, "Please read Dr. Ana Rivera's answer to your proposal").get_content()
    assert "nothing was recorded as agreed" in told and f"  > {refusal}" in told  # her words, quoted
    assert "a negation (“not”)" in told and "E-mails: 100" not in told
    ledger = Ledger(agent.root / "state" / "ledger.sqlite3")
    try:
        (proposal,) = Agreements(ledger).all()
        assert (proposal.outcome, proposal.changes) == ("unclear", {})
    finally:
        ledger.close()
    code, out = cli(agent, "agree", "rivera", "--apply")
    assert code == 1 and "could not be read" in out and policy_file(agent) == COMMENTED
    html_only = EmailMessage()
    for name in ("From", "To"):
        html_only[name] = {"From": f"Dr. Ana Rivera <{MENTOR}>", "To": f"Sam Patel <{STUDENT}>"}[name]
    html_only["Subject"], html_only["Message-ID"] = f"Re: {SUBJECT}", make_msgid(domain="hospital.example.org")
    html_only["In-Reply-To"] = html_only["References"] = str(sent["Message-ID"])
    html_only.set_content(
        '<div dir="ltr">Fine by me</div><br><div class="gmail_quote"><blockquote>1. E-mails: 100</blockquote></div>',
        subtype="html",
    )
    agent.dovecot.append(agent.user, "INBOX", html_only.as_bytes())
    assert "  > Fine by me" in notice(agent, "Dr. Ana Rivera agreed to your standards").get_content()
    assert cli(agent, "agree", "rivera", "--apply")[0] == 0


def test_changed_values_are_shown_side_by_side_then_applied(agent: Agent) -> None:
    agent.policy(COMMENTED)
    agent.start()
    code, out = cli(agent, "agree", "rivera", "--send")
    assert code == 0 and f"is in {OUTBOX}" in out
    sent = proposal_sent(agent)
    assert eventually(lambda: agent.subjects("Sent") == [SUBJECT])
    # a stranger answering in the thread changes nothing
    answer(agent, str(sent["Message-ID"]), "1. 1", sender="mallory@evil.example")
    answer(
        agent,
        str(sent["Message-ID"]),
        "Thank you, Sam, fine with two changes:\n\n1. 60\n3. Mon-Fri 08:00-18:00\n\n"
        "On Mon, Sam Patel wrote:\n> 1. E-mails from me in a week, at most: 100\n",
    )
    told = notice(agent, "Dr. Ana Rivera agreed, with 2 change(s)").get_content()
    assert "1. E-mails from me in a week, at most:  100                  →  60" in told
    assert "3. When my e-mails arrive, your time:   Mon-Sun 00:00-24:00  →  Mon-Fri 08:00-18:00" in told
    assert len([m for m in agent.notices() if "agreed" in str(m["Subject"])]) == 1
    assert policy_file(agent) == COMMENTED  # shown to the student first
    code, out = cli(agent, "agree", "rivera", "--apply")
    assert code == 0, out
    assert "100                  →  60" in out
    text = policy_file(agent)
    assert "max_per_week = 60                 # per ISO week, her zone" in text
    assert 'send_windows = ["Mon-Fri 08:00-18:00"]  # her local time' in text
    assert text.startswith(HEADER)
    data = tomllib.loads(text)
    assert data["email"]["max_per_week"] == 60 and data["agreement"]["version"] == 1
    # the running daemon takes the agreed policy in
    eventually(lambda: "rivera.toml" in agent.log() and "applies from the next decision" in agent.log(), timeout=15)


def test_an_edited_draft_with_a_new_message_id_is_still_answered(agent: Agent) -> None:
    agent.policy(COMMENTED)
    agent.start()
    code, out = cli(agent, "agree", "rivera")
    assert code == 0, out
    uid, raw = next(iter(agent.folder_raw("Drafts").items()))
    # the student edits the words in a mail program, which saves the draft with a new Message-ID, then sends it
    edited = parse(raw)
    del edited["Message-ID"], edited["X-Mentor-Agent"]
    edited["Message-ID"] = make_msgid(domain="med.example.edu")
    edited.set_content(edited.get_content().replace("Thank you for mentoring me.", "Thank you so much for Friday."))
    with agent.dovecot.client(agent.user) as client:
        client.select_folder("Drafts")
        client.delete_messages([uid])
        client.expunge()
    agent.drop(edited.as_bytes())
    sent = proposal_sent(agent, marked=False)
    assert "Thank you so much for Friday." in sent.get_content()
    quoted = "\n".join(f"> {line}" for line in sent.get_content().splitlines())
    answer(agent, str(sent["Message-ID"]), f"Fine with me.\n\nOn Monday, Sam Patel wrote:\n{quoted}\n")
    told = notice(agent, "Dr. Ana Rivera agreed to your standards")
    assert "(or a flag on this notice)" in told.get_content()
    # this time the student applies it with a flag on the notice
    uid = next(u for u, raw in agent.folder_raw("INBOX").items() if parse(raw)["Message-ID"] == told["Message-ID"])
    with agent.dovecot.client(agent.user) as client:
        client.select_folder("INBOX")
        client.add_flags([uid], [b"\\Flagged"])
    applied = notice(agent, "Applied: your agreement with Dr. Ana Rivera, version 1").get_content()
    assert "Dr. Ana Rivera agreed to the standards as proposed." in applied
    assert tomllib.loads(policy_file(agent))["agreement"]["version"] == 1
    assert policy_file(agent).startswith(COMMENTED)
    code, out = cli(agent, "agree", "rivera", "--apply")
    assert code == 1 and "already" in out


REVIEWED = (
    COMMENTED
    + """
[agreement]
agreed_on = 2026-06-01
version = 1
review_every = "26w"
"""
)
NEW_YORK = ZoneInfo("America/New_York")
DUE = datetime(2026, 11, 30, 9, tzinfo=NEW_YORK)  # 2026-06-01 + 182 days, 09:00 for the student


def test_the_review_notice_comes_at_its_time_on_the_virtual_clock(agent: Agent) -> None:
    agent.policy(REVIEWED)
    ledger = Ledger(agent.root / "state" / "ledger.sqlite3")
    start = datetime(2026, 6, 2, 14, tzinfo=UTC)
    for week in range(26):  # one e-mail a week, each answered a day and a half later
        at = start + timedelta(weeks=week)
        ledger.add_item("rivera", f"<w{week}@med.example.edu>", at, [f"<w{week}@med.example.edu>"], addresses=[MENTOR])
        ledger.add_reply(
            "rivera",
            f"<r{week}@hospital.example.org>",
            at + timedelta(hours=36),
            f"<w{week}@med.example.edu>",
            addresses=[MENTOR],
        )
    ledger.close()
    settings = load_settings(agent.config, required=True)
    clock = VirtualClock(DUE - timedelta(hours=2))
    daemon = DemoDaemon(settings, agent.config, clock=clock)

    async def drive() -> None:
        running = asyncio.create_task(daemon.run())
        try:
            await until(lambda: daemon.finished >= 1)
            assert daemon.next_due == DUE  # the daemon's timer is set for the review
            assert not review_notices(agent)
            clock.set(DUE)
            before = daemon.finished
            daemon.wake.set()  # what its timer does at that moment
            await until(lambda: daemon.finished > before and not daemon.busy)
        finally:
            daemon.stop()
            await asyncio.wait_for(running, 30)

    asyncio.run(drive())
    for thread in threading.enumerate():
        if thread.name.startswith("watch "):
            thread.join(10)
    told = review_notices(agent)
    assert len(told) == 1
    text = told[0].get_content()
    assert told[0]["Date"].datetime == DUE
    assert "You agreed the standards with Dr. Ana Rivera on 2026-06-01 (version 1)" in text
    assert "E-mails to Dr. Ana Rivera: 26, 1.0 a week on average" in text
    assert "Her answers: 26; half came within 36 hours, the slowest took 36 hours" in text
    assert "`mentor-agent agree rivera`" in text


def review_notices(agent: Agent) -> list[EmailMessage]:
    return [m for m in agent.notices() if "Time to look at your agreement" in str(m["Subject"])]


async def until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 20
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("not within 20 s")
        await asyncio.sleep(0.05)


def test_the_review_date_is_the_agreed_period_after_the_agreement() -> None:
    assert date(2026, 6, 1) + timedelta(days=182) == DUE.date()


def test_agree_again_while_a_proposal_waits_is_refused_unless_again(agent: Agent) -> None:
    """A slip: `agree --send` run twice would send her the same proposal twice."""
    agent.policy(COMMENTED)
    agent.start()
    assert cli(agent, "agree", "rivera", "--send")[0] == 0
    for again in (("--send",), ()):
        code, out = cli(agent, "agree", "rivera", *again)
        assert (
            code == 1
            and "still waits for Dr. Ana Rivera's answer" in out
            and "--again" in out
            and len(out.splitlines()) == 1
        ), out
    proposal_sent(agent)
    time.sleep(2)
    assert len(agent.smtp.messages) == 1 and agent.folder_raw("Drafts") == {}
    code, out = cli(agent, "agree", "rivera", "--again")
    assert code == 0 and "is in Drafts" in out, out
    assert len(agent.folder_raw("Drafts")) == 1


def test_her_out_of_office_reply_is_not_her_answer_to_the_proposal(agent: Agent) -> None:
    agent.policy(COMMENTED)
    agent.start()
    assert cli(agent, "agree", "rivera", "--send")[0] == 0
    proposal = str(proposal_sent(agent)["Message-ID"])
    auto = (Path(__file__).parent / "corpus" / "auto_replies" / "gmail_vacation.eml").read_bytes()
    agent.dovecot.append(agent.user, "INBOX", auto.replace(b"<q1.rotation@med.example.edu>", proposal.encode()))
    answer(agent, proposal, "Fine by me, Sam.\n")
    notice(agent, "Dr. Ana Rivera agreed to your standards")
    assert not [m for m in agent.notices() if "Please read" in str(m["Subject"])], "her vacation reply was no answer"
    assert cli(agent, "agree", "rivera", "--apply")[0] == 0


def test_her_later_answer_replaces_the_earlier_and_after_apply_she_is_heard(agent: Agent) -> None:
    agent.policy(COMMENTED)
    agent.start()
    assert cli(agent, "agree", "rivera", "--send")[0] == 0
    sent = proposal_sent(agent)
    answer(agent, str(sent["Message-ID"]), "Fine.\n\nAna\n")
    notice(agent, "Dr. Ana Rivera agreed to your standards")
    taken_back = "Sorry, please ignore my last e-mail. I cannot agree to this yet, let us talk first.\n\nAna\n"
    answer(agent, str(sent["Message-ID"]), taken_back)
    told = notice(agent, "Please read Dr. Ana Rivera's answer").get_content()
    assert "replaces her earlier one" in told and "I cannot agree to this yet" in told
    assert cli(agent, "agree", "rivera", "--apply")[0] == 1 and policy_file(agent) == COMMENTED
    answer(agent, str(sent["Message-ID"]), "Fine.\n")
    eventually(lambda: len([m for m in agent.notices() if "agreed to your standards" in str(m["Subject"])]) == 2)
    assert cli(agent, "agree", "rivera", "--apply")[0] == 0
    applied = policy_file(agent)
    answer(agent, str(sent["Message-ID"]), "7. 45 minutes\n\nAna\n")
    again = notice(agent, "Dr. Ana Rivera wrote again about your agreement").get_content()
    assert "Nothing was changed" in again and "45 minutes" in again and policy_file(agent) == applied


def test_an_answer_her_domain_failed_dmarc_for_is_not_hers(agent: Agent) -> None:
    """Her address in From, but the student's provider found DMARC failing for her domain: not her answer (the
    later genuine one is read as the first)."""
    agent.policy(COMMENTED)
    agent.start()
    assert cli(agent, "agree", "rivera", "--send")[0] == 0
    sent = proposal_sent(agent)
    answer(
        agent,
        str(sent["Message-ID"]),
        "Fine.\n",
        results="spf=fail; dkim=none; dmarc=fail header.from=hospital.example.org",
    )
    answer(agent, str(sent["Message-ID"]), "Sorry, I cannot agree to this yet, let us talk first.\n\nAna\n")
    told = notice(agent, "Please read Dr. Ana Rivera's answer").get_content()
    assert "replaces her earlier one" not in told, told
    assert not [m for m in agent.notices() if "agreed to your standards" in str(m["Subject"])]
