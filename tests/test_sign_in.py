"""Built-in sign-in (agent.mail.oauth) against a fake authorization server on loopback (tests/servers/oauth.py).

Microsoft's device-code flow through msal and Google's installed-app loopback flow through google-auth-oauthlib,
end to end over HTTPS (the tests' trustme CA, given to requests by REQUESTS_CA_BUNDLE): polling with
authorization_pending and slow_down, refresh, a rotated refresh token saved at once, and an expired or revoked
grant raising SignInNeeded. Nothing here leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config.settings import Credentials
from agent.errors import SignInNeeded, UserError
from agent.logs import redact
from agent.mail import oauth
from agent.mail.grants import write_private
from tests.servers.fixtures import TlsFiles
from tests.servers.oauth import FakeAuthServer

USER = "student@example.edu"


@pytest.fixture
def fake_auth(tls_ca: TlsFiles, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAuthServer]:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_ca.ca_pem))  # requests (msal, google-auth) trusts the test CA
    for proxy in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    server = FakeAuthServer(tls_ca.cert_pem, tls_ca.key_pem, username=USER)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def microsoft(server: FakeAuthServer, **changes: object) -> Credentials:
    values: dict[str, object] = {
        "username": USER,
        "oauth2": "microsoft",
        "oauth2_client_id": server.client_id,
        "oauth2_authority": server.base,
    }
    values.update(changes)
    return Credentials.model_validate(values)


def google_client(tmp_path: Path, server: FakeAuthServer) -> Path:
    path = tmp_path / "client.json"
    client = {
        "installed": {
            "client_id": server.client_id,
            "client_secret": "test-client-secret",
            "auth_uri": "https://accounts.google.invalid/o/oauth2/auth",  # replaced by oauth2_authority
            "token_uri": "https://oauth2.google.invalid/token",
            "redirect_uris": ["http://localhost"],
        }
    }
    path.write_text(json.dumps(client))
    return path


def google(server: FakeAuthServer, tmp_path: Path) -> Credentials:
    return Credentials(
        username=USER,
        oauth2="google",
        oauth2_client_file=google_client(tmp_path, server),
        oauth2_authority=server.base,
    )


def browser(tls_ca: TlsFiles) -> tuple[list[str], object]:
    """Plays the student's browser: follows the sign-in page's redirect to the loopback server."""
    opened: list[str] = []

    def open_browser(url: str) -> bool:
        opened.append(url)
        import ssl

        context = ssl.create_default_context(cafile=str(tls_ca.ca_pem))
        with urllib.request.urlopen(url, context=context, timeout=10) as answer:  # follows the 302 to 127.0.0.1
            answer.read()
        return True

    return opened, open_browser


def grant_file(state: Path) -> Path:
    files = list((state / "grants").glob("*.json"))
    assert len(files) == 1, files
    return files[0]


# -- Microsoft: device code ------------------------------------------------------------------------------------


def test_microsoft_device_code_waits_through_pending_and_slow_down(fake_auth: FakeAuthServer, tmp_path: Path) -> None:
    fake_auth.state.device_answers.extend(["authorization_pending", "slow_down"])
    said: list[str] = []
    creds = microsoft(fake_auth)
    oauth.sign_in(creds, username=USER, state_dir=tmp_path, say=said.append)
    polls = fake_auth.grants("urn:ietf:params:oauth:grant-type:device_code")
    assert len(polls) == 3  # pending, slow down, then the tokens
    assert any("ABCD-EFGH" in line and "/devicelogin" in line for line in said), said
    path = grant_file(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    token = oauth.access_token(creds, username=USER, state_dir=tmp_path)
    assert fake_auth.active(token) is not None
    assert redact(f"token {token}") == "token ***"


def test_microsoft_refresh_rotates_and_saves_at_once(fake_auth: FakeAuthServer, tmp_path: Path) -> None:
    fake_auth.expires_in = 60  # within msal's five-minute margin: every access_token() refreshes
    creds = microsoft(fake_auth)
    oauth.sign_in(creds, username=USER, state_dir=tmp_path, say=lambda _: None)
    (first_refresh,) = fake_auth.live_refresh_tokens()
    token = oauth.access_token(creds, username=USER, state_dir=tmp_path, section="smtp")
    assert fake_auth.active(token) is not None
    refreshes = fake_auth.grants("refresh_token")
    assert len(refreshes) == 1 and refreshes[0]["refresh_token"] == first_refresh
    assert "https://outlook.office.com/SMTP.Send" in refreshes[0]["scope"]
    (rotated,) = fake_auth.live_refresh_tokens()
    assert rotated != first_refresh
    assert rotated in grant_file(tmp_path).read_text()  # saved before access_token returned
    assert first_refresh not in grant_file(tmp_path).read_text()
    again = oauth.access_token(creds, username=USER, state_dir=tmp_path)
    assert again != token and fake_auth.grants("refresh_token")[-1]["refresh_token"] == rotated


def test_microsoft_revoked_grant_raises_sign_in_needed(fake_auth: FakeAuthServer, tmp_path: Path) -> None:
    fake_auth.expires_in = 60
    creds = microsoft(fake_auth)
    oauth.sign_in(creds, username=USER, state_dir=tmp_path, say=lambda _: None)
    fake_auth.revoke_all()
    with pytest.raises(SignInNeeded) as raised:
        oauth.access_token(creds, username=USER, state_dir=tmp_path, section="imap")
    assert "sign in again with: mentor-agent login" in str(raised.value)
    assert "invalid_grant" in str(raised.value) and raised.value.section == "imap"
    assert "rt-" not in str(raised.value) and "at-" not in str(raised.value)


def test_microsoft_expired_device_code_is_a_clear_error(fake_auth: FakeAuthServer, tmp_path: Path) -> None:
    fake_auth.state.device_answers.append("expired_token")
    with pytest.raises(UserError, match="did not finish: expired_token"):
        oauth.sign_in(microsoft(fake_auth), username=USER, state_dir=tmp_path, say=lambda _: None)
    assert not (tmp_path / "grants").exists() or not list((tmp_path / "grants").iterdir())


def test_not_signed_in_yet_says_how(fake_auth: FakeAuthServer, tmp_path: Path) -> None:
    with pytest.raises(SignInNeeded, match=r"\[smtp\] is not signed in to Microsoft yet; sign in again with"):
        oauth.access_token(microsoft(fake_auth), username=USER, state_dir=tmp_path, section="smtp")


def test_microsoft_needs_a_client_id(tmp_path: Path) -> None:
    creds = Credentials(username=USER, oauth2="microsoft")
    with pytest.raises(UserError, match=r"\[smtp\]\.oauth2_client_id: .*school"):
        oauth.sign_in(creds, username=USER, state_dir=tmp_path, say=print, section="smtp")


# -- Google: installed-app loopback flow ---------------------------------------------------------------------


def test_google_loopback_flow_and_refresh(fake_auth: FakeAuthServer, tmp_path: Path, tls_ca: TlsFiles) -> None:
    creds = google(fake_auth, tmp_path)
    opened, open_browser = browser(tls_ca)
    said: list[str] = []
    oauth.sign_in(creds, username=USER, state_dir=tmp_path / "state", say=said.append, open_browser=open_browser)  # type: ignore[arg-type]
    assert len(opened) == 1 and opened[0].startswith(f"{fake_auth.base}/o/oauth2/auth?")
    assert "code_challenge=" in opened[0] and "access_type=offline" in opened[0]
    assert any("7 days" in line and "Testing" in line for line in said), said
    (code_exchange,) = fake_auth.grants("authorization_code")
    assert code_exchange["redirect_uri"].startswith("http://127.0.0.1:")
    path = grant_file(tmp_path / "state")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "test-client-secret" not in path.read_text()  # the client secret stays in the client file
    token = oauth.access_token(creds, username=USER, state_dir=tmp_path / "state")
    assert fake_auth.active(token) is not None


def test_google_rotated_refresh_token_saved_and_revocation(
    fake_auth: FakeAuthServer, tmp_path: Path, tls_ca: TlsFiles
) -> None:
    creds = google(fake_auth, tmp_path)
    _, open_browser = browser(tls_ca)
    oauth.sign_in(creds, username=USER, state_dir=tmp_path, say=lambda _: None, open_browser=open_browser)  # type: ignore[arg-type]
    (first,) = fake_auth.live_refresh_tokens()
    from agent.mail import oauth_google

    oauth_google._tokens.clear()  # this process forgets the access token: the next connect refreshes
    token = oauth.access_token(creds, username=USER, state_dir=tmp_path)
    assert fake_auth.active(token) is not None
    (rotated,) = fake_auth.live_refresh_tokens()
    assert rotated != first and rotated in grant_file(tmp_path).read_text()
    oauth_google._tokens.clear()
    fake_auth.revoke_all()
    with pytest.raises(SignInNeeded, match=r"has expired or was revoked.*mentor-agent login.*7 days"):
        oauth.access_token(creds, username=USER, state_dir=tmp_path, section="smtp")


def test_google_needs_the_client_file(tmp_path: Path) -> None:
    creds = Credentials(username=USER, oauth2="google")
    with pytest.raises(UserError, match=r"\[imap\]\.oauth2_client_file: is needed"):
        oauth.access_token(creds, username=USER, state_dir=tmp_path)


# -- storage -------------------------------------------------------------------------------------------------


def test_imap_and_smtp_on_one_account_share_one_grant(tmp_path: Path) -> None:
    imap = Credentials(username=USER, oauth2="microsoft", oauth2_client_id="x")
    smtp = Credentials(username=USER.upper(), oauth2="microsoft", oauth2_client_id="x")
    assert oauth.grant_store(imap, username=USER, state_dir=tmp_path) == oauth.grant_store(
        smtp, username=USER.upper(), state_dir=tmp_path
    )


def test_write_private_is_atomic_and_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "grants" / "a.json"
    write_private(path, "one")
    write_private(path, "two")
    assert path.read_text() == "two"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]  # no temporary file left


def test_grant_version_changes_when_signed_in_again(fake_auth: FakeAuthServer, tmp_path: Path) -> None:
    creds = microsoft(fake_auth)
    assert oauth.grant_version(creds, username=USER, state_dir=tmp_path) == ""
    oauth.sign_in(creds, username=USER, state_dir=tmp_path, say=lambda _: None)
    first = oauth.grant_version(creds, username=USER, state_dir=tmp_path)
    oauth.sign_in(creds, username=USER, state_dir=tmp_path, say=lambda _: None)
    assert first and oauth.grant_version(creds, username=USER, state_dir=tmp_path) not in {"", first}


def test_nothing_from_a_grant_reaches_the_log(
    fake_auth: FakeAuthServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    creds = microsoft(fake_auth)
    oauth.sign_in(creds, username=USER, state_dir=tmp_path, say=lambda _: None)
    token = oauth.access_token(creds, username=USER, state_dir=tmp_path)
    (refresh,) = fake_auth.live_refresh_tokens()
    assert redact(f"{token} {refresh}") == "*** ***"


# -- the command -----------------------------------------------------------------------------------------------


def login_config(tmp_path: Path, server: FakeAuthServer, *, smtp_user: str = USER) -> Path:
    keys = f'oauth2 = "microsoft"\noauth2_client_id = "{server.client_id}"\noauth2_authority = "{server.base}"'
    config = tmp_path / "config.toml"
    config.write_text(
        f"""state_dir = "state"

[imap]
host = "127.0.0.1"
username = "{USER}"
{keys}

[smtp]
host = "127.0.0.1"
username = "{smtp_user}"
{keys}
"""
    )
    return config


def mentor_agent(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_login_command_signs_in_once_for_a_shared_account(
    fake_auth: FakeAuthServer, tmp_path: Path, tls_ca: TlsFiles
) -> None:
    fake_auth.state.device_answers.append("authorization_pending")
    config = login_config(tmp_path, fake_auth)
    done = mentor_agent("login", "--config", str(config), env={"REQUESTS_CA_BUNDLE": str(tls_ca.ca_pem)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("enter the code ABCD-EFGH") == 1
    assert f"[imap] Microsoft sign-in for {USER} (for [imap] and [smtp])" in done.stdout
    assert f"Signed in as {USER}" in done.stdout
    assert grant_file(tmp_path / "state").name == f"microsoft-{USER}.json"
    assert not [token for token in fake_auth.live_refresh_tokens() if token in done.stdout + done.stderr]


def test_login_command_signs_in_each_account(fake_auth: FakeAuthServer, tmp_path: Path, tls_ca: TlsFiles) -> None:
    config = login_config(tmp_path, fake_auth, smtp_user="sender@example.edu")
    done = mentor_agent("login", "--config", str(config), env={"REQUESTS_CA_BUNDLE": str(tls_ca.ca_pem)})
    assert done.returncode == 0, done.stderr
    assert (
        "[imap] Microsoft sign-in" in done.stdout and "[smtp] Microsoft sign-in for sender@example.edu" in done.stdout
    )
    assert len(list((tmp_path / "state" / "grants").glob("*.json"))) == 2


def test_login_command_without_oauth2_says_what_to_set(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[imap]\nusername = "a"\npassword_command = "pass show x"\n')
    done = mentor_agent("login", "--config", str(config), env={})
    assert done.returncode == 1
    assert (
        f'error: {config}: nothing to sign in to: neither [imap] nor [smtp] sets oauth2 = "microsoft" or "google"'
        in done.stderr
    )


def test_check_says_when_not_signed_in_yet(fake_auth: FakeAuthServer, tmp_path: Path) -> None:
    from agent.config.settings import load_settings
    from agent.daemon.preflight import problems

    config = login_config(tmp_path, fake_auth)
    settings = load_settings(config)
    found = [str(p) for p in problems(settings, config)]
    assert any("[imap].oauth2" in line or "imap.oauth2" in line for line in found), found
    assert any("is not signed in yet: run mentor-agent login" in line for line in found), found
    oauth.sign_in(settings.imap, username=USER, state_dir=settings.state_dir, say=lambda _: None)
    assert not [p for p in problems(settings, config) if "sign" in str(p).lower()]
    settings = settings.model_copy(update={"imap": settings.imap.model_copy(update={"oauth2_client_id": ""})})
    assert any("oauth2_client_id: is empty; Microsoft sign-in needs" in str(p) for p in problems(settings, config))


class _MemoryKeyring:
    """Stands in for the keyring package (not installed in the test environment): a dict."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, user: str) -> str | None:
        return self.items.get((service, user))

    def set_password(self, service: str, user: str, value: str) -> None:
        self.items[(service, user)] = value


def test_with_keyring_service_the_grant_goes_to_the_keyring(
    fake_auth: FakeAuthServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyring = _MemoryKeyring()
    monkeypatch.setitem(sys.modules, "keyring", keyring)
    fake_auth.expires_in = 60
    creds = microsoft(fake_auth, keyring_service="mentor-agent")
    oauth.sign_in(creds, username=USER, state_dir=tmp_path, say=lambda _: None)
    assert list(keyring.items) == [("mentor-agent", f"microsoft-{USER}")]
    assert not list((tmp_path / "grants").glob("*.json"))  # no copy in a file
    oauth.access_token(creds, username=USER, state_dir=tmp_path)
    (rotated,) = fake_auth.live_refresh_tokens()
    assert rotated in keyring.items[("mentor-agent", f"microsoft-{USER}")]


def test_an_unreachable_sign_in_server_is_worth_another_try(fake_auth: FakeAuthServer, tmp_path: Path) -> None:
    from agent.errors import SignInUnavailable, is_permanent

    fake_auth.expires_in = 60
    creds = microsoft(fake_auth)
    oauth.sign_in(creds, username=USER, state_dir=tmp_path, say=lambda _: None)
    fake_auth.stop()
    with pytest.raises(SignInUnavailable, match="cannot reach the Microsoft sign-in server") as raised:
        oauth.access_token(creds, username=USER, state_dir=tmp_path)
    assert not is_permanent(raised.value)
