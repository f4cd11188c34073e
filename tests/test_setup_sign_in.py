"""`mentor-agent setup` with the built-in sign-in, end to end: the fake authorization server answers the device
code (Microsoft) or the browser's loopback redirect (Google), Dovecot checks the XOAUTH2 token by introspection
and aiosmtpd against the same server; then the daemon runs on the fresh config and paces a message."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.config.settings import load_settings
from agent.mail.oauth import grant_store
from tests.agent_process import MENTOR, OUTBOX, STUDENT, Agent, mail
from tests.servers.dovecot import Dovecot, User
from tests.servers.fixtures import TlsFiles
from tests.servers.oauth import FakeAuthServer
from tests.servers.smtp import SmtpServer
from tests.test_sign_in_daemon import auth_server, fake_auth, oauth_dovecot, oauth_smtp  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.servers, pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")]
BROWSER = """\
import ssl, sys, urllib.request
context = ssl.create_default_context(cafile={ca!r})
with urllib.request.urlopen(sys.argv[1], context=context, timeout=10) as answer:  # follows the redirect home
    answer.read()
"""


@dataclass
class World:
    root: Path
    dovecot: Dovecot
    user: User
    smtp: SmtpServer
    fake: FakeAuthServer
    env: dict[str, str]

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    def flags(self, *extra: str) -> list[str]:
        return [
            "--config", str(self.config), "--address", STUDENT, "--name", "Sam Patel",
            "--timezone", "America/New_York", "--imap-host", "127.0.0.1", "--imap-port", str(self.dovecot.port),
            "--imap-security", "plain", "--smtp-host", "127.0.0.1", "--smtp-port", str(self.smtp.port),
            "--smtp-security", "plain", "--username", self.user.username, "--state-dir", str(self.root / "state"),
            "--auth", "oauth2", "--oauth2-authority", self.fake.base,
            "--mentor-name", "Dr. Ana Rivera", "--mentor-address", MENTOR, "--mentor-timezone", "America/Chicago",
            "--per-day", "5", "--per-week", "20", "--window", "Mon-Sun 00:00-24:00", *extra,
        ]  # fmt: skip

    def setup(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "agent", "setup", "--yes", *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.root,
            env={**os.environ, **self.env, **env},
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def paces_a_message(self, subject: str) -> None:
        """The daemon on the config setup wrote: a message dropped in the outbox goes out, signed in by XOAUTH2."""
        agent = Agent(self.root, self.dovecot, self.user, self.smtp, env=self.env)
        agent.start()
        try:
            agent.drop(mail(subject))
            (sent,) = self.smtp.wait_for(1, timeout=30)
        finally:
            assert agent.stop() == 0, agent.log()
        assert sent.rcpt_tos == (MENTOR,) and sent.authenticated_as == self.user.username
        assert subject.encode() in sent.content
        assert f"user=<{self.user.username}>, method=XOAUTH2" in self.dovecot.log()


@pytest.fixture
def world(
    tmp_path: Path,
    oauth_dovecot: Dovecot,  # noqa: F811  (the fixtures imported above)
    oauth_smtp: SmtpServer,  # noqa: F811
    fake_auth: FakeAuthServer,  # noqa: F811
    tls_ca: TlsFiles,
) -> World:
    oauth_dovecot.start()  # another test may have restarted it
    user = oauth_dovecot.new_user()
    fake_auth.username = user.username  # who signs in (and whom Dovecot's introspection names)
    return World(tmp_path, oauth_dovecot, user, oauth_smtp, fake_auth, {"REQUESTS_CA_BUNDLE": str(tls_ca.ca_pem)})


def test_setup_signs_in_to_microsoft_with_the_device_code_then_the_daemon_paces_a_message(world: World) -> None:
    world.fake.state.device_answers = deque(["authorization_pending", "authorization_pending"])
    result = world.setup(*world.flags("--oauth2-client-id", world.fake.client_id, "--oauth2-tenant", "organizations"))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"open {world.fake.base}/devicelogin in a browser (on any device) and enter the code ABCD-EFGH" in out
    assert f"Signed in as {world.user.username}" in out
    assert f"IMAP 127.0.0.1:{world.dovecot.port} (plain): logged in as {world.user.username}" in out, out
    assert f"SMTP 127.0.0.1:{world.smtp.port} (plain): logged in as {world.user.username}" in out, out
    assert "Created the folders: Mentor Outbox, Needs attention, Scheduled, Sending" in out
    assert len(world.fake.grants("urn:ietf:params:oauth:grant-type:device_code")) == 3  # pending, pending, token
    settings = load_settings(world.config)
    for creds in (settings.imap, settings.smtp):
        assert (creds.oauth2, creds.oauth2_client_id, creds.oauth2_tenant) == (
            "microsoft",
            world.fake.client_id,
            "organizations",
        )
        assert creds.oauth2_authority == world.fake.base
    text = world.config.read_text()
    assert not any(token in text or token in out for token in world.fake.live_refresh_tokens())
    store = grant_store(settings.imap, username=world.user.username, state_dir=settings.state_dir)
    assert store.load() is not None
    assert OUTBOX in world.dovecot.folders(world.user)
    world.paces_a_message("First question after a Microsoft sign-in")


def test_setup_signs_in_to_google_in_the_browser_then_the_daemon_paces_a_message(world: World) -> None:
    client = world.root / "google-client.json"
    client.write_text(json.dumps({"installed": {"client_id": "google-test-client", "client_secret": "s3cret"}}))
    browser = world.root / "browser.py"
    browser.write_text(BROWSER.format(ca=world.env["REQUESTS_CA_BUNDLE"]))
    # setup opens the page with the standard library's webbrowser, which runs $BROWSER: here, a script.
    result = world.setup(*world.flags("--oauth2-client-file", str(client)), BROWSER=f"{sys.executable} {browser} %s")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"Sign in to {world.user.username} in the browser. If no browser opens, open this page:" in out
    assert f"{world.fake.base}/o/oauth2/auth?" in out and "Signed in; the sign-in is kept in" in out
    assert f"SMTP 127.0.0.1:{world.smtp.port} (plain): logged in as {world.user.username}" in out, out
    settings = load_settings(world.config)
    assert (settings.imap.oauth2, settings.imap.oauth2_client_file) == ("google", client)
    assert "s3cret" not in world.config.read_text() and "s3cret" not in out + result.stderr
    world.paces_a_message("First question after a Google sign-in")


@pytest.fixture
def terminal_world(world: World) -> Iterator[World]:
    pytest.importorskip("pexpect")
    yield world


def test_setup_in_a_terminal_shows_the_device_code_and_finishes_when_the_server_grants(
    terminal_world: World,
) -> None:
    import pexpect

    world = terminal_world
    world.fake.state.device_answers = deque(["authorization_pending"] * 3)
    args = world.flags()  # all but the client id, asked for
    env = {**os.environ, **world.env}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "agent", "setup", "--client", "none", *args],
        cwd=str(world.root),
        env=env,
        encoding="utf-8",
        timeout=60,
    )
    child.setwinsize(40, 200)
    child.logfile_read = transcript = io.StringIO()
    child.expect_exact("Whose sign-in (microsoft, google) [microsoft]:")  # servers given by hand do not say
    child.sendline("microsoft")
    child.expect_exact("Application (client) ID:")
    child.sendline(world.fake.client_id)
    child.expect_exact("enter the code ABCD-EFGH")
    shown = str(child.before)
    assert f"open {world.fake.base}/devicelogin" in shown
    child.expect_exact("Signed in as")  # after the pending answers, once the server grants
    child.expect_exact("Created the folders:")
    child.expect_exact("Run it as a systemd user service now? [y/N]:")
    child.sendline("n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, transcript.getvalue()
    assert load_settings(world.config).imap.oauth2 == "microsoft"
    assert len(world.fake.grants("urn:ietf:params:oauth:grant-type:device_code")) == 4


def test_ctrl_c_while_setup_waits_for_the_device_code_leaves_no_config_and_no_grant(terminal_world: World) -> None:
    import pexpect

    world = terminal_world
    world.fake.state.device_answers = deque(["authorization_pending"] * 100)
    args = world.flags("--oauth2-client-id", world.fake.client_id)
    child = pexpect.spawn(
        sys.executable,
        ["-m", "agent", "setup", "--client", "none", *args],
        cwd=str(world.root),
        env={**os.environ, **world.env},
        encoding="utf-8",
        timeout=60,
    )
    child.expect_exact("enter the code ABCD-EFGH")
    child.expect_exact("Waiting for you to finish there")
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus != 0 and "Traceback" not in str(child.before)
    assert not world.config.exists()
    grants = world.root / "state" / "grants"
    assert not grants.exists() or not list(grants.glob("*.json"))
    assert [p.name for p in world.root.iterdir() if p.name.startswith(".config.toml")] == []  # no draft left


def test_a_sign_in_refused_at_the_server_writes_nothing(world: World) -> None:
    world.fake.state.device_answers = deque(["authorization_pending", "access_denied"])
    result = world.setup(*world.flags("--oauth2-client-id", world.fake.client_id))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "error: Microsoft sign-in did not finish: access_denied" in result.stderr
    assert not world.config.exists()
    assert not (world.root / "state" / "grants").exists() or not list((world.root / "state" / "grants").glob("*.json"))


def test_signed_in_as_someone_else_the_login_is_refused_and_the_grant_is_not_kept(world: World) -> None:
    world.fake.username = "someone.else@example.edu"  # who signs in at the server: not the user name given
    result = world.setup(*world.flags("--oauth2-client-id", world.fake.client_id))
    assert result.returncode == 78, result.stdout + result.stderr
    assert "Note: you signed in as someone.else@example.edu, while the configuration says" in result.stdout
    assert f"login as '{world.user.username}' refused" in result.stderr
    assert "nothing was written: check --username" in result.stderr
    assert not world.config.exists()
    grants = world.root / "state" / "grants"
    assert not grants.exists() or not list(grants.glob("*.json"))


def test_a_device_code_that_expired_is_offered_again_in_a_terminal(terminal_world: World) -> None:
    import pexpect

    world = terminal_world
    world.fake.state.device_answers = deque(["authorization_pending", "expired_token", "authorization_pending"])
    args = world.flags("--oauth2-client-id", world.fake.client_id)
    child = pexpect.spawn(
        sys.executable,
        ["-m", "agent", "setup", "--client", "none", *args],
        cwd=str(world.root),
        env={**os.environ, **world.env},
        encoding="utf-8",
        timeout=60,
    )
    child.expect_exact("enter the code ABCD-EFGH")
    child.expect_exact("Try to sign in again? [Y/n]:")
    said = str(child.before)
    assert "Microsoft sign-in did not finish: expired_token" in said and "Nothing was written." in said
    assert not world.config.exists()
    child.sendline("")
    child.expect_exact("enter the code ABCD-EFGH")
    child.expect_exact("Signed in as")
    child.expect_exact("Run it as a systemd user service now? [y/N]:")
    child.sendline("n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert load_settings(world.config).smtp.oauth2 == "microsoft"
