"""`mentor-agent setup` in a terminal with the slips a person makes: a typo in the address, a wrong password,
Ctrl-C half-way, a time zone written with a space, a mentor who already has a policy, a policy file that would be
overwritten, the outbox set to INBOX. Real Dovecot and aiosmtpd behind it (servers found by autoconfig)."""

# ruff: noqa: F811  (the tests take test_setup_terminal's `world` fixture, imported below)

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from agent.config.settings import load_settings
from tests.agent_process import MENTOR, OUTBOX
from tests.servers.dovecot import Dovecot, User
from tests.servers.smtp import SmtpServer
from tests.test_setup_terminal import ADDRESS, world  # noqa: F401
from tests.test_setup_terminal import Session as Terminal

pexpect = pytest.importorskip("pexpect")
pytestmark = [pytest.mark.servers, pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")]
World = tuple[Path, Dovecot, User, SmtpServer, list[str]]


class Session(Terminal):
    """setup in a pty, the mail program question answered by its flag: these slips are about other questions
    (tests/test_setup_terminal.py answers that one as typed)."""

    def __init__(self, root: Path, *args: str) -> None:
        super().__init__(root, *args, "--client", "none")


def config_dir(root: Path) -> Path:
    return root / "config" / "mentor-agent"


def to_the_password(session: Session, user: User, address: str = ADDRESS) -> None:
    session.answer("Your e-mail address:", address)
    session.answer("Your name (as mentors know you) [", "Sam Patel")
    session.answer("Your time zone [", "America/New_York")
    session.answer("Use these servers? [Y/n]:", "")
    session.answer("User name for IMAP and SMTP [", user.username)


def first_setup(root: Path, user: User, where: list[str], *more: str) -> None:
    """A complete first run with one mentor, Dr. Ana Rivera."""
    session = Session(root, *where, *more)
    to_the_password(session, user)
    session.answer(f"Password for {user.username}:", user.password)
    session.answer("Write the policy for a mentor now? [Y/n]:", "y")
    session.answer("Mentor's name (e.g. Dr. Ana Rivera):", "Dr. Ana Rivera")
    session.answer("Mentor's address(es):", MENTOR)
    session.answer("Mentor's time zone [America/New_York]:", "America/Chicago")
    session.answer("At most how many messages a day [1]:", "")
    session.answer("At most how many a week [3]:", "")
    session.answer("When may mail arrive", "")
    session.answer("Run it as a systemd user service now? [y/N]:", "n")
    assert session.end() == 0, session.transcript.getvalue()


def test_an_address_with_a_typo_is_asked_again(world: World) -> None:
    root, _, _, _, where = world
    session = Session(root, *where, "--no-connect")
    for typo in ("sam@@uni.example", "sam@uni..example", "sam@uni.example,"):
        session.answer("Your e-mail address:", typo)
        session.expect(f"{typo!r} is not an e-mail address")
    session.answer("Your e-mail address:", ADDRESS)
    session.expect("Your name (as mentors know you) [Sam]:")
    session.interrupt()
    assert session.end() != 0
    assert not config_dir(root).exists() or not list(config_dir(root).rglob("*.toml"))


def test_a_wrong_password_is_asked_again_and_nothing_is_left_behind(world: World) -> None:
    root, dovecot, user, _, where = world
    session = Session(root, *where)
    to_the_password(session, user)
    session.answer(f"Password for {user.username}:", "not-the-password")
    refused = session.expect(f"Password for {user.username}:")
    assert f"login as '{user.username}' refused" in refused and "Nothing was written" in refused
    assert "not-the-password" not in session.transcript.getvalue()
    assert not (config_dir(root) / "config.password").exists()
    assert not (config_dir(root) / "config.toml").exists()
    session.child.sendline(user.password)
    session.answer("Write the policy for a mentor now? [Y/n]:", "n")
    session.answer("Run it as a systemd user service now? [y/N]:", "n")
    assert session.end() == 0
    assert (config_dir(root) / "config.password").read_text() == user.password + "\n"
    assert OUTBOX in dovecot.folders(user)


def test_a_wrong_password_without_a_terminal_names_the_flags_and_leaves_no_password_file(world: World) -> None:
    from tests.test_setup import cli

    root, _, user, _, where = world
    (root / "wrong").write_text("not-the-password\n")
    config = root / "c" / "config.toml"
    args = ["--config", str(config), "--address", ADDRESS, "--username", user.username, "--store", "file"]
    result = cli("setup", "--yes", *where, *args, "--password-file", str(root / "wrong"), cwd=root)
    assert result.returncode == 78, result.stdout + result.stderr
    assert "nothing was written: check --username and --password-file" in result.stderr
    assert not config.exists() and not (root / "c" / "config.password").exists()


def test_ctrl_c_at_the_password_leaves_nothing_and_a_rerun_starts_cleanly(world: World) -> None:
    root, _, user, _, where = world
    session = Session(root, *where)
    to_the_password(session, user)
    session.expect(f"Password for {user.username}:")
    session.interrupt()
    assert session.end() != 0
    left = sorted(p.name for p in config_dir(root).rglob("*")) if config_dir(root).exists() else []
    assert left == []
    first_setup(root, user, where)  # asks as a first run does
    assert load_settings(config_dir(root) / "config.toml").imap.username == user.username


def test_ctrl_c_while_logging_in_leaves_no_config_and_no_password_file(world: World) -> None:
    root, dovecot, user, _, where = world
    dovecot.stop(signal.SIGSTOP)  # the server hangs at the login: Ctrl-C comes while setup waits for it
    try:
        session = Session(root, *where)
        session.answer("Your e-mail address:", ADDRESS)
        session.answer("Your name (as mentors know you) [", "Sam Patel")
        session.answer("Your time zone [", "America/New_York")
        session.answer("Use these servers? [Y/n]:", "")
        session.answer("User name for IMAP and SMTP [", user.username)
        session.answer(f"Password for {user.username}:", user.password)
        session.expect("Logging in to IMAP and SMTP as the agent will")
        session.interrupt()
        assert session.end() != 0
    finally:
        dovecot.stop(signal.SIGCONT)
    left = sorted(p.name for p in config_dir(root).rglob("*")) if config_dir(root).exists() else []
    assert left == []


def test_a_mentor_time_zone_with_a_space_is_asked_again_with_the_right_name(world: World) -> None:
    root, _, user, _, where = world
    session = Session(root, *where)
    to_the_password(session, user)
    session.answer(f"Password for {user.username}:", user.password)
    session.answer("Write the policy for a mentor now? [Y/n]:", "y")
    session.answer("Mentor's name (e.g. Dr. Ana Rivera):", "Dr. Ana Rivera")
    session.answer("Mentor's address(es):", MENTOR)
    session.answer("Mentor's time zone [America/New_York]:", "America/New York")
    session.expect("did you mean America/New_York?")
    session.answer("Mentor's time zone [America/New_York]:", "America/Chicago")
    session.answer("At most how many messages a day [1]:", "")
    session.answer("At most how many a week [3]:", "")
    session.answer("When may mail arrive", "")
    session.answer("Run it as a systemd user service now? [y/N]:", "n")
    assert session.end() == 0
    assert 'timezone = "America/Chicago"' in (config_dir(root) / "policies" / "rivera.toml").read_text()


def rerun_to_the_mentor(root: Path, user: User, where: list[str]) -> Session:
    session = Session(root, *where)
    session.answer(f"Your e-mail address [{ADDRESS}]:", "")
    session.answer("Your name (as mentors know you) [Sam Patel]:", "")
    session.answer("Your time zone [America/New_York]:", "")
    session.answer("Use these servers? [Y/n]:", "")
    session.answer(f"User name for IMAP and SMTP [{user.username}]:", "")
    session.answer("Keep the sign-in as it is in the config? [Y/n]:", "")
    session.answer("Write the policy for a mentor now? [y/N]:", "y")
    return session


def test_a_second_mentor_with_the_first_ones_address_is_asked_again(world: World) -> None:
    root, _, user, _, where = world
    first_setup(root, user, where)
    session = rerun_to_the_mentor(root, user, where)
    session.answer("Mentor's name (e.g. Dr. Ana Rivera):", "Dr. Ben Okafor")
    session.answer("Mentor's address(es):", MENTOR)
    clash = session.expect("Mentor's address(es):")
    assert f"{MENTOR} is already Dr. Ana Rivera's (rivera.toml)" in clash
    session.child.sendline("bokafor@hospital.example.org")
    session.answer("Mentor's time zone [America/New_York]:", "")
    session.answer("At most how many messages a day [1]:", "")
    session.answer("At most how many a week [3]:", "")
    session.answer("When may mail arrive", "")
    session.answer("Run it as a systemd user service now? [y/N]:", "n")
    assert session.end() == 0
    assert (config_dir(root) / "policies" / "okafor.toml").exists()


def test_another_mentor_with_the_same_last_name_gets_a_file_of_their_own(world: World) -> None:
    root, _, user, _, where = world
    first_setup(root, user, where)
    first = (config_dir(root) / "policies" / "rivera.toml").read_text()
    session = rerun_to_the_mentor(root, user, where)
    session.answer("Mentor's name (e.g. Dr. Ana Rivera):", "Dr. Luis Rivera")
    session.answer("Mentor's address(es):", "lrivera@hospital.example.org")
    session.answer("Mentor's time zone [America/New_York]:", "")
    session.answer("At most how many messages a day [1]:", "")
    session.answer("At most how many a week [3]:", "")
    session.answer("When may mail arrive", "")
    written = session.expect("Run it as a systemd user service now? [y/N]:")
    assert "luis-rivera.toml" in written, written
    session.child.sendline("n")
    assert session.end() == 0
    assert (config_dir(root) / "policies" / "rivera.toml").read_text() == first  # Dr. Ana Rivera's, untouched


def test_the_same_mentor_again_shows_the_changes_and_asks(world: World) -> None:
    root, _, user, _, where = world
    first_setup(root, user, where)
    policy = config_dir(root) / "policies" / "rivera.toml"
    first = policy.read_text()
    session = rerun_to_the_mentor(root, user, where)
    session.answer("Mentor's name (e.g. Dr. Ana Rivera):", "Dr. Ana Rivera")
    session.answer("Mentor's address(es):", MENTOR)
    session.answer("Mentor's time zone [America/New_York]:", "America/Chicago")
    session.answer("At most how many messages a day [1]:", "2")
    session.answer("At most how many a week [3]:", "")
    session.answer("When may mail arrive", "")
    shown = session.expect("Write these changes to")
    assert "-max_per_day = 1" in shown and "+max_per_day = 2" in shown
    session.answer("[y/N]:", "")
    session.answer("Run it as a systemd user service now? [y/N]:", "n")
    assert session.end() == 0
    assert policy.read_text() == first


def test_inbox_as_the_outbox_is_refused_naming_the_flag(world: World) -> None:
    from tests.test_setup import cli

    root, _, user, _, where = world
    (root / "pw").write_text(user.password + "\n")
    config = root / "c" / "config.toml"
    args = ["--config", str(config), "--address", ADDRESS, "--username", user.username, "--store", "file"]
    result = cli("setup", "--yes", *where, *args, "--password-file", str(root / "pw"), "--outbox", "INBOX", cwd=root)
    assert result.returncode != 0
    assert "--outbox: " in result.stderr and "INBOX" in result.stderr, result.stderr
    assert not config.exists() and not (root / "c" / "config.password").exists()
    assert os.listdir(root / "c") == [] if (root / "c").exists() else True


def test_a_google_client_file_that_is_not_there_or_not_one_is_asked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BROWSER", "true")
    (tmp_path / "web-client.json").write_text('{"web": {"client_id": "x"}}')
    (tmp_path / "client.json").write_text('{"installed": {"client_id": "x", "client_secret": "y"}}')
    # Nothing leaves loopback: the sign-in is pointed at a closed port, and the "browser" does nothing.
    session = Session(tmp_path, "--no-connect", "--oauth2-authority", "https://127.0.0.1:9")
    session.child.setecho(False)
    session.answer("Your e-mail address:", "sam@gmail.com")
    session.answer("Your name (as mentors know you) [Sam]:", "")
    session.answer("Your time zone [", "Europe/Berlin")
    session.answer("Use these servers? [Y/n]:", "")
    session.answer("User name for IMAP and SMTP [sam@gmail.com]:", "")
    session.answer("OAuth client file (JSON):", "~/Downloads/client_secret.json")  # --oauth2-authority: OAuth2
    session.expect("client_secret.json: no such file")
    session.answer("OAuth client file (JSON):", str(tmp_path / "web-client.json"))
    session.expect("not a Google OAuth client file for a desktop app")
    session.answer("OAuth client file (JSON):", str(tmp_path / "client.json"))
    session.expect("Sign in to sam@gmail.com in the browser.")
    session.interrupt()
    assert session.end() != 0
    assert not (tmp_path / "config" / "mentor-agent" / "config.toml").exists()


def test_a_domain_where_nothing_is_found_asks_whether_it_is_spelled_right(tmp_path: Path) -> None:
    from tests.servers.autoconfig import AutoconfigServer
    from tests.servers.dns_server import DnsServer

    with AutoconfigServer({}) as web, DnsServer({}) as dns:
        session = Session(tmp_path, "--autoconfig-url", web.url, "--dns-server", dns.address, "--no-connect")
        session.answer("Your e-mail address:", "sam@uni.exmaple")
        session.answer("Your name (as mentors know you) [Sam]:", "")
        session.answer("Your time zone [", "Europe/Berlin")
        said = session.expect("IMAP server (host name):")
        assert "Found nothing" in said and "Is uni.exmaple spelled right? If not, stop here (Ctrl-C)" in said
        session.interrupt()
        assert session.end() != 0
    assert not (tmp_path / "config").exists() or not list((tmp_path / "config").rglob("*.toml"))


def test_a_wrong_password_on_a_rerun_puts_the_old_password_file_back(world: World) -> None:
    from tests.test_setup import cli

    root, _, user, _, where = world
    config = root / "c" / "config.toml"
    args = ["--config", str(config), "--address", ADDRESS, "--username", user.username, "--store", "file", *where]
    (root / "right").write_text(user.password + "\n")
    (root / "wrong").write_text("not-the-password\n")
    assert cli("setup", "--yes", *args, "--password-file", str(root / "right"), cwd=root).returncode == 0
    before = config.read_text()
    again = cli("setup", "--yes", "--force", *args, "--password-file", str(root / "wrong"), cwd=root)
    assert again.returncode == 78, again.stdout + again.stderr
    assert (root / "c" / "config.password").read_text() == user.password + "\n"
    assert config.read_text() == before


def test_a_week_cap_below_the_day_cap_is_asked_again_as_it_is_typed(tmp_path: Path) -> None:
    flags = ["--address", "sam@icloud.com", "--name", "Sam", "--timezone", "Europe/Berlin", "--provider", "icloud"]
    flags += ["--username", "sam@icloud.com", "--password-command", "cat /dev/null", "--no-connect"]
    session = Session(tmp_path, *flags, "--mentor-name", "Dr. Ana Rivera", "--mentor-address", MENTOR)
    session.answer("Use these servers? [Y/n]:", "")
    session.answer("Mentor's time zone [Europe/Berlin]:", "")
    session.answer("At most how many messages a day [1]:", "3")
    session.answer("At most how many a week [3]:", "2")
    session.expect("must be at least 3: a week holds at least the messages of one day")
    session.answer("At most how many a week [3]:", "4")
    session.answer("When may mail arrive", "")
    session.answer("Run it as a systemd user service now? [y/N]:", "")
    assert session.end() == 0, session.transcript.getvalue()
    assert "max_per_week = 4" in (config_dir(tmp_path) / "policies" / "rivera.toml").read_text()


def test_ctrl_c_in_the_policy_questions_leaves_a_config_that_check_accepts(world: World) -> None:
    """Found by the tester (F4): the config was written, then Ctrl-C at a mentor question left no policies folder,
    and `check` and `run` refused the config (exit 78)."""
    root, _, user, _, where = world
    session = Session(root, *where)
    to_the_password(session, user)
    session.answer(f"Password for {user.username}:", user.password)
    session.answer("Write the policy for a mentor now? [Y/n]:", "y")
    session.expect("Mentor's name (e.g. Dr. Ana Rivera):")
    session.interrupt()
    assert session.end() != 0
    settings = load_settings(config_dir(root) / "config.toml")
    assert settings.policies_dir.is_dir(), session.transcript.getvalue()


def test_a_week_flag_below_the_typed_day_cap_is_asked_again(world: World) -> None:
    """Found by the tester (F4): `--per-week 3` with 5 typed as the day's cap failed after the config was
    written; in a terminal the week's cap is asked again, saying why."""
    root, _, user, _, where = world
    session = Session(root, *where, "--per-week", "3")
    to_the_password(session, user)
    session.answer(f"Password for {user.username}:", user.password)
    session.answer("Write the policy for a mentor now? [Y/n]:", "y")
    session.answer("Mentor's name (e.g. Dr. Ana Rivera):", "Dr. Ana Rivera")
    session.answer("Mentor's address(es):", MENTOR)
    session.answer("Mentor's time zone [America/New_York]:", "America/Chicago")
    session.answer("At most how many messages a day [1]:", "5")
    said = session.expect("At most how many a week [5]:")
    assert "--per-week 3: must be at least --per-day (5)" in said
    session.child.sendline("")
    session.answer("When may mail arrive", "")
    session.answer("Run it as a systemd user service now? [y/N]:", "n")
    assert session.end() == 0, session.transcript.getvalue()
    assert "max_per_week = 5" in (config_dir(root) / "policies" / "rivera.toml").read_text()
