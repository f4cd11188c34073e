"""Issue 22, done when: from each door (an SMTP client, a starred draft, a Gmail-labelled draft) a message to a mentor
is paced and reaches her exactly once, with exactly one copy in Sent, on the Dovecot and the Gmail profile (Gmail:
real labels, tests/servers/providers/labels.py; Google's SMTP files each submission in [Gmail]/Sent Mail itself).

Two messages through one door, ``min_gap`` of a few seconds: the first goes, the second is held in Scheduled (with
its notice), then released."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable

import pytest

from tests.agent_process import MENTOR, OUTBOX, STUDENT, eventually, mail, parse, policy_text
from tests.servers import free_port, wait_for_port
from tests.servers.providers.compose import ComposeWindow
from tests.servers.providers.fixtures import provider_dovecots, provider_stack
from tests.test_provider_daemon import ProviderAgent, behind

__all__ = ["behind", "provider_dovecots", "provider_stack"]  # the fixtures
pytestmark = pytest.mark.servers
GAP = 3  # seconds between two messages to the mentor: the second is visibly held
DOORS = ["msmtp", "star", "label"]
PROFILES = ["dovecot", "gmail"]


def drafts_of(agent: ProviderAgent) -> str:
    return next(name for name, use in agent.stack.profile.folders.items() if use == "\\Drafts")


def open_door(agent: ProviderAgent, door: str, settle: float = 0.5) -> Callable[[bytes], None]:
    """Configure the door (before start); returns how to hand one message over through it (after start)."""
    if not agent.stack.profile.files_sent:  # "auto" would first wait 5 s to learn that: the gap had passed by then
        agent.config.write_text(agent.config.read_text().replace('file_in_sent = "auto"', 'file_in_sent = "always"'))
    with agent.config.open("a") as out:
        if door == "star":
            out.write(f"\n[drafts]\ntake_flagged = true\nsettle = {settle}\n")
        elif door == "label":
            out.write(f"\n[drafts]\nsettle = {settle}\n")
        else:
            port = free_port()
            out.write(f"\n[submission]\nport = {port}\n")
    if door == "star":

        def star(raw: bytes) -> None:
            with agent.stack.client() as client:  # through the provider: at Gmail it is in All Mail too
                client.append(drafts_of(agent), raw, flags=("\\Draft", "\\Seen", "\\Flagged"))

        return star
    if door == "label":
        return lambda raw: ComposeWindow(agent.stack, labels=(OUTBOX,)).save(raw)
    msmtp = shutil.which("msmtp")
    if msmtp is None:
        pytest.skip("msmtp is not installed")

    def submit(raw: bytes) -> None:
        wait_for_port(port)
        secret = (agent.root / "state" / "submission-password").read_text().strip()
        rc = agent.root / "msmtprc"
        rc.write_text(
            f"host 127.0.0.1\nport {port}\nauth plain\nuser mentor-agent\npassword {secret}\ntls off\nfrom {STUDENT}\n"
        )
        rc.chmod(0o600)
        subprocess.run([msmtp, "-C", str(rc), "-t"], input=raw, check=True, timeout=30)

    return submit


def copies(agent: ProviderAgent, folder: str) -> list[str]:
    """Subjects of the student's messages in ``folder`` (not the agent's notices)."""
    found = [parse(raw) for raw in agent.dovecot.messages(agent.user, folder).values()]
    return sorted(str(m["Subject"]) for m in found if m["X-Mentor-Agent"] != "notice")


@pytest.mark.parametrize("name", PROFILES)
@pytest.mark.parametrize("door", DOORS)
def test_two_messages_through_a_door_are_paced_and_reach_the_mentor_once_with_one_copy_in_sent(
    behind: Callable[[str], ProviderAgent], door: str, name: str
) -> None:
    agent = behind(name)
    agent.policy(policy_text(min_gap=f"{GAP}s"))
    hand_over = open_door(agent, door)
    agent.start()
    subjects = [f"{door} first", f"{door} second"]
    texts = [  # two messages, each with its own text (the star door tells a copy by its text)
        "Dear Dr. Rivera,\n\nCould we talk about the sepsis paper's methods section next week?\n\nSam\n",
        "Dear Dr. Rivera,\n\nI attach my draft personal statement; any comment on its opening is welcome.\n\nSam\n",
    ]
    for subject, text in zip(subjects, texts, strict=True):
        hand_over(mail(subject, body=text))
    first = agent.smtp.wait_for(1, timeout=15)[0]
    eventually(lambda: agent.subjects("Scheduled") == [subjects[1]], timeout=10)  # held, visibly
    received = agent.smtp.wait_for(2, timeout=GAP + 15)
    assert received[1].received_at - first.received_at >= GAP - 0.5, "paced: not before the gap"
    assert [r.rcpt_tos for r in received] == [(MENTOR,), (MENTOR,)]
    eventually(lambda: agent.sent() == sorted(subjects), timeout=15)
    eventually(lambda: all(agent.folder_raw(f) == {} for f in ("Outbox", "Scheduled", "Sending")), timeout=10)
    assert copies(agent, drafts_of(agent)) == []
    notices = [str(n["Subject"]) for n in agent.notices()]
    assert any(subjects[1] in s for s in notices), notices  # she is told why the second waits
    time.sleep(1)  # anything sent twice would have gone by now
    assert sorted(str(parse(r.content)["Subject"]) for r in agent.smtp.messages) == sorted(subjects)
    assert agent.sent() == sorted(subjects), "exactly one copy each in Sent"
    if agent.stack.profile.all_mail:  # what the student sees in All Mail: each message once, its sent copy
        assert copies(agent, agent.stack.profile.all_mail) == sorted(subjects)
    assert agent.subjects("Needs attention") == []
    if door == "label" and agent.stack.profile.unlabelled:  # left Drafts on purpose, not as a side effect of Trash
        removed = [d for kind, d in agent.stack.proxy.events if kind == "label removed"]
        assert len(removed) == 2 and all(d.startswith(f"{drafts_of(agent)}:") for d in removed), removed


@pytest.mark.parametrize("name", PROFILES)
@pytest.mark.parametrize("same_id", [True, False], ids=["same Message-ID", "new Message-ID"])
def test_a_labelled_draft_saved_again_after_it_was_taken_is_not_sent_twice(
    behind: Callable[[str], ProviderAgent], name: str, same_id: bool
) -> None:
    """The compose window was still open: it saves the draft once more after the agent took it (while it waits in
    Scheduled), with its labels, so a copy comes back to Drafts and to the Mentor Outbox."""
    agent = behind(name)
    agent.policy(policy_text(min_gap="1h"))  # it waits until she says "send now" (a flag in Scheduled)
    open_door(agent, "label")
    agent.start()
    agent.drop(mail("Earlier today"))
    agent.smtp.wait_for(1)
    window = ComposeWindow(agent.stack, labels=(OUTBOX,))
    raw = mail("Still open in the compose window")
    window.save(raw)
    eventually(lambda: agent.subjects("Scheduled") == ["Still open in the compose window"])
    eventually(lambda: copies(agent, drafts_of(agent)) == [])
    if same_id:
        window.save(raw.replace(b"A short question.", b"A short question!"))  # an edit under its Message-ID
    else:
        window.save(mail("Still open in the compose window"))  # Gmail gave this save a Message-ID of its own
    told = eventually(lambda: [str(n["Subject"]) for n in agent.notices() if "Not taken again" in str(n["Subject"])])
    with agent.stack.client() as client:  # send now
        client.select_folder("Scheduled")
        client.add_flags(client.search(["ALL"]), ["\\Flagged"])
    received = agent.smtp.wait_for(2, timeout=15)
    eventually(lambda: agent.sent() == ["Earlier today", "Still open in the compose window"], timeout=15)
    time.sleep(1.5)  # a second sending would have happened by now
    assert len(agent.smtp.messages) == 2, [str(parse(r.content)["Subject"]) for r in agent.smtp.messages]
    assert b"A short question." in received[1].content
    assert agent.sent() == ["Earlier today", "Still open in the compose window"]
    assert len(told) == 1, told
    assert agent.subjects("Needs attention") == ["Still open in the compose window"], "the save that came back"
    assert agent.folder_raw("Outbox") == {} and agent.folder_raw("Scheduled") == {}


@pytest.mark.parametrize("name", PROFILES)
def test_a_labelled_draft_still_being_typed_goes_once_as_last_saved(
    behind: Callable[[str], ProviderAgent], name: str
) -> None:
    agent = behind(name)
    open_door(agent, "label", settle=2)
    agent.start()
    window = ComposeWindow(agent.stack, labels=(OUTBOX,))
    started = time.monotonic()
    for typed in (
        "Dear Dr. Rivera,\n\nI wan\n",
        "Dear Dr. Rivera,\n\nI wanted to ask\n",
        "Dear Dr. Rivera,\n\nI wanted to ask about the rotation.\n",
    ):
        window.save(mail("Still typing", body=typed))  # autosaves, each a new message
        time.sleep(0.5)
    received = agent.smtp.wait_for(1)[0]
    assert time.monotonic() - started >= 2, "not while she was still typing"
    assert b"about the rotation." in received.content
    eventually(lambda: agent.sent() == ["Still typing"])
    eventually(lambda: all(agent.folder_raw(f) == {} for f in ("Outbox", "Scheduled", "Sending")))
    assert copies(agent, drafts_of(agent)) == []
    time.sleep(1)
    assert len(agent.smtp.messages) == 1
    assert agent.subjects("Needs attention") == [], "the older saves were replaced, not set aside"


@pytest.mark.parametrize("when", ["at once", "late"])
def test_the_programs_own_sent_copy_leaves_each_message_once_in_sent_at_gmail(
    behind: Callable[[str], ProviderAgent], when: str
) -> None:
    """Door 1: whatever the SMTP client does with its own Sent copy (files one at once, or late), the student sees
    each message once: in Scheduled while it waits, in Sent once the mentor has it, and once in All Mail (on plain
    Dovecot: tests/test_submission_door.py)."""
    agent = behind("gmail")
    agent.policy(policy_text(min_gap=f"{GAP}s"))
    submit = open_door(agent, "msmtp")
    agent.start()
    subjects = ["msmtp first", "msmtp held"]
    held = mail(subjects[1])
    submit(mail(subjects[0]))
    submit(held)
    sent = agent.stack.profile.sent

    def file_own_copy() -> None:
        with agent.stack.client() as client:  # the program's copy, through the provider (Gmail: in All Mail too)
            client.append(sent, held, flags=("\\Seen",))

    if when == "at once":
        file_own_copy()
        eventually(lambda: agent.subjects("Scheduled") == [subjects[1]])
        eventually(lambda: subjects[1] not in copies(agent, sent), timeout=10)  # not in Sent while it waits
    agent.smtp.wait_for(2, timeout=GAP + 15)
    eventually(lambda: agent.sent() == subjects, timeout=15)
    if when == "late":
        file_own_copy()
        with agent.stack.client() as client:  # Sent is not watched: a late copy is found by the next pass (any mail
            client.append("INBOX", mail("Hello", to=STUDENT, From="friend@example.org"))  # in INBOX wakes one)
        eventually(lambda: "filed late by the mail program" in agent.log(), timeout=15)
        eventually(lambda: agent.sent() == subjects, timeout=15)
    time.sleep(1.5)
    assert agent.sent() == subjects, "one copy each in Sent"
    assert len(agent.smtp.messages) == 2
    in_all_mail = [s for s in copies(agent, "[Gmail]/All Mail") if s != "Hello"]  # "Hello": the mail that woke it
    assert in_all_mail == subjects, "each once in All Mail too"
