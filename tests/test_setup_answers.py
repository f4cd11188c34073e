"""`mentor-agent setup` without servers (``--no-connect``): what it writes for each kind of account, and the
sign-in it hands to :func:`agent.mail.oauth.sign_in`. Nothing here reaches a network: presets need no lookup."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from agent.cli.main import main
from agent.config.settings import Credentials, load_settings
from agent.rules.policy import read_toml


def setup(tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(
        main,
        ["setup", "--yes", "--no-connect", "--config", str(tmp_path / "config.toml"), *args],
        catch_exceptions=False,
    )


STUDENT = ("--address", "sam@icloud.com", "--name", "Sam Patel", "--timezone", "Europe/Berlin", "--state-dir", "state")


def test_an_app_password_account_from_a_preset_keeps_the_password_out_of_the_config(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("abcd-efgh-ijkl-mnop\n")
    result = setup(tmp_path, *STUDENT, "--password-file", str(tmp_path / "pw"), "--store", "file")
    assert result.exit_code == 0, result.output
    assert (
        "iCloud Mail wants an app password, not your usual one: make one at https://account.apple.com" in result.output
    )
    assert (
        "Found in preset iCloud Mail:\n  IMAP imap.mail.me.com:993 (tls)\n  SMTP smtp.mail.me.com:587 (starttls)"
        in result.output
    )
    config = tmp_path / "config.toml"
    assert "abcd-efgh" not in config.read_text()
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    settings = load_settings(config)
    assert (settings.imap.host, settings.smtp.host, settings.smtp.provider) == (
        "imap.mail.me.com",
        "smtp.mail.me.com",
        "icloud",
    )
    assert settings.imap.password_command == settings.smtp.password_command == f"cat {tmp_path / 'config.password'}"
    assert "No policy yet" in result.output  # no mentor flags: none written, and it says so


def test_without_a_password_and_without_a_terminal_it_names_the_flag(tmp_path: Path) -> None:
    result = setup(tmp_path, *STUDENT)
    assert result.exit_code == 1
    assert "error: --password-file: needed when setup cannot ask (Password for sam@icloud.com)" in result.stderr
    assert not (tmp_path / "config.toml").exists()


def test_a_bad_answer_given_as_a_flag_is_refused_naming_the_flag(tmp_path: Path) -> None:
    result = setup(tmp_path, "--address", "sam@icloud.com", "--timezone", "Mars/Olympus", "--password-command", "cat x")
    assert result.exit_code == 1
    assert "error: --timezone: " in result.stderr and "Mars/Olympus" in result.stderr


def test_the_policy_from_flags_is_checked_by_the_policy_rules(tmp_path: Path) -> None:
    args = [*STUDENT, "--password-command", "cat /dev/null", "--mentor-name", "Dr. Ana Rivera"]
    args += ["--mentor-address", "arivera@hospital.example.org", "--mentor-timezone", "America/Chicago"]
    bad = setup(tmp_path, *args, "--window", "Mon-Fri 17:00-08:00")
    assert (
        bad.exit_code == 1 and "error: --window: 'Mon-Fri 17:00-08:00': the end must be after the start" in bad.stderr
    )
    good = setup(tmp_path, "--force", *args, "--window", "Tue 16:00-17:00", "--per-day", "2", "--per-week", "4")
    assert good.exit_code == 0, good.output
    policy = tmp_path / "policies" / "rivera.toml"
    _, data = read_toml(policy)
    assert data["mentor"] == {
        "name": "Dr. Ana Rivera",
        "addresses": ["arivera@hospital.example.org"],
        "timezone": "America/Chicago",
        "pronoun": "they",
    }
    assert data["email"]["max_per_day"] == 2 and data["email"]["send_windows"] == ["Tue 16:00-17:00"]
    other = tmp_path / "policies" / "chen.toml"
    other.write_text(policy.read_text().replace("Dr. Ana Rivera", "Dr. Chen"))
    clash = setup(tmp_path, *args, "--mentor-name", "Dr. Li")
    assert clash.exit_code == 1, clash.output
    assert "arivera@hospital.example.org" in clash.stderr, clash.stderr
    assert "error: --mentor-address: arivera@hospital.example.org is already Dr. " in clash.stderr, clash.stderr
    assert not (tmp_path / "policies" / "li.toml").exists()


@pytest.mark.parametrize(
    ("provider", "flags", "expected"),
    [
        (
            "outlook.com",
            ["--oauth2-client-id", "00000000-1111-2222-3333-444444444444"],
            {
                "oauth2": "microsoft",
                "oauth2_client_id": "00000000-1111-2222-3333-444444444444",
                "oauth2_tenant": "consumers",
            },
        ),
        (
            "microsoft365",
            ["--oauth2-client-id", "abc"],
            {"oauth2": "microsoft", "oauth2_client_id": "abc", "oauth2_tenant": "organizations"},
        ),
    ],
)
def test_microsoft_accounts_sign_in_through_the_built_in_sign_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provider: str, flags: list[str], expected: dict[str, str]
) -> None:
    calls: list[dict[str, Any]] = []

    def sign_in(creds: Credentials, **kwargs: Any) -> None:
        calls.append({"creds": creds, **kwargs})

    monkeypatch.setattr("agent.mail.oauth.sign_in", sign_in)
    result = setup(tmp_path, *STUDENT[2:], "--address", "sam@uni.example", "--provider", provider, *flags)
    assert result.exit_code == 0, result.output
    [call] = calls
    assert call["username"] == "sam@uni.example" and call["state_dir"] == Path("state").resolve()
    assert call["creds"].oauth2 == "microsoft" and call["creds"].oauth2_client_id == expected["oauth2_client_id"]
    _, data = read_toml(tmp_path / "config.toml")
    for section in ("imap", "smtp"):
        assert {k: data[section][k] for k in expected} == expected
        assert not {"password", "password_command", "keyring_service"} & set(data[section])


def test_google_without_a_client_file_and_without_a_terminal_explains_and_names_the_flag(tmp_path: Path) -> None:
    result = setup(tmp_path, *STUDENT[2:], "--address", "sam@gmail.com", "--auth", "oauth2")
    assert result.exit_code == 1
    assert 'Signing in to Google needs an OAuth client of type "Desktop app"' in result.output
    assert "error: --oauth2-client-file: needed when setup cannot ask" in result.stderr


class FakeKeyring:
    """Stands in for the keyring package's module: no Secret Service runs in the test machine."""

    def __init__(self) -> None:
        self.stored: dict[tuple[str, str], str] = {}

    def get_keyring(self) -> object:
        return self

    def set_password(self, service: str, username: str, password: str) -> None:
        self.stored[(service, username)] = password

    def get_password(self, service: str, username: str) -> str | None:
        return self.stored.get((service, username))

    def delete_password(self, service: str, username: str) -> None:
        del self.stored[(service, username)]


def test_with_a_keyring_the_password_goes_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeKeyring()
    monkeypatch.setattr("agent.cli.setup_account.keyring_backend", lambda: fake)
    monkeypatch.setattr("agent.daemon.preflight.importlib.util.find_spec", lambda name: object())
    (tmp_path / "pw").write_text("app-password\n")
    result = setup(tmp_path, *STUDENT, "--password-file", str(tmp_path / "pw"))
    assert result.exit_code == 0, result.output
    assert fake.stored == {("mentor-agent", "sam@icloud.com"): "app-password"}
    settings = load_settings(tmp_path / "config.toml")
    assert settings.imap.keyring_service == settings.smtp.keyring_service == "mentor-agent"
    assert not (tmp_path / "config.password").exists()


def test_a_password_written_in_the_config_by_hand_moves_out_of_it(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("first\n")
    assert setup(tmp_path, *STUDENT, "--password-file", str(tmp_path / "pw"), "--store", "file").exit_code == 0
    config = tmp_path / "config.toml"
    text = config.read_text()
    config.write_text(text.replace(f'password_command = "cat {tmp_path / "config.password"}"', 'password = "by-hand"'))
    result = setup(tmp_path, "--force", "--store", "file")
    assert result.exit_code == 0, result.output
    assert "by-hand" not in config.read_text() and '-password = "by-hand"' in result.output
    assert (tmp_path / "config.password").read_text() == "by-hand\n"


def test_a_change_that_is_not_agreed_stores_no_secret(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("first\n")
    assert setup(tmp_path, *STUDENT, "--password-file", str(tmp_path / "pw"), "--store", "file").exit_code == 0
    (tmp_path / "pw").write_text("second\n")
    refused = setup(tmp_path, *STUDENT, "--name", "Samira", "--password-file", str(tmp_path / "pw"), "--store", "file")
    assert refused.exit_code == 1 and "give --force" in refused.stderr
    assert (tmp_path / "config.password").read_text() == "first\n"


def test_servers_not_found_and_not_given_name_the_flag(tmp_path: Path) -> None:
    from tests.servers.autoconfig import AutoconfigServer
    from tests.servers.dns_server import DnsServer

    with AutoconfigServer({}) as web, DnsServer({}) as dns:
        where = ["--autoconfig-url", web.url, "--dns-server", dns.address]
        result = setup(tmp_path, "--address", "sam@nowhere.example", "--password-command", "cat /dev/null", *where)
    assert result.exit_code == 1
    assert "Found nothing (looked at: " in result.output
    assert "error: --imap-host: needed when setup cannot ask (IMAP server (host name))" in result.stderr


@pytest.mark.parametrize(
    ("flags", "kind"),
    [(["--oauth2-client-id", "abc"], "microsoft"), (["--oauth2-client-file", "client.json"], "google")],
)
def test_a_sign_in_flag_with_servers_given_by_hand_means_oauth2_and_whose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flags: list[str], kind: str
) -> None:
    (tmp_path / "client.json").write_text('{"installed": {"client_id": "g", "client_secret": "s"}}')
    monkeypatch.chdir(tmp_path)
    calls: list[Credentials] = []
    monkeypatch.setattr("agent.mail.oauth.sign_in", lambda creds, **kwargs: calls.append(creds))
    servers = ["--imap-host", "mail.uni.example", "--smtp-host", "mail.uni.example", "--address", "sam@uni.example"]
    result = setup(tmp_path, *STUDENT[2:], *servers, *flags)
    assert result.exit_code == 0, result.output
    assert [creds.oauth2 for creds in calls] == [kind]
    assert load_settings(tmp_path / "config.toml").smtp.oauth2 == kind


def test_inbox_as_the_outbox_names_the_flag_or_the_file_it_came_from(tmp_path: Path) -> None:
    args = [*STUDENT, "--password-command", "cat /dev/null"]
    flagged = setup(tmp_path, *args, "--outbox", "INBOX")
    assert flagged.exit_code == 1 and "error: --outbox: 'INBOX'" in flagged.stderr, flagged.stderr
    assert not (tmp_path / "config.toml").exists()
    assert setup(tmp_path, *args).exit_code == 0
    config = tmp_path / "config.toml"
    config.write_text(config.read_text() + '\n[imap.folders]\noutbox = "INBOX"\n')
    by_hand = setup(tmp_path, "--force", *args)
    assert by_hand.exit_code == 1 and f"error: {config}:" in by_hand.stderr, by_hand.stderr
    assert "imap.folders.outbox: 'INBOX'" in by_hand.stderr


def test_addresses_pasted_with_a_name_are_taken_as_the_address(tmp_path: Path) -> None:
    args = ["--address", "Sam Patel <sam@icloud.com>", "--password-command", "cat /dev/null"]
    args += ["--mentor-name", "Dr. Ana Rivera", "--mentor-address", "Dr. Ana Rivera <arivera@hospital.example.org>"]
    result = setup(tmp_path, *args, "--mentor-address", "Ana.Rivera@Hospital.example.org")
    assert result.exit_code == 0, result.output
    assert load_settings(tmp_path / "config.toml").student.address == "sam@icloud.com"
    _, data = read_toml(tmp_path / "policies" / "rivera.toml")
    assert data["mentor"]["addresses"] == ["arivera@hospital.example.org", "Ana.Rivera@Hospital.example.org"]


MENTOR_FLAGS = ("--mentor-name", "Dr. Ana Rivera", "--mentor-address", "arivera@hospital.example.org")


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (("--window", "Mon-Fri 17:00-08:00"), "error: --window: 'Mon-Fri 17:00-08:00': the end must be after"),
        (("--mentor-timezone", "Mars/Olympus"), "error: --mentor-timezone: "),
        (("--per-day", "3", "--per-week", "2"), "error: --per-week: must be at least --per-day (3)"),
        (("--mentor-address", "not-an-address"), "error: --mentor-address: 'not-an-address' is not an e-mail"),
    ],
)
def test_a_bad_mentor_answer_without_a_terminal_writes_nothing(
    tmp_path: Path, flags: tuple[str, ...], expected: str
) -> None:
    result = setup(tmp_path, *STUDENT, "--password-command", "cat /dev/null", *MENTOR_FLAGS, *flags)
    assert result.exit_code == 1, result.output
    assert expected in result.stderr, result.stderr
    assert not (tmp_path / "config.toml").exists() and not (tmp_path / "policies").exists()


def test_a_mentor_name_without_an_address_and_without_a_terminal_writes_nothing(tmp_path: Path) -> None:
    result = setup(tmp_path, *STUDENT, "--password-command", "cat /dev/null", "--mentor-name", "Dr. Ana Rivera")
    assert result.exit_code == 1 and "error: --mentor-address: needed when setup cannot ask" in result.stderr
    assert not (tmp_path / "config.toml").exists()


def test_setup_without_a_mentor_leaves_a_state_that_check_accepts(tmp_path: Path) -> None:
    result = setup(tmp_path, *STUDENT, "--password-command", "cat /dev/null")
    assert result.exit_code == 0, result.output
    assert f"No policy yet: `run` waits for one in {tmp_path / 'policies'}." in result.output
    assert (tmp_path / "policies").is_dir()
    checked = CliRunner().invoke(main, ["check", "--config", str(tmp_path / "config.toml")])
    assert checked.exit_code == 0, checked.output
    assert "`run` waits for one" in checked.output


def test_a_good_policy_is_not_written_when_the_config_is_refused(tmp_path: Path) -> None:
    args = [*STUDENT, "--password-command", "cat /dev/null", *MENTOR_FLAGS, "--outbox", "INBOX"]
    result = setup(tmp_path, *args)
    assert result.exit_code == 1 and "--outbox" in result.stderr, result.output
    assert not (tmp_path / "config.toml").exists() and not (tmp_path / "policies").exists()


def test_a_policy_that_would_change_without_force_fails_before_the_config_is_written(tmp_path: Path) -> None:
    """Found by the tester (F5): config.toml and the stored password were written, then setup failed on the
    policy file (`--force` needed): a half-done setup. Now nothing is written."""
    (tmp_path / "policies").mkdir()
    setup(tmp_path, *STUDENT, "--password-command", "cat /dev/null", *MENTOR_FLAGS)
    (tmp_path / "config.toml").unlink()
    args = [*STUDENT, "--password-file", str(tmp_path / "pw"), "--store", "file", *MENTOR_FLAGS, "--per-week", "9"]
    (tmp_path / "pw").write_text("secret\n")
    result = setup(tmp_path, *args)
    assert result.exit_code == 1 and "--force" in result.stderr, result.output
    assert not (tmp_path / "config.toml").exists() and not (tmp_path / "config.password").exists(), result.output


def test_mentor_answers_without_a_mentor_name_and_without_a_terminal_name_the_flag(tmp_path: Path) -> None:
    """Found by the tester (F5): every mentor answer was dropped without a word when --mentor-name was missing."""
    result = setup(
        tmp_path, *STUDENT, "--password-command", "cat /dev/null", "--per-day", "2", "--window", "Tue 09:00-10:00"
    )
    assert result.exit_code == 1 and "error: --mentor-name:" in result.stderr, result.output
    assert "--per-day" in result.stderr and not (tmp_path / "config.toml").exists()
