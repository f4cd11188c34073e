"""Where passwords and tokens come from, and that none of them ever shows up in an error, a log line or a repr."""

from __future__ import annotations

import io
import logging
import shlex
import sys
import traceback
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from agent import logs
from agent.config.settings import Credentials
from agent.errors import UserError
from agent.mail import credentials as secrets
from agent.mail.credentials import Secret, check_secret_file, resolve

SECRET = "Tr0ub4dor&3-horse-battery"


@pytest.fixture(autouse=True)
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Everything logged during the test, through the daemon's own handler; no secret may be in it."""
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("MENTOR_AGENT_IMAP__PASSWORD", raising=False)
    monkeypatch.setattr(secrets, "_warned_plain", set())
    # Only this test's secrets are redacted: one that another test in this worker registered (a one-letter
    # password) would mask letters of the text asserted on here.
    monkeypatch.setattr(logs, "_secrets", type(logs._secrets)())
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out = io.StringIO()
    logs.setup_logging("DEBUG", stream=out)
    yield out
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    assert SECRET not in out.getvalue()


def script(tmp_path: Path, body: str, name: str = "cmd") -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o700)
    return shlex.quote(str(path))


def private(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


def failure(creds: Credentials, env: dict[str, str] | None = None) -> str:
    """The message of the UserError ``resolve`` raises, checked to hold no secret: not in its text, its
    problems, nor anywhere in the traceback the CLI would print with --debug (chained exceptions included)."""
    with pytest.raises(UserError) as raised:
        resolve(creds, section="imap", config_file="/home/s/config.toml", env=env or {})
    text = repr(raised.value.problems) + "".join(traceback.format_exception(raised.value))
    assert SECRET not in text
    return str(raised.value)


# --- the Secret value -------------------------------------------------------------------------------------


def test_secret_never_shows_its_value() -> None:
    secret = Secret(kind="password", value=SECRET)
    for text in (repr(secret), str(secret), f"{secret}", repr([secret]), repr({"s": secret})):
        assert SECRET not in text
        assert "password" in text
    assert secret.value == SECRET


# --- order of preference ----------------------------------------------------------------------------------


def test_oauth2_command_wins_and_runs_afresh_each_time(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    command = script(
        tmp_path, f'n=$(( $(cat {counter} 2>/dev/null || echo 0) + 1 )); echo $n > {counter}; echo "token-$n"'
    )
    creds = Credentials(oauth2_token_command=command, password_command="false", password=SecretStr("x"))
    first = resolve(creds, section="imap", env={})
    second = resolve(creds, section="imap", env={})
    assert first == Secret("oauth2", "token-1")
    assert second == Secret("oauth2", "token-2")


def test_password_command_first_line_stripped(tmp_path: Path) -> None:
    command = script(tmp_path, f"printf '  {SECRET}  \\nlogin: me\\n'")
    creds = Credentials(password_command=command + " --some 'quoted arg'", password=SecretStr("plain"))
    assert resolve(creds, section="imap", env={"MENTOR_AGENT_IMAP__PASSWORD": "env"}) == Secret("password", SECRET)


def test_password_command_runs_without_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    command = script(tmp_path, 'echo "$1"') + f" 'a; touch {marker}'"
    secret = resolve(Credentials(password_command=command), section="imap", env={})
    assert secret == Secret("password", f"a; touch {marker}") and not marker.exists()


def test_systemd_credential_default_name(tmp_path: Path) -> None:
    private(tmp_path / "imap-password", SECRET + "\n")
    creds = Credentials(password=SecretStr("plain"))
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path), "MENTOR_AGENT_IMAP__PASSWORD": "env"}
    assert resolve(creds, section="imap", env=env) == Secret("password", SECRET)
    # the default name follows the section; no smtp-password there means: look further
    assert resolve(Credentials(), section="smtp", env={"CREDENTIALS_DIRECTORY": str(tmp_path)}) is None


def test_systemd_credential_named(tmp_path: Path) -> None:
    private(tmp_path / "uni-mail", SECRET)
    creds = Credentials(credential="uni-mail")
    assert resolve(creds, section="smtp", env={"CREDENTIALS_DIRECTORY": str(tmp_path)}) == Secret("password", SECRET)


def test_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, str]] = []

    def get_password(service: str, username: str) -> str:
        asked.append((service, username))
        return SECRET

    monkeypatch.setitem(sys.modules, "keyring", types.SimpleNamespace(get_password=get_password))
    creds = Credentials(username="s@uni.example", keyring_service="mentor-agent-imap", password=SecretStr("plain"))
    assert resolve(creds, section="imap", env={"MENTOR_AGENT_IMAP__PASSWORD": "env"}) == Secret("password", SECRET)
    assert asked == [("mentor-agent-imap", "s@uni.example")]


def test_environment_variable_before_config_password(captured: io.StringIO) -> None:
    creds = Credentials(password=SecretStr(SECRET))  # as pydantic-settings maps it from the environment
    assert resolve(creds, section="imap", env={"MENTOR_AGENT_IMAP__PASSWORD": SECRET}) == Secret("password", SECRET)
    assert "stored in the config file" not in captured.getvalue()


def test_config_password_accepted_with_one_warning(tmp_path: Path, captured: io.StringIO) -> None:
    config = private(tmp_path / "config.toml", "[imap]\npassword = 'x'\n")
    creds = Credentials(password=SecretStr(SECRET))
    for _ in range(3):
        assert resolve(creds, section="imap", config_file=str(config), env={}) == Secret("password", SECRET)
    assert captured.getvalue().count("[imap].password is stored in the config file") == 1
    assert "password_command" in captured.getvalue()


def test_nothing_configured() -> None:
    assert resolve(Credentials(username="me"), section="imap", env={}) is None


def test_found_secrets_are_redacted_from_later_logs(tmp_path: Path, captured: io.StringIO) -> None:
    creds = Credentials(password_command=script(tmp_path, f"echo '{SECRET}'"))
    secret = resolve(creds, section="imap", env={})
    assert secret is not None
    logging.getLogger("imaplib.debug").debug("LOGIN me %s", secret.value)
    assert "LOGIN me ***" in captured.getvalue()  # the fixture checks the secret itself is absent


# --- failures name the key and never the secret ----------------------------------------------------------


def test_command_failing_names_key_status_and_stderr(tmp_path: Path) -> None:
    command = script(tmp_path, f"echo '{SECRET}'; echo 'gpg: decryption failed: {SECRET}' >&2; exit 2", "pass")
    message = failure(Credentials(password_command=command))
    assert message.startswith("/home/s/config.toml: [imap].password_command: ")
    assert "exited with status 2" in message and "gpg: decryption failed: ***" in message


def test_oauth2_command_failing_names_its_key(tmp_path: Path) -> None:
    message = failure(Credentials(oauth2_token_command=script(tmp_path, f"echo '{SECRET}'; exit 1")))
    assert "[imap].oauth2_token_command" in message and "status 1 (nothing on stderr)" in message


def test_command_printing_nothing(tmp_path: Path) -> None:
    message = failure(Credentials(password_command=script(tmp_path, f"echo; echo '{SECRET}'")))
    assert "printed nothing on its first line" in message


def test_command_not_found_and_unsplittable() -> None:
    assert "command not found: /nonexistent/pass" in failure(Credentials(password_command="/nonexistent/pass show"))
    assert "cannot be split into words" in failure(Credentials(password_command=f"pass '{SECRET}"))


def test_command_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secrets, "COMMAND_TIMEOUT", 0.3)
    message = failure(Credentials(password_command=script(tmp_path, f"echo '{SECRET}'; exec sleep 5")))
    assert "did not finish within 0.3 s" in message


def test_named_credential_missing(tmp_path: Path) -> None:
    assert "$CREDENTIALS_DIRECTORY is not set" in failure(Credentials(credential="imap-pw"))
    message = failure(Credentials(credential="imap-pw"), env={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert "[imap].credential" in message and "no credential 'imap-pw'" in message


def test_readable_credential_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "imap-password"
    path.write_text(SECRET)
    path.chmod(0o644)
    message = failure(Credentials(), env={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert message == f"{path}: is readable by group or others (mode 0644); run chmod 600 {path}"


def test_readable_config_with_password_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f"[imap]\npassword = '{SECRET}'\n")
    config.chmod(0o640)
    with pytest.raises(UserError) as raised:
        resolve(Credentials(password=SecretStr(SECRET)), section="imap", config_file=str(config), env={})
    assert str(raised.value) == f"{config}: is readable by group or others (mode 0640); run chmod 600 {config}"


def test_keyring_missing_empty_or_broken(monkeypatch: pytest.MonkeyPatch) -> None:
    creds = Credentials(username="me", keyring_service="mail")
    monkeypatch.setitem(sys.modules, "keyring", None)  # import keyring raises ImportError
    assert "keyring package is not installed" in failure(creds)

    monkeypatch.setitem(sys.modules, "keyring", types.SimpleNamespace(get_password=lambda service, user: None))
    assert "has no password for service 'mail' and user 'me'" in failure(creds)

    def broken(service: str, user: str) -> str:
        raise RuntimeError(f"backend dump: {SECRET}")

    monkeypatch.setitem(sys.modules, "keyring", types.SimpleNamespace(get_password=broken))
    assert failure(creds).endswith("keyring lookup failed (RuntimeError)")


# --- check_secret_file ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700, 0o620])
def test_private_modes_pass(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "secret"
    path.write_text("x")
    path.chmod(mode)
    check_secret_file(path)
    assert path.stat().st_mode & 0o777 == mode  # checked, not changed


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o444])
def test_readable_modes_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "my secret"
    path.write_text("x")
    path.chmod(mode)
    with pytest.raises(UserError, match=f"mode {mode:04o}") as raised:
        check_secret_file(str(path))
    assert str(raised.value).endswith(f"run chmod 600 '{path}'")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot check its permissions"):
        check_secret_file(tmp_path / "absent")
