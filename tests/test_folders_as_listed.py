"""The names of the agent's folders against what the server lists (hostile round 21b): a placeholder ``\\Noselect``
name is created, not taken for a folder; a CREATE the server refuses (a namespace prefix it wants) is a clear config
error naming the key and what to write, never a lost connection retried for ever; a Sent folder that is neither
marked ``\\Sent`` nor configured is found by its localized name, or the student is told once."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import signal
from collections.abc import Iterable, Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from agent.config.settings import Folders, Settings, Smtp, Student
from agent.daemon import probe, session
from agent.errors import EX_CONFIG, UserError
from agent.mail.claim import Mailbox
from agent.mail.folder_names import find_sent, prefix_asked, refused_for_now, says_no_rights, usable, without_ghosts
from agent.mail.session import FolderRefused, MailboxError
from agent.reconcile.outbox_folders import remember_made, settle_folders
from agent.rules.server_trouble import VARIABLE as TROUBLE_TOLD_AFTER
from tests.agent_process import STUDENT, Agent, eventually, policy_text
from tests.fakes.memory_mailbox import Failure, MemoryServer
from tests.servers.dovecot import Dovecot, User
from tests.servers.fixtures import TlsFiles
from tests.servers.rewriting_proxy import RewritingProxy
from tests.servers.smtp import SmtpServer
from tests.test_check_connect import cli
from tests.test_in_doubt_counts_on_fake import START
from tests.test_passes_on_fake import Pass, mail
from tests.test_went_after_all_on_fake import _moved_back_and_held

P = "INBOX."  # the personal namespace's prefix of the Courier-style server below
GERMAN_SENT = "Gesendete Elemente"


def test_a_placeholder_name_is_not_a_folder_and_is_created(dovecot: Dovecot, imap_user: User) -> None:
    """The student made "Scheduled/Old" and deleted "Scheduled": Dovecot lists "Scheduled" \\Noselect."""
    with dovecot.client(imap_user) as client:
        client.create_folder("Scheduled/Old")
        assert b"\\Noselect" in client.list_folders("", "Scheduled")[0][0]
    with Mailbox(dovecot.settings(imap_user), Dovecot.login(imap_user)) as box:
        folders = box.resolve_folders(Folders())
        box.append(folders.scheduled, mail("waits"))  # a NO "Mailbox doesn't exist" before the fix
        assert len(box.uids(folders.scheduled)[1]) == 1
        box.ensure_folder("Scheduled")  # there now: nothing to do
    with dovecot.client(imap_user) as client:
        assert usable(str(flag) for flag in client.list_folders("", "Scheduled")[0][0])


def test_a_deleted_parent_listed_with_its_child_only_is_created(
    dovecot: Dovecot, imap_user: User, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """Hostile round: she deleted "Scheduled" and kept "Scheduled/Old". Dovecot lists "Scheduled" ``\\HasChildren``
    alone, not ``\\Noselect``; the agent took it for a folder and every SELECT failed, for ever, untold."""
    with dovecot.client(imap_user) as client:
        client.create_folder("Scheduled")
        client.create_folder("Scheduled/Old")
        client.delete_folder("Scheduled")
        assert [flag.lower() for flag in client.list_folders("", "Scheduled")[0][0]] == [b"\\haschildren"]
    with Mailbox(dovecot.settings(imap_user), Dovecot.login(imap_user)) as box:
        folders = box.resolve_folders(Folders())
        box.append(folders.scheduled, mail("waits"))
        assert len(box.uids(folders.scheduled)[1]) == 1
    settings = _settings(dovecot, imap_user, tmp_path, Folders())
    imap = dovecot.settings(imap_user, password=imap_user.password)
    smtp = Smtp(host=smtp_server.host, port=smtp_server.port, security="plain")
    settings = settings.model_copy(update={"imap": imap, "smtp": smtp})
    with dovecot.client(imap_user) as client:
        client.delete_folder("Scheduled")  # gone again: `check --connect` says `run` makes it
    report = probe.connect(settings, tmp_path / "config.toml")  # `check --connect`
    assert any("'Scheduled': will be created by `run`" in line for line in report.lines), report.lines


def test_a_create_the_server_refuses_for_now_is_tried_again_not_a_config_error(
    dovecot: Dovecot, imap_user: User
) -> None:
    """Hostile round: a CREATE answered ``NO [SERVERBUG]`` (here: her mail directory read-only) was a naming error,
    exit 78, which systemd never restarts after."""
    with dovecot.client(imap_user) as client:  # her first look makes her mail directory
        client.list_folders()
        maildir = dovecot.root / "home" / imap_user.username / "Maildir"
    maildir.chmod(0o555)
    try:
        with (
            Mailbox(dovecot.settings(imap_user), Dovecot.login(imap_user)) as box,
            pytest.raises(MailboxError) as raised,
        ):
            box.resolve_folders(Folders())
        assert not isinstance(raised.value, FolderRefused) and "failed for now" in str(raised.value)
    finally:
        maildir.chmod(0o700)


def _in_trouble(
    dovecot: Dovecot, tmp_path: Path, smtp_server: SmtpServer, trouble: dict[str, bool]
) -> tuple[Agent, RewritingProxy]:
    """An agent behind a proxy that, while ``trouble["status"]``, answers every STATUS ``NO [UNAVAILABLE]``, and while
    ``trouble["append"]`` also drops the connection at an APPEND's literal (the server's storage down); a message
    waits in her Outbox."""
    user = dovecot.new_user()
    with dovecot.client(user) as client:  # "Sent Items" listed as a parent: asked about by STATUS at each start
        client.create_folder("Sent Items/2019")
        client.create_folder("Mentor Outbox")
        client.append("Mentor Outbox", mail("Waited out the trouble", to="friend@example.org"))

    def rule(line: bytes) -> bytes:
        if trouble["status"] and re.match(rb"^\S+ OK Status completed", line):
            return line.split(b" ", 1)[0] + b" NO [UNAVAILABLE] Temporary failure, try again later\r\n"
        if trouble["append"] and line.startswith(b"+ "):
            raise ConnectionResetError("the server's storage is down")
        return line

    proxy = RewritingProxy(dovecot.port, rule)
    proxy.start()
    agent = Agent(tmp_path, dovecot, user, smtp_server, env={TROUBLE_TOLD_AFTER: "1"})
    agent.write_config()
    agent.policy(policy_text())
    agent.config.write_text(agent.config.read_text().replace(f"port = {dovecot.port}\n", f"port = {proxy.port}\n"))
    return agent, proxy


def test_a_server_refusing_the_folder_check_for_now_is_told_once_and_again_when_it_works(
    dovecot: Dovecot, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """Hostile round 3 on the folders: a server that refuses the start's folder check for now at every try
    (``[UNAVAILABLE]`` to each STATUS) was retried for ever, right, but she was never told that nothing was read
    or sent meanwhile. Now she is told once the spell has lasted (here 1 s, not half an hour), once, and again
    when it works, also across a restart; what waited in the Outbox goes then."""
    trouble = {"status": True, "append": False}
    agent, proxy = _in_trouble(dovecot, tmp_path, smtp_server, trouble)
    try:
        agent.start(until="telling the student")
        agent.stop(signal.SIGKILL)  # hostile round: the spell was forgotten at a restart, told twice, or never ended
        agent.start(until="failed for now")
        tries = agent.log().count("failed for now")
        eventually(lambda: agent.log().count("failed for now") > tries, timeout=40)  # tried again, not told again
        assert [str(n["Subject"]) for n in agent.notices()] == [
            "[mentor-agent] mentor-agent is waiting for your mail server"
        ]
        assert agent.process is not None and agent.process.poll() is None and smtp_server.messages == []
        trouble["status"] = False
        smtp_server.wait_for(1, timeout=40)
        eventually(lambda: len(agent.notices()) == 2, timeout=10)
        subjects = [str(n["Subject"]) for n in agent.notices()]
        assert subjects[1] == "[mentor-agent] Back in your mailbox: your mail server works again", subjects
        body = agent.notices()[0].get_content()
        assert "[UNAVAILABLE]" in body and "reads and sends nothing" in body, body
    finally:
        agent.end()
        proxy.stop()


def test_a_spell_whose_notice_could_not_be_appended_is_told_when_it_works(
    dovecot: Dovecot, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """Second hostile round: the server's storage down, the notice of the spell could never be appended, and when
    it worked again she was told nothing at all."""
    trouble = {"status": True, "append": True}
    agent, proxy = _in_trouble(dovecot, tmp_path, smtp_server, trouble)
    try:
        agent.start(until="telling the student")
        eventually(lambda: agent.log().count("telling the student") >= 2, timeout=40)
        assert agent.notices() == []
        trouble["status"] = trouble["append"] = False
        smtp_server.wait_for(1, timeout=40)
        told = eventually(lambda: [str(n["Subject"]) for n in agent.notices()], timeout=10)
        assert told == ["[mentor-agent] Back in your mailbox: your mail server works again"]
    finally:
        agent.end()
        proxy.stop()


@pytest.mark.parametrize(
    ("listed", "found"),
    [
        ({"Sent Items": {"\\sent"}, "Sent": set()}, ("Sent Items", "special-use", ())),
        ({"Sent": set()}, ("Sent", "name", ())),
        ({"INBOX.Sent Messages": set()}, ("INBOX.Sent Messages", "name", ())),
        ({"Sent": {"\\noselect", "\\haschildren"}, "Sent Items": set()}, ("Sent Items", "name", ())),
        ({"SENT": set()}, ("SENT", "localized", ())),
        ({"sent": set()}, ("sent", "localized", ())),
        ({"Envoye\u0301s": set()}, ("Envoye\u0301s", "localized", ())),  # decomposed, as a Mac may write it
        ({"Sent": set(), "Sent Messages": set()}, ("Sent", "several", ("Sent Messages",))),
        ({"Gesendete Elemente": set(), "Sent": set()}, ("Sent", "several", ("Gesendete Elemente",))),
        ({"SENT": set(), "Gesendet": set()}, ("SENT", "several", ("Gesendet",))),
        (
            {"Gesendet": {"\\drafts"}, "Sent": {"\\archive"}, "Sent Items": {"\\trash"}},
            ("Sent Messages", "created", ()),
        ),
        ({"Sent": {"\\noselect"}}, ("Sent", "created", ())),
        ({"Archive": set()}, ("Sent", "created", ())),
    ],
)
def test_sent_is_found_by_its_attribute_else_by_its_name_in_any_language_or_case(
    listed: dict[str, set[str]], found: tuple[str, str, tuple[str, ...]]
) -> None:
    assert find_sent({name: frozenset(attributes) for name, attributes in listed.items()}) == found


def test_a_name_listed_as_a_parent_only_is_a_placeholder_where_status_says_it_is_none() -> None:
    listed = {"Scheduled": frozenset({"\\haschildren"}), "Work": frozenset({"\\haschildren"}), "Sent": frozenset()}
    asked: list[str] = []

    def selectable(name: str) -> bool:
        asked.append(name)
        return name == "Work"

    checked = without_ghosts(listed, ["Scheduled", "Work", "Mentor Outbox"], selectable)
    assert not usable(checked["Scheduled"]) and usable(checked["Work"]) and usable(checked["Sent"])
    assert sorted(asked) == ["Scheduled", "Work"], "only names with children are asked about"


@pytest.fixture(scope="module")
def prefixed(tls_ca: TlsFiles) -> Iterator[Dovecot]:
    """A server with an ``INBOX.`` prefix ("." separator) and a German Sent folder no SPECIAL-USE marks."""
    server = Dovecot(tls_ca.cert_pem, tls_ca.key_pem, tls_ca.ca_pem, mailboxes={GERMAN_SENT: ""}, prefix=P)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        server.cleanup()


def _settings(server: Dovecot, user: User, tmp_path: Path, folders: Folders) -> Settings:
    return Settings(
        student=Student(name="Sam Patel", address=STUDENT, timezone="America/Chicago"),
        imap=server.settings(user, folders=folders),
        smtp=Smtp(host="127.0.0.1", port=2525, security="plain"),
        state_dir=tmp_path / "state",
        policies_dir=tmp_path / "policies",
    )


def test_a_refused_create_names_the_key_and_the_prefix_and_tells_the_student(prefixed: Dovecot, tmp_path: Path) -> None:
    user = prefixed.new_user()
    settings = _settings(prefixed, user, tmp_path, Folders())
    with pytest.raises(UserError) as raised:
        session.connect_listed(settings, "config.toml", "agent-1", Dovecot.login(user), tell=True)
    said = str(raised.value)
    assert said.startswith("config.toml: imap.folders.outbox: ")
    assert "'Mentor Outbox'" in said and "prefixed with" in said  # the server's own words
    assert 'outbox = "INBOX.Mentor Outbox" under [imap.folders]' in said
    assert EX_CONFIG == 78  # what `run` exits with on a UserError (agent/cli/main.py)
    with pytest.raises(UserError):  # started again before she fixed it: told once (hostile round)
        session.connect_listed(settings, "config.toml", "agent-1", Dovecot.login(user), tell=True)
    told = _told(prefixed.messages(user, "INBOX").values())
    assert len(prefixed.messages(user, "INBOX")) == 1
    assert list(told) == ["[mentor-agent] mentor-agent stopped: the server refused one of its folders"]
    assert 'outbox = "INBOX.Mentor Outbox" under [imap.folders]' in told[next(iter(told))]


def test_a_localized_sent_folder_is_found_under_a_prefix(prefixed: Dovecot, tmp_path: Path) -> None:
    user = prefixed.new_user()
    mine = Folders(
        outbox=f"{P}Mentor Outbox",
        scheduled=f"{P}Scheduled",
        needs_attention=f"{P}Needs attention",
        sending=f"{P}Sending",
    )
    with Mailbox(prefixed.settings(user, folders=mine), Dovecot.login(user)) as box:
        folders = box.resolve_folders(mine)
    assert (folders.sent, folders.sent_found) == (f"{P}{GERMAN_SENT}", "localized")
    assert f"{P}Sent" not in prefixed.folders(user), "no Sent of the agent's own beside hers"


def test_prefix_and_placeholder_words() -> None:
    assert prefix_asked("CREATE: create failed: Mailbox name should probably be prefixed with: INBOX.") == "INBOX."
    assert prefix_asked("NO [CANNOT] Invalid mailbox name") is None
    assert not usable(["\\Noselect", "\\HasChildren"]) and not usable(["\\NonExistent"]) and usable(["\\Sent"])


# -- a Sent folder neither marked nor configured, on the fake mailbox -------------------------------------------
def _start(tmp_path: Path, smtp: SmtpServer, server: MemoryServer) -> Pass:
    made = Pass(tmp_path, smtp, policy_text(max_per_day=1), server=server)
    asyncio.run(settle_folders(made.world, "config.toml"))
    return made


def _told(raws: Iterable[bytes]) -> dict[str, str]:
    """The notices' subjects and plain texts (unfolded, decoded)."""
    told = {}
    for raw in raws:
        notice = email.message_from_bytes(raw, policy=email.policy.default)
        body = notice.get_body(("plain",))
        assert isinstance(body, EmailMessage)
        told[str(notice["Subject"]).strip()] = " ".join(body.get_content().split())
    return told


def _notices(made: Pass) -> list[str]:
    return list(_told(made.server.messages("INBOX").values()))


def test_the_one_localized_sent_folder_is_taken_and_her_phone_mail_counts(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    server = MemoryServer(special_use=False, sent="Drafts", extra_folders=[GERMAN_SENT])
    server.put(GERMAN_SENT, mail("vom Handy"))
    made = _start(tmp_path, smtp_server, server)
    try:
        assert made.world.folders.sent == GERMAN_SENT
        made.server.put("Mentor Outbox", mail("heute"))
        for _ in range(2):
            made.run()
        assert made.received() == [], "her phone mail today already used the one a day"
        assert made.subjects("Scheduled") == ["heute"]
        assert "Sent" not in server.folders
        assert _notices(made).count(f"[mentor-agent] mentor-agent takes “{GERMAN_SENT}” as your Sent folder") == 1
        asyncio.run(settle_folders(made.world, "config.toml"))  # the next session: told once
        assert len([n for n in _notices(made) if "Sent folder" in n]) == 1
    finally:
        made.world.ledger.close()


def test_of_several_look_alikes_the_likeliest_is_taken_and_the_student_told_of_the_others(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    server = MemoryServer(special_use=False, sent="Drafts", extra_folders=["Verzonden", "Gesendet"])
    server.put("Verzonden", mail("van de telefoon"))
    made = _start(tmp_path, smtp_server, server)
    try:
        folders = made.world.folders
        assert (folders.sent, folders.sent_found, folders.sent_like) == ("Gesendet", "several", ("Verzonden",))
        assert "Sent" not in server.folders, "no third folder of the agent's own beside hers"
        asyncio.run(settle_folders(made.world, "config.toml"))
        told = _told(made.server.messages("INBOX").values())
        title = "[mentor-agent] mentor-agent takes “Gesendet” as your Sent folder, of several"
        assert list(told) == [title]
        assert 'sent = "<your Sent folder>" under [imap.folders] in config.toml' in told[title]
        assert "If your Sent folder is “Verzonden”, set" in told[title] and "from all of them" in told[title]
        made.server.put("Mentor Outbox", mail("heute"))
        for _ in range(2):
            made.run()
        assert made.received() == [], "her phone mail in the other look-alike today already used the one a day"
        assert made.subjects("Scheduled") == ["heute"]
        assert made.subjects("Verzonden") == ["van de telefoon"], "read, never changed"
    finally:
        made.world.ledger.close()


def test_a_sent_folder_made_by_the_agent_then_a_look_alike_beside_it_is_told_again(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """Hostile round: the agent made "Sent"; later her phone made "Gesendet" and files there. The next session found
    "Sent" by its name and said nothing, and her phone mail did not count."""
    server = MemoryServer(special_use=False, sent="Drafts")
    made = _start(tmp_path, smtp_server, server)
    try:
        assert (made.world.folders.sent, made.world.folders.sent_found) == ("Sent", "created")
        made.world.folders = made.box.resolve_folders(Folders())  # the next session: "Sent" now by its name
        asyncio.run(settle_folders(made.world, "config.toml"))
        assert _notices(made) == ["[mentor-agent] mentor-agent files the mail it sends in “Sent”"]
        server.create("Gesendet")
        made.world.folders = made.box.resolve_folders(Folders())
        asyncio.run(settle_folders(made.world, "config.toml"))
        asyncio.run(settle_folders(made.world, "config.toml"))
        assert _notices(made)[1:] == ["[mentor-agent] mentor-agent takes “Sent” as your Sent folder, of several"]
        server.create("Sent Items", attributes=frozenset({"\\sent"}))  # then the server marks one: said once more
        made.world.folders = made.box.resolve_folders(Folders())
        asyncio.run(settle_folders(made.world, "config.toml"))
        asyncio.run(settle_folders(made.world, "config.toml"))
        assert _notices(made)[2:] == ["[mentor-agent] mentor-agent files the mail it sends in “Sent Items” now"]
    finally:
        made.world.ledger.close()


def test_a_marked_or_configured_sent_folder_says_nothing(tmp_path: Path, smtp_server: SmtpServer) -> None:
    made = _start(tmp_path, smtp_server, MemoryServer(extra_folders=[GERMAN_SENT]))
    try:
        assert made.world.folders.sent_found == "special-use"
        assert _notices(made) == []
    finally:
        made.world.ledger.close()


def test_check_connect_and_run_stop_on_folders_outside_the_prefix(
    prefixed: Dovecot, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    user = prefixed.new_user()
    agent = Agent(tmp_path, prefixed, user, smtp_server)
    agent.write_config()
    agent.policy(policy_text())
    advice = "imap.folders.outbox: 'Mentor Outbox' cannot be made on this server"
    for command in ("check", "run"):
        done = cli(agent, command, "--connect") if command == "check" else cli(agent, command)
        assert done.returncode == 78, done.stdout + done.stderr
        assert advice in done.stderr and 'write outbox = "INBOX.Mentor Outbox" under [imap.folders]' in done.stderr
    assert "connection lost" not in done.stderr
    assert "Mentor Outbox" not in str(prefixed.folders(user)) and smtp_server.messages == []


# -- second hostile round: what her programs file in the other look-alike, a STATUS refused for now, a start cut short
def test_a_send_in_doubt_whose_copy_her_provider_filed_in_the_other_look_alike_is_not_sent_again(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """Microsoft 365 marks no Sent folder and files what its SMTP server took in "Sent Items"; the agent took
    "Sent". The copy of the first try proves it went, wherever her provider filed it."""
    server = MemoryServer(special_use=False, sent="Drafts", extra_folders=["Sent", "Sent Items"])
    clock = [START]
    made = Pass(tmp_path, smtp_server, policy_text(min_gap="1h"), server=server)
    made.world.clock = lambda: clock[0]
    try:
        assert (made.world.folders.sent, made.world.folders.sent_like) == ("Sent", ("Sent Items",))
        first = _moved_back_and_held(made, clock)
        made.server.put("Sent Items", first)
        clock[0] = START + timedelta(hours=2)
        for _ in range(3):
            made.run()
        assert made.received() == ["only one"], "its first try reached her: never a second copy"
        assert made.subjects("Needs attention") == ["only one"] and made.subjects("Sent Items") == ["only one"]
    finally:
        made.world.ledger.close()


def test_a_sent_folder_made_at_a_start_that_stopped_before_telling_is_told_at_the_next(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    server = MemoryServer(special_use=False, sent="Drafts")
    made = Pass(tmp_path, smtp_server, policy_text(), server=server)
    try:
        assert made.world.folders.sent_found == "created"
        remember_made(made.world.ledger, made.world.folders)  # what the daemon does at once; then it stopped
        made.world.folders = made.box.resolve_folders(Folders())  # the next start finds "Sent" by its name
        assert made.world.folders.sent_found == "name"
        for _ in range(2):
            asyncio.run(settle_folders(made.world, "config.toml"))
        assert _notices(made) == ["[mentor-agent] mentor-agent files the mail it sends in “Sent”"]
    finally:
        made.world.ledger.close()


def test_what_a_refusal_says_of_a_folder() -> None:
    for gone in (
        "status failed: Mailbox doesn't exist: Scheduled (0.001 + 0.000 secs).",
        "NO [NONEXISTENT] Unknown Mailbox",
        "NO Unknown Mailbox: Sent (Failure)",
        "NO The specified folder could not be found in the store.",
    ):
        assert not says_no_rights(gone) and not refused_for_now(gone), gone
    assert says_no_rights("NO [NOPERM] Permission denied")
    assert refused_for_now("NO [UNAVAILABLE] Try again later")
    assert refused_for_now("NO [SERVERBUG] Internal error occurred.") and not refused_for_now("NO [CANNOT] Bad name")


# -- third hostile round: a look-alike she cannot read, another message under a held draft's Message-ID ----------
def test_a_look_alike_the_server_will_not_let_the_agent_read_never_stops_the_sending(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    server = MemoryServer(special_use=False, sent="Drafts", extra_folders=["Sent", "Sent Items"])
    server.failures.append(Failure("uids_since", "Sent Items", times=99, refused=True, message="[NOPERM] Denied"))
    made = Pass(tmp_path, smtp_server, policy_text(), server=server)
    try:
        assert made.world.folders.sent_like == ("Sent Items",)
        made.server.put("Mentor Outbox", mail("heute"))
        for _ in range(2):
            made.run()
        assert made.received() == ["heute"]
        assert made.box.connected, "a refusal, not a lost connection"
    finally:
        made.world.ledger.close()
