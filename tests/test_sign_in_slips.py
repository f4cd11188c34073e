"""`mentor-agent login` as a new user meets it: no config yet, a config that signs in with a password, and
Ctrl-C while the device code waits (the fake authorization server keeps answering "authorization_pending")."""

from __future__ import annotations

# ruff: noqa: F811  (the fixtures of test_sign_in_daemon, imported below)
import os
import sys
from collections import deque
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli.main import main
from tests.servers.fixtures import TlsFiles
from tests.servers.oauth import FakeAuthServer
from tests.test_sign_in_daemon import auth_server, fake_auth  # noqa: F401

CONFIG = """\
state_dir = "state"

[student]
name = "Sam Patel"
address = "sam@med.example.edu"
timezone = "America/New_York"

[imap]
host = "127.0.0.1"
security = "plain"
username = "sam@med.example.edu"
{sign_in}

[smtp]
host = "127.0.0.1"
security = "plain"
username = "sam@med.example.edu"
{sign_in}
"""


def login(*args: str, **env: str) -> tuple[int, str]:
    result = CliRunner(env=env).invoke(main, ["login", *args])
    return result.exit_code, result.output


def test_login_without_a_config_says_to_run_setup_first(tmp_path: Path) -> None:
    code, output = login("--config", str(tmp_path / "config.toml"))
    assert code == 1
    assert f"error: {tmp_path / 'config.toml'}: no such config file; run `mentor-agent setup` first" in output
    code, output = login(XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    assert code == 1 and "run `mentor-agent setup` first" in output, output


def test_login_with_a_password_account_says_it_needs_no_sign_in_and_how_to_switch(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(sign_in='password_command = "cat /dev/null"'))
    config.chmod(0o600)
    code, output = login("--config", str(config))
    assert code == 1
    assert f"error: {config}: nothing to sign in to: " in output
    assert "this account signs in with a password (password_command), which needs no sign-in here" in output
    assert "mentor-agent setup --auth oauth2" in output


def test_ctrl_c_while_the_device_code_waits_leaves_no_grant(
    tmp_path: Path,
    fake_auth: FakeAuthServer,
    tls_ca: TlsFiles,
) -> None:
    pexpect = pytest.importorskip("pexpect")
    config = tmp_path / "config.toml"
    keys = f'oauth2 = "microsoft"\noauth2_client_id = "{fake_auth.client_id}"\noauth2_authority = "{fake_auth.base}"'
    config.write_text(CONFIG.format(sign_in=keys))
    config.chmod(0o600)
    fake_auth.state.device_answers = deque(["authorization_pending"] * 100)
    env = {**os.environ, "REQUESTS_CA_BUNDLE": str(tls_ca.ca_pem)}
    child = pexpect.spawn(
        sys.executable, ["-m", "agent", "login", "--config", str(config)], env=env, encoding="utf-8", timeout=30
    )
    child.expect_exact("enter the code ABCD-EFGH")
    child.expect_exact("Waiting for you to finish there")
    before = len(fake_auth.grants("urn:ietf:params:oauth:grant-type:device_code"))
    while len(fake_auth.grants("urn:ietf:params:oauth:grant-type:device_code")) == before:
        child.expect(pexpect.TIMEOUT, timeout=0.2)  # until it polls at least once
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus not in (0, None) or child.signalstatus is not None
    said = str(child.before)
    assert "Traceback" not in said and "sign-in stopped (Ctrl-C): nothing was stored" in said, said
    grants = tmp_path / "state" / "grants"
    assert not grants.exists() or [p.name for p in grants.iterdir() if not p.name.endswith(".lock")] == []
