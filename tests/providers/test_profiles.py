"""Every end-to-end case on every provider profile: the real daemon, through the provider proxy, to the
profile's SMTP server. Zero lost, zero duplicated, each message to its own envelope recipients, one copy in Sent.

The profiles and the public reports behind them: tests/servers/providers/profiles.py and docs/providers.md
(MailKit #702, #970, #1405; node-imap #602; imapsync #250). A case the daemon does not yet pass on a profile is
marked xfail(strict) with the behaviour in KNOWN; the table in docs/providers.md is written from a run
(tests/providers/conftest.py, tests/providers/report.py).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest

from tests.agent_process import MENTOR, eventually, mail, parse, policy_text
from tests.providers.harness import FOLDERS, ProviderAgent, assert_books, books
from tests.servers.providers import PROFILES

pytestmark = pytest.mark.servers
Make = Callable[..., ProviderAgent]
FIX = "fixed by the providers12 branch"

# (case, profile) -> the behaviour that makes it fail today. The providers12 branch removes these.
SENT_TWICE = (
    "the provider files each SMTP submission in Sent and the daemon APPENDs its own copy too "
    "(Sent filing decided by host name, not by looking for the Message-ID): two copies in Sent"
)
COPYUID = (
    "the COPYUID of a multi-message MOVE is taken on trust (Yahoo, MailKit #1405): messages go out with "
    "another message's envelope recipients"
)
OUTLOOK_OUTBOX = "the agent's default Outbox is Outlook's own built-in Outbox: a message Outlook parked there is sent"
FILES_SENT = ("gmail", "microsoft365", "icloud")
KNOWN: dict[tuple[str, str], str] = {}  # the providers12 branch fixed every one of these


def profiles(case: str, only: tuple[str, ...] | None = None) -> list[object]:
    """The profile parameters of ``case``, each xfail(strict) where KNOWN says it fails today."""
    params: list[object] = []
    for name in PROFILES:
        if only is not None and name not in only:
            continue
        reason = KNOWN.get((case, name))
        marks = [pytest.mark.xfail(strict=True, reason=f"{reason}, {FIX}")] if reason else []
        params.append(pytest.param(name, marks=marks, id=name))
    return params


def friend(n: int) -> str:
    return f"friend{n}@example.org"


@pytest.mark.parametrize("profile", profiles("test_send_now"))
def test_send_now(make_agent: Make, profile: str) -> None:
    agent = make_agent(profile)
    agent.start()
    raw = mail("Thank you for clinic")
    agent.drop(raw)
    assert agent.smtp.wait_for(1)[0].rcpt_tos == (MENTOR,)
    assert_books(agent, {"Thank you for clinic": raw})


@pytest.mark.parametrize("profile", profiles("test_hold_and_release_on_time"))
def test_hold_and_release_on_time(make_agent: Make, profile: str) -> None:
    agent = make_agent(profile)
    agent.policy(policy_text(min_gap="2s"))
    agent.start()
    first, second = mail("first"), mail("second")
    agent.drop(first)
    agent.smtp.wait_for(1)
    agent.drop(second)
    eventually(lambda: agent.subjects("Scheduled") == ["second"])
    received = agent.smtp.wait_for(2, timeout=15)
    gap = received[1].received_at - received[0].received_at
    assert 1.8 <= gap <= 5, f"released {gap:.1f} s after the first; the gap is 2 s"
    assert_books(agent, {"first": first, "second": second})
    assert agent.folder_raw("Scheduled") == {}


@pytest.mark.parametrize("profile", profiles("test_flag_sends_now"))
def test_flag_sends_now(make_agent: Make, profile: str) -> None:
    agent = make_agent(profile)
    agent.policy(policy_text(max_per_day=1))
    agent.start()
    first, urgent = mail("first"), mail("urgent")
    agent.drop(first)
    agent.smtp.wait_for(1)
    agent.drop(urgent)
    eventually(lambda: agent.subjects("Scheduled") == ["urgent"])
    agent.flag_scheduled()
    received = agent.smtp.wait_for(2, timeout=10)
    assert parse(received[1].content)["Subject"] == "urgent"
    assert_books(agent, {"first": first, "urgent": urgent})


@pytest.mark.parametrize("profile", profiles("test_delete_from_scheduled_cancels"))
def test_delete_from_scheduled_cancels(make_agent: Make, profile: str) -> None:
    """On Gmail the deleted message stays in "[Gmail]/All Mail" (a label removed): still cancelled."""
    agent = make_agent(profile)
    agent.policy(policy_text(min_gap="2s"))
    agent.start()
    first = mail("first")
    agent.drop(first)
    agent.smtp.wait_for(1)
    agent.drop(mail("never mind"))
    eventually(lambda: agent.subjects("Scheduled") == ["never mind"])
    agent.delete_scheduled()
    eventually(lambda: "cancelled (taken out of Scheduled" in agent.log())
    time.sleep(2.5)  # past the gap: had it not been cancelled, it would go now
    assert_books(agent, {"first": first}, not_sent=["never mind"])


@pytest.mark.parametrize("profile", profiles("test_sent_counting"))
def test_sent_counting(make_agent: Make, profile: str) -> None:
    """A message the student sent from the phone (filed in the provider's Sent) counts against the day."""
    agent = make_agent(profile)
    agent.policy(policy_text(max_per_day=1))
    agent.put(agent.s.profile.sent, mail("sent from my phone"), ("\\Seen",))
    agent.start()
    agent.drop(mail("from the laptop"))
    eventually(lambda: agent.subjects("Scheduled") == ["from the laptop"])
    assert "2nd message today" in eventually(lambda: agent.notices())[0].get_content()
    assert agent.smtp.messages == []
    assert agent.subjects("Sent") == ["sent from my phone"]


@pytest.mark.parametrize("profile", profiles("test_reply_releases_held_mail"))
def test_reply_releases_held_mail(make_agent: Make, profile: str) -> None:
    agent = make_agent(profile)
    agent.policy(policy_text(max_unanswered=1))
    agent.start()
    first, second = mail("first question"), mail("second question")
    agent.drop(first)
    sent_first = parse(agent.smtp.wait_for(1)[0].content)
    agent.drop(second)
    eventually(lambda: agent.subjects("Scheduled") == ["second question"])
    time.sleep(1)  # the reply's Date (whole seconds) must not precede the send it answers
    agent.put(
        "INBOX",
        mail(
            "Re: first question",
            to="sam@med.example.edu",
            In_Reply_To=sent_first["Message-ID"],
            From="Ana Rivera <arivera@hospital.example.org>",
        ),
    )
    received = agent.smtp.wait_for(2, timeout=10)
    assert parse(received[1].content)["Subject"] == "second question"
    assert_books(agent, {"first question": first, "second question": second})


def _batch(count: int) -> dict[str, bytes]:
    """``count`` messages, each to its own recipients (the first to the mentor, with a Cc)."""
    written = {}
    for n in range(count):
        subject = f"batch-{n}"
        written[subject] = mail(subject, to=MENTOR if n == 0 else friend(n), Cc=friend(100 + n))
    return written


@pytest.mark.parametrize("profile", profiles("test_batch_each_to_its_own_recipients"))
def test_batch_each_to_its_own_recipients(make_agent: Make, profile: str) -> None:
    """Six messages arrive in the Outbox together and are claimed with one MOVE: on Yahoo its COPYUID pairs the
    sources with the wrong copies (MailKit #1405); each must still go to its own recipients, once."""
    agent = make_agent(profile)
    agent.start()
    written = _batch(6)
    agent.drop_batch(list(written.values()))
    assert_books(agent, written)


@pytest.mark.parametrize("profile", profiles("test_one_copy_in_sent"))
def test_one_copy_in_sent(make_agent: Make, profile: str) -> None:
    """Never two copies in Sent, never none: whether or not the provider files submissions itself."""
    agent = make_agent(profile)
    agent.start()
    written = {"to a friend": mail("to a friend", to=friend(1), Bcc=friend(2)), "to the mentor": mail("to the mentor")}
    for n, raw in enumerate(written.values(), start=1):
        agent.drop(raw)
        agent.smtp.wait_for(n)  # one at a time: a batch is the case above
    assert_books(agent, written)


@pytest.mark.parametrize("profile", profiles("test_kill_9_and_restart"))
def test_kill_9_and_restart(make_agent: Make, profile: str) -> None:
    """kill -9 right after the claim (one MOVE of four), then right after the first SMTP acceptance, then a
    normal life: each message once at the server, to its own recipients, once in Sent."""
    agent = make_agent(profile, connections=1)
    agent.start(MENTOR_AGENT_CRASH_AT="claimed")
    written = _batch(4)
    agent.drop_batch(list(written.values()))
    assert agent.wait_exit() == -signal.SIGKILL
    agent.start(MENTOR_AGENT_CRASH_AT="accepted")
    assert agent.wait_exit() == -signal.SIGKILL
    agent.start()
    assert_books(agent, written)


@pytest.mark.parametrize("profile", profiles("test_sigterm"))
def test_sigterm(make_agent: Make, profile: str) -> None:
    agent = make_agent(profile, connections=1)
    agent.start()
    written = _batch(3)
    agent.drop_batch(list(written.values()))
    agent.smtp.wait_for(1)
    assert agent.stop(signal.SIGTERM) == 0
    assert "stopped" in agent.log()
    agent.start()
    assert_books(agent, written)


@pytest.mark.parametrize("profile", profiles("test_session_ended_by_the_server"))
def test_session_ended_by_the_server(make_agent: Make, profile: str) -> None:
    """Every IMAP session ends mid-way (Microsoft: ``BYE ... AccessTokenExpired``, imapsync #250; the others:
    a plain BYE, as Gmail's daily drop): the daemon reconnects and misses nothing dropped meanwhile."""
    agent = make_agent(profile)
    agent.start()
    proxy = agent.s.proxy
    eventually(lambda: proxy.sessions >= 2)
    ended = proxy.expire_token() if profile == "microsoft365" else proxy.drop_sessions("Connection closed")
    assert ended >= 2
    raw = mail("after the drop")
    agent.drop(raw)
    agent.smtp.wait_for(1, timeout=30)
    assert agent.log().count("connected to") >= 2
    assert_books(agent, {"after the drop": raw})


@pytest.mark.parametrize("profile", profiles("test_outlooks_outbox_never_read", only=("microsoft365",)))
def test_outlooks_outbox_never_read(make_agent: Make, profile: str) -> None:
    """Outlook parks mail in its own built-in Outbox while it sends it: the agent must never take it."""
    agent = make_agent(profile)
    outlook = agent.s.profile.builtin_outbox
    assert outlook is not None
    parked = mail("parked by Outlook", to=friend(7))
    agent.put(outlook, parked)
    agent.start()
    own = mail("through the agent")
    agent.drop(own)
    agent.smtp.wait_for(1)
    result = books(agent, {"through the agent": own, "parked by Outlook": parked}, not_sent=["parked by Outlook"])
    assert not result.duplicated, f"the agent sent what Outlook had parked in its Outbox ({result.duplicated})"
    assert [str(parse(r)["Subject"]) for r in agent.dovecot.messages(agent.user, outlook).values()] == [
        "parked by Outlook"
    ]
    assert outlook not in agent.s.proxy.selected or FOLDERS.outbox == outlook
    assert not result.problems(), result.problems()


@pytest.mark.parametrize("profile", profiles("test_idle_dropped_by_the_server", only=("microsoft365",)))
def test_idle_dropped_by_the_server(make_agent: Make, profile: str) -> None:
    """Microsoft 365 ends an IDLE after 30 minutes (here: 2 s, shorter than the daemon's renewal): the daemon
    reconnects, again and again, and still sends what is dropped."""
    agent = make_agent(PROFILES[profile].but(idle_limit=2.0))
    agent.start()
    eventually(lambda: ("bye", "IDLE longer than 2.0 s") in agent.s.proxy.events, timeout=10)
    raw = mail("while IDLE keeps being dropped")
    agent.drop(raw)
    agent.smtp.wait_for(1, timeout=30)
    assert_books(agent, {"while IDLE keeps being dropped": raw})


@pytest.mark.parametrize("profile", profiles("test_sending_limit_not_tripped", only=("microsoft365",)))
def test_sending_limit_not_tripped(make_agent: Make, profile: str) -> None:
    """31 messages at once on Exchange Online (30 a minute): never a burst that the server refuses; what must
    wait waits with a notice. How the daemon learns the provider is the daemon's to decide: pass it to
    ``make_agent`` here (a config key) once it exists."""
    agent = make_agent(profile, provider="microsoft365")
    agent.start()
    written = {f"burst-{n:02d}": mail(f"burst-{n:02d}", to=friend(n)) for n in range(31)}
    agent.drop_batch(list(written.values()))
    eventually(lambda: len(agent.smtp.messages) >= 30 or agent.s.smtp.refused, timeout=30)
    time.sleep(2)
    assert agent.s.smtp.refused == [], f"the server refused: {agent.s.smtp.refused}"
    assert agent.folder_raw("Needs attention") == {}
    waiting = set(written) - {parse(m.content)["Subject"] for m in agent.smtp.messages}
    assert len(waiting) >= 1 and agent.notices(), "the 31st waits for the next minute, and the student is told"
