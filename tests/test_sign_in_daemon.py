"""The daemon with built-in sign-in: XOAUTH2 to a real Dovecot (oauth2 passdb, tokens checked by introspection at
the fake authorization server) and to aiosmtpd (XOAUTH2 checked against the same server); a revoked grant gives
one notice and one journal line, is not tried again until the student signs in again, and then all goes on.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config.settings import Credentials
from agent.mail import oauth
from tests.agent_process import OUTBOX, STUDENT, Agent, eventually, mail, policy_text
from tests.servers import dovecot as dovecot_module
from tests.servers.dovecot import Dovecot, User
from tests.servers.fixtures import TlsFiles
from tests.servers.oauth import FakeAuthServer
from tests.servers.smtp import SmtpServer

pytestmark = pytest.mark.servers
SIGN_IN_AGAIN = "sign in again with: mentor-agent login"


@pytest.fixture(scope="module")
def auth_server(tls_ca: TlsFiles) -> Iterator[FakeAuthServer]:
    server = FakeAuthServer(tls_ca.cert_pem, tls_ca.key_pem)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_auth(auth_server: FakeAuthServer, tls_ca: TlsFiles, monkeypatch: pytest.MonkeyPatch) -> FakeAuthServer:
    auth_server.reset()
    auth_server.expires_in = 60  # within msal's five-minute margin: every connect refreshes (and a revocation shows)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_ca.ca_pem))
    return auth_server


@pytest.fixture(scope="module")
def oauth_dovecot(tls_ca: TlsFiles, auth_server: FakeAuthServer) -> Iterator[Dovecot]:
    reason = dovecot_module.available()
    if reason:
        pytest.skip(reason)
    url = f"http://127.0.0.1:{auth_server.introspect_port}/introspect"
    server = Dovecot(tls_ca.cert_pem, tls_ca.key_pem, tls_ca.ca_pem, introspection_url=url)
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def oauth_smtp(fake_auth: FakeAuthServer) -> Iterator[SmtpServer]:
    def check(user: str, token: str) -> bool:
        issued = fake_auth.active(token)
        return issued is not None and issued.username == user

    server = SmtpServer(oauth2=check)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def creds(fake: FakeAuthServer, user: User) -> Credentials:
    return Credentials(
        username=user.username, oauth2="microsoft", oauth2_client_id=fake.client_id, oauth2_authority=fake.base
    )


def sign_in(agent: Agent, fake: FakeAuthServer) -> None:
    oauth.sign_in(creds(fake, agent.user), username=agent.user.username, state_dir=agent.root / "state", say=print)


def write_config(agent: Agent, fake: FakeAuthServer) -> None:
    sign_in_keys = f'oauth2 = "microsoft"\noauth2_client_id = "{fake.client_id}"\noauth2_authority = "{fake.base}"'
    agent.config.write_text(
        f"""policies_dir = "policies"
state_dir = "state"

[student]
name = "Sam Patel"
address = "{STUDENT}"
timezone = "America/New_York"

[imap]
host = "127.0.0.1"
port = {agent.dovecot.port}
security = "plain"
username = "{agent.user.username}"
{sign_in_keys}
idle_renew = 60
timeout = 10

[smtp]
host = "127.0.0.1"
port = {agent.smtp.port}
security = "plain"
username = "{agent.user.username}"
{sign_in_keys}
timeout = 10
file_in_sent = "always"
"""
    )
    agent.config.chmod(0o600)


@pytest.fixture
def signed_in_agent(
    tmp_path: Path, oauth_dovecot: Dovecot, oauth_smtp: SmtpServer, fake_auth: FakeAuthServer, tls_ca: TlsFiles
) -> Iterator[Agent]:
    oauth_dovecot.start()  # a test may have restarted it
    user = oauth_dovecot.new_user()
    fake_auth.username = user.username  # who signs in at the fake server (and whom Dovecot's introspection names)
    with oauth_dovecot.client(user) as client:
        for folder in (OUTBOX, "Scheduled", "Needs attention", "Sending"):
            if not client.folder_exists(folder):
                client.create_folder(folder)
    agent = Agent(tmp_path, oauth_dovecot, user, oauth_smtp, env={"REQUESTS_CA_BUNDLE": str(tls_ca.ca_pem)})
    write_config(agent, fake_auth)
    agent.policy(policy_text())
    sign_in(agent, fake_auth)
    yield agent
    if agent.process is not None and agent.process.poll() is None:
        agent.stop()


def test_the_daemon_signs_in_to_imap_and_smtp_with_xoauth2(signed_in_agent: Agent, fake_auth: FakeAuthServer) -> None:
    agent = signed_in_agent
    agent.start()
    agent.drop(mail("Signed in"))
    (sent,) = agent.smtp.wait_for(1, timeout=20)
    assert sent.authenticated_as == agent.user.username
    assert f"user=<{agent.user.username}>, method=XOAUTH2" in agent.dovecot.log()
    assert fake_auth.grants("refresh_token")  # access tokens came from the stored grant, refreshed
    tokens = [issued for issued in fake_auth.state.access_tokens]
    assert tokens and not any(token in agent.log() for token in tokens)  # no token in the journal
    agent.stop()


def test_a_revoked_grant_gives_one_notice_and_no_retry_until_signed_in_again(
    signed_in_agent: Agent, fake_auth: FakeAuthServer
) -> None:
    agent = signed_in_agent
    agent.start(MENTOR_AGENT_LOGIN_BACKOFF="0.5")  # a password refusal would be retried every half second
    fake_auth.revoke_all()
    before = len(fake_auth.grants("refresh_token"))
    agent.drop(mail("Waits for the sign-in"))
    notice = eventually(lambda: agent.notices(), timeout=20)[0]
    assert "sign in again" in str(notice["Subject"]).lower()
    assert "mentor-agent login" in notice.get_content()
    time.sleep(4)  # eight backoff periods
    assert len(agent.notices()) == 1
    assert len(fake_auth.grants("refresh_token")) == before + 1  # the revoked grant went to the server once
    assert agent.log().count(SIGN_IN_AGAIN) == 1, agent.log()
    assert agent.smtp.messages == []
    sign_in(agent, fake_auth)  # what `mentor-agent login` does: a new grant, no restart
    (sent,) = agent.smtp.wait_for(1, timeout=20)
    assert sent.authenticated_as == agent.user.username
    assert len(agent.notices()) == 1
    assert agent.stop() == 0


def test_imap_sign_in_revoked_while_running_waits_for_a_new_one(
    signed_in_agent: Agent, fake_auth: FakeAuthServer
) -> None:
    agent = signed_in_agent
    agent.start()
    fake_auth.revoke_all()
    agent.dovecot.restart()  # every connection drops: the daemon reconnects and needs a fresh token
    eventually(lambda: SIGN_IN_AGAIN in agent.log(), timeout=20)
    failed = len(fake_auth.grants("refresh_token"))
    time.sleep(4)
    assert len(fake_auth.grants("refresh_token")) == failed  # not tried again: nothing new was signed in
    assert agent.log().count(SIGN_IN_AGAIN) == 1
    sign_in(agent, fake_auth)
    eventually(lambda: agent.log().count("connected to") >= 2, timeout=20)
    notice = eventually(lambda: agent.notices(), timeout=20)
    assert [str(n["Subject"]) for n in notice] == ["[mentor-agent] Signed in again: back in your mailbox"]
    agent.drop(mail("After the new sign-in"))
    agent.smtp.wait_for(1, timeout=20)
    assert agent.stop() == 0


def test_a_grant_revoked_before_start_exits_78_with_how_to_sign_in(
    signed_in_agent: Agent, fake_auth: FakeAuthServer
) -> None:
    agent = signed_in_agent
    fake_auth.revoke_all()
    done = subprocess.run(
        [sys.executable, "-m", "agent", "run", "--config", str(agent.config)],
        cwd=agent.root,
        env={**__import__("os").environ, **agent.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 78, done.stderr
    assert SIGN_IN_AGAIN in done.stderr
    assert len(fake_auth.grants("refresh_token")) == 1  # tried once, at start


def test_check_connect_signs_in_as_the_daemon_does(signed_in_agent: Agent) -> None:
    agent = signed_in_agent
    done = subprocess.run(
        [sys.executable, "-m", "agent", "check", "--connect", "--config", str(agent.config)],
        cwd=agent.root,
        env={**__import__("os").environ, **agent.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"logged in as {agent.user.username}" in done.stdout
    assert f"user=<{agent.user.username}>, method=XOAUTH2" in agent.dovecot.log()


def test_the_daemon_with_a_google_sign_in(
    signed_in_agent: Agent, fake_auth: FakeAuthServer, tls_ca: TlsFiles, tmp_path: Path
) -> None:
    import json
    import ssl
    import urllib.request

    agent = signed_in_agent
    client = tmp_path / "google-client.json"
    client.write_text(json.dumps({"installed": {"client_id": "google-test-client", "client_secret": "s3cret"}}))
    text = agent.config.read_text()
    text = text.replace('oauth2 = "microsoft"', 'oauth2 = "google"')
    text = text.replace(f'oauth2_client_id = "{fake_auth.client_id}"', f'oauth2_client_file = "{client}"')
    agent.config.write_text(text)
    google = Credentials(
        username=agent.user.username, oauth2="google", oauth2_client_file=client, oauth2_authority=fake_auth.base
    )

    def browser(url: str) -> bool:
        context = ssl.create_default_context(cafile=str(tls_ca.ca_pem))
        with urllib.request.urlopen(url, context=context, timeout=10) as answer:
            answer.read()
        return True

    oauth.sign_in(google, username=agent.user.username, state_dir=agent.root / "state", say=print, open_browser=browser)
    agent.start()
    agent.drop(mail("Through Google"))
    (sent,) = agent.smtp.wait_for(1, timeout=20)
    assert sent.authenticated_as == agent.user.username
    assert [form["client_id"] for form in fake_auth.grants("refresh_token")][-1] == "google-test-client"
    assert agent.stop() == 0
