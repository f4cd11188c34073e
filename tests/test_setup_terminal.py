"""`mentor-agent setup` as a student meets it: questions in a pseudo-terminal (pexpect), servers found through the
domain's autoconfig file (a loopback HTTP server), the real Dovecot and aiosmtpd behind it."""

from __future__ import annotations

import io
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config.settings import load_settings
from tests.agent_process import MENTOR, OUTBOX
from tests.servers.autoconfig import AutoconfigServer, clientconfig
from tests.servers.dns_server import DnsServer
from tests.servers.dovecot import Dovecot, User
from tests.servers.smtp import SmtpServer

pexpect = pytest.importorskip("pexpect")
pytestmark = [pytest.mark.servers, pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")]
ADDRESS = "sam@uni.example"
README = Path(__file__).resolve().parent.parent / "docs" / "setup.md"  # the guide page with the session
# The questions of a first run, as the guide's example session shows them (a default that depends on the
# machine or the answers is left out after its "[").
QUESTIONS = (
    "Your e-mail address:",
    "Your name (as mentors know you) [",
    "Your time zone [",
    "Use these servers? [Y/n]:",
    "User name for IMAP and SMTP [",
    "Password for ",
    "Your mail program (",
    "Write the policy for a mentor now? [Y/n]:",
    "Mentor's name (e.g. Dr. Ana Rivera):",
    "Mentor's address(es):",
    "Mentor's time zone [",
    "At most how many messages a day [1]:",
    "At most how many a week [3]:",
    "When may mail arrive (e.g. Mon-Fri 08:00-17:00; several with ';') [Mon-Fri 08:00-17:00]:",
    "Run it as a systemd user service now? [y/N]:",
)


def test_the_readme_session_shows_the_questions_setup_asks() -> None:
    text = README.read_text(encoding="utf-8")
    session = text[text.index("$ mentor-agent setup\n") :].split("```", 1)[0]
    missing = [question for question in QUESTIONS if question not in session]
    assert not missing


class Session:
    """One run of ``mentor-agent setup`` in a pty; ``expect`` then ``answer``."""

    def __init__(self, root: Path, *args: str) -> None:
        env = {**os.environ, "XDG_CONFIG_HOME": str(root / "config"), "XDG_STATE_HOME": str(root / "state")}
        env.pop("TZ", None)
        self.child = pexpect.spawn(
            sys.executable, ["-m", "agent", "setup", *args], cwd=str(root), env=env, encoding="utf-8", timeout=30
        )
        self.child.setwinsize(40, 200)
        self.transcript = io.StringIO()
        self.child.logfile_read = self.transcript

    def answer(self, prompt: str, text: str) -> None:
        self.child.expect_exact(prompt)
        self.child.sendline(text)

    def expect(self, text: str) -> str:
        self.child.expect_exact(text)
        return str(self.child.before)

    def interrupt(self) -> None:
        """Ctrl-C, pressed again if the first did not end setup within 3 s, as a person would. CPython's
        ``input()`` writes the prompt, then reads: a SIGINT that lands between the two (pexpect answers the
        prompt within microseconds; on a loaded machine setup may not be reading yet) is only acted on at the
        next one, or after the line is read. No person presses Ctrl-C inside that window; the second press ends it."""
        self.child.sendintr()
        if self.child.expect([pexpect.EOF, pexpect.TIMEOUT], timeout=3) == 1:
            self.child.sendintr()

    def end(self) -> int:
        self.child.expect(pexpect.EOF)
        self.child.close()
        return int(self.child.exitstatus if self.child.exitstatus is not None else -1)


@pytest.fixture
def world(tmp_path: Path, dovecot: Dovecot) -> Iterator[tuple[Path, Dovecot, User, SmtpServer, list[str]]]:
    user = dovecot.new_user()
    smtp = SmtpServer(auth=(user.username, user.password))
    smtp.start()
    xml = clientconfig("uni.example", ("127.0.0.1", dovecot.port, "plain"), ("127.0.0.1", smtp.port, "plain"))
    try:
        with AutoconfigServer({"/mail/config-v1.1.xml": xml}) as web, DnsServer({}) as dns:
            where = ["--autoconfig-url", web.url, "--dns-server", dns.address]
            yield tmp_path, dovecot, user, smtp, where
    finally:
        smtp.stop()


def test_a_first_setup_in_a_terminal_finds_the_servers_asks_plainly_and_writes_a_working_config(
    world: tuple[Path, Dovecot, User, SmtpServer, list[str]],
) -> None:
    root, dovecot, user, smtp, where = world
    session = Session(root, *where)
    session.answer("Your e-mail address:", ADDRESS)
    session.answer("Your name (as mentors know you) [Sam]:", "Sam Patel")
    session.answer("Your time zone [", "America/New_York")
    found = session.expect("Use these servers? [Y/n]:")
    assert f"IMAP 127.0.0.1:{dovecot.port} (plain)" in found and f"SMTP 127.0.0.1:{smtp.port} (plain)" in found
    assert "Found in autoconfig http://127.0.0.1:" in found
    session.child.sendline("")
    session.answer(f"User name for IMAP and SMTP [{ADDRESS}]:", user.username)
    session.answer(f"Password for {user.username}:", user.password)
    asked_door = session.expect("mutt) [none]:")
    assert "Which mail program do you write in? thunderbird: Thunderbird;" in asked_door
    assert "Your mail program (" in asked_door
    session.child.sendline("outlook-web")  # the star door: no port to open in a test
    checked = session.expect("Write the policy for a mentor now? [Y/n]:")
    assert user.password not in checked  # not echoed
    assert f"logged in as {user.username}" in checked and "Created the folders:" in checked
    session.child.sendline("y")
    session.answer("Mentor's name (e.g. Dr. Ana Rivera):", "Dr. Ana Rivera")
    session.answer("Mentor's address(es):", "arivera")
    session.answer("is not an e-mail address", MENTOR)  # asked again, with the reason
    session.answer("Mentor's time zone [America/New_York]:", "America/Chicago")
    session.answer("At most how many messages a day [1]:", "")
    session.answer("At most how many a week [3]:", "")
    session.answer(
        "When may mail arrive (e.g. Mon-Fri 08:00-17:00; several with ';') [Mon-Fri 08:00-17:00]:",
        "Mon-Fri 08:00-17:00; Sat 10:00-12:00",
    )
    steps = session.expect("Run it as a systemd user service now? [y/N]:")
    assert "Outlook on the web: Flag (star) the finished draft." in steps
    session.child.sendline("n")
    session.expect("Start it with: mentor-agent run")
    assert session.end() == 0
    asked = session.transcript.getvalue()
    assert [question for question in QUESTIONS if question not in asked] == []

    config = root / "config" / "mentor-agent" / "config.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600 and user.password not in config.read_text()
    settings = load_settings(config)
    assert (settings.imap.host, settings.imap.port, settings.smtp.port) == ("127.0.0.1", dovecot.port, smtp.port)
    policy = (root / "config" / "mentor-agent" / "policies" / "rivera.toml").read_text()
    assert 'send_windows = ["Mon-Fri 08:00-17:00", "Sat 10:00-12:00"]' in policy
    assert OUTBOX in dovecot.folders(user)

    # Again: every answer offered as it is; a change is shown and asked about, and "no" leaves the file alone.
    before = config.read_text()
    again = Session(root, *where)
    again.answer(f"Your e-mail address [{ADDRESS}]:", "")
    again.answer("Your name (as mentors know you) [Sam Patel]:", "Sam R. Patel")
    again.answer("Your time zone [America/New_York]:", "")
    assert "Found in the config as it is" in again.expect("Use these servers? [Y/n]:")
    again.child.sendline("")
    again.answer(f"User name for IMAP and SMTP [{user.username}]:", "")
    again.answer("Keep the sign-in as it is in the config? [Y/n]:", "")
    again.answer("mutt) [none]:", "")  # no other door: the config keeps the one it has
    shown = again.expect("Write these changes to")
    assert '-name = "Sam Patel"' in shown and '+name = "Sam R. Patel"' in shown
    again.answer("[y/N]:", "n")
    again.expect("left as it was")
    assert again.end() == 1
    assert config.read_text() == before


def test_when_nothing_is_found_the_servers_are_asked_for(tmp_path: Path) -> None:
    with AutoconfigServer({}) as web, DnsServer({}) as dns:
        session = Session(tmp_path, "--autoconfig-url", web.url, "--dns-server", dns.address, "--no-connect")
        session.answer("Your e-mail address:", "sam@nowhere.example")
        session.answer("Your name (as mentors know you) [Sam]:", "")
        session.answer("Your time zone [", "Europe/Berlin")
        tried = session.expect("IMAP server (host name):")
        assert "Found nothing (looked at: " in tried and "SRV _imaps._tcp.nowhere.example" in tried
        session.child.sendline("mail.nowhere.example")
        session.answer("IMAP security (tls, starttls, plain) [tls]:", "")
        session.answer("IMAP port [993]:", "")
        session.answer("SMTP server (host name):", "mail.nowhere.example")
        session.answer("SMTP security (tls, starttls, plain) [tls]:", "starttls")
        session.answer("SMTP port [587]:", "")
        session.answer("User name for IMAP and SMTP [sam@nowhere.example]:", "")
        session.answer("Password for sam@nowhere.example:", "secret")
        session.answer("mutt) [none]:", "")
        session.answer("Write the policy for a mentor now? [Y/n]:", "n")
        session.expect("No policy yet")
        session.answer("Run it as a systemd user service now? [y/N]:", "")
        assert session.end() == 0
    settings = load_settings(tmp_path / "config" / "mentor-agent" / "config.toml")
    assert (settings.imap.host, settings.imap.port, settings.imap.security) == ("mail.nowhere.example", 993, "tls")
    assert (settings.smtp.port, settings.smtp.security, settings.smtp.provider) == (587, "starttls", "auto")
    assert settings.student.name == "Sam" and settings.student.timezone == "Europe/Berlin"
