"""What the daemon loads: `run` with a password account imports none of the sign-in, discovery or demo libraries,
and an OAuth2 account only its own provider's (issue 21: they cost a password account 20 MB and half a second).

Structure, not time: the real daemon (the ``mentor-agent`` entry point, as pyproject.toml declares it) runs against the
real servers in a subprocess that writes the names in ``sys.modules`` when it exits (after SIGTERM).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Literal

import pytest

from agent.config.settings import Credentials
from agent.mail.grants import store_for
from tests.agent_process import Agent, eventually, policy_text
from tests.servers import PATIENCE
from tests.servers.dovecot import Dovecot, User
from tests.servers.smtp import SmtpServer

pytestmark = pytest.mark.servers

SIGN_IN = ("msal", "google", "google_auth_oauthlib", "requests", "requests_oauthlib", "oauthlib")
DISCOVERY = ("dns",)
DEMO = ("pymap", "agent.demo")
DOORS = ("aiosmtpd", "agent.mail.submission")  # the submission door: only for a student who opened it
CALENDARS = ("icalendar", "recurring_ical_events")  # loaded with the first invitation or busy calendar read
WATCHING = ("watchfiles", "anyio", "multiprocessing")  # the policy folder is looked at, not watched by a library
# Loaded when first needed: HTML with the first HTML body or digest, http and urllib.request with a busy calendar
# at a URL, difflib with a mistyped key (agent.rules.htmltext, agent.calendars.busy, agent.rules.policy).
WHEN_NEEDED = ("html", "http", "urllib.request", "difflib", "agent.rules.html_parsers")
SETTINGS_LIBRARY = ("pydantic_settings", "dotenv", "argparse")  # loaded only when a MENTOR_AGENT_* variable is set
OTHER_COMMANDS = ("tomlkit", "pexpect", "hypothesis", "agent.cli.setup", "agent.cli.login", "agent.mail.discovery")
# Loaded in the first pass after the Outbox's mail is decided and sent (the meeting desk, the agreement's answers),
# with the first question held for an agenda, or by another command: not before `run`'s first IMAP command.
AFTER_THE_BACKLOG = (
    "agent.reconcile.meeting_desk",
    "agent.reconcile.meeting_suggest",
    "agent.reconcile.agenda_ahead",
    "agent.reconcile.agenda_changes",
    "agent.reconcile.agreement",
    "agent.rules.agreement",  # the reader of a mentor's answer to a proposal
    "agent.rules.consent",
    "agent.rules.simulate",
    "agent.rules.meetings",  # with the first meeting round read from the ledger
    "agent.rules.invites",
    "agent.rules.digest",  # with the first digest composed
    "agent.rules.mimewalk",  # with the first digest or question held for an agenda
    "agent.rules.answer_kind",  # with the first mail read in INBOX (a reply, a delivery report) or the agreement
)

# The entry point pyproject.toml declares, with the names of the modules loaded written out at exit.
_PYPROJECT = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
ENTRY_MODULE, ENTRY_FUNCTION = _PYPROJECT["project"]["scripts"]["mentor-agent"].split(":")
ENTRY_POINT = (
    "import atexit, os, sys\n"
    "atexit.register(lambda: open(os.environ['MODULES_FILE'], 'w').write('\\n'.join(sorted(sys.modules))))\n"
    f"from {ENTRY_MODULE} import {ENTRY_FUNCTION}\n"
    f"{ENTRY_FUNCTION}()\n"
)


def loaded(modules: set[str], roots: tuple[str, ...]) -> list[str]:
    """The modules among ``modules`` that are one of ``roots`` or inside one."""
    return sorted(m for m in modules if any(m == root or m.startswith(root + ".") for root in roots))


def run_daemon(agent: Agent, until: str = "", ends: bool = False) -> set[str]:
    """Run the daemon until its log shows ``until`` and stop it with SIGTERM, or (``ends``) until it ends by
    itself (a sign-in it cannot use ends it); the modules it had loaded."""
    modules_file = agent.root / "modules.txt"
    log = agent.root / "agent.log"
    env = {**os.environ, "MODULES_FILE": str(modules_file), "PYTHONUNBUFFERED": "1"}
    env.pop("NOTIFY_SOCKET", None)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", ENTRY_POINT, "run", "--config", str(agent.config), "--log-level", "DEBUG"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=agent.root,
            env=env,
        )
    try:
        if ends:
            process.wait(20 * PATIENCE)
        else:
            eventually(lambda: until in log.read_text() or process.poll() is not None, timeout=20)
            assert process.poll() is None, f"the daemon ended early:\n{log.read_text()}"
            process.send_signal(signal.SIGTERM)
            process.wait(15 * PATIENCE)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert modules_file.exists(), f"the daemon wrote no module list:\n{log.read_text()}"
    return set(modules_file.read_text().split())


def sign_in_config(agent: Agent, provider: Literal["microsoft", "google"]) -> None:
    """The agent's config with built-in sign-in for ``provider`` instead of the password, and a grant that
    holds no account (the daemon tries it at connect: its provider's library loads, then it asks to sign in)."""
    keys = f'oauth2 = "{provider}"\noauth2_client_id = "mentor-agent-test"\noauth2_authority = "http://127.0.0.1:9"'
    client_file = None
    if provider == "google":
        client_file = agent.root / "client.json"
        client_file.write_text(json.dumps({"installed": {"client_id": "mentor-agent-test", "client_secret": "x"}}))
        keys += f'\noauth2_client_file = "{client_file}"'
    text = agent.config.read_text()
    password_line = next(line for line in text.splitlines() if line.startswith("password = "))
    agent.config.write_text(text.replace(password_line, keys))
    username = agent.user.username
    creds = Credentials(
        username=username, oauth2=provider, oauth2_client_id="mentor-agent-test", oauth2_client_file=client_file
    )
    store = store_for(creds, username=username, state_dir=agent.root / "state")
    store.save({"provider": provider})


@pytest.fixture
def agent(tmp_path: Path, dovecot: Dovecot, imap_user: User, smtp_server: SmtpServer) -> Agent:
    agent = Agent(tmp_path, dovecot, imap_user, smtp_server)
    agent.write_config()
    agent.policy(policy_text())
    return agent


def test_run_with_a_password_loads_no_sign_in_discovery_or_demo_library(agent: Agent) -> None:
    modules = run_daemon(agent, until="connected to")
    assert "agent.daemon.service" in modules  # it is the daemon that ran
    assert loaded(modules, SIGN_IN) == []
    assert loaded(modules, DISCOVERY) == []
    assert loaded(modules, DEMO) == []
    assert loaded(modules, DOORS) == [], "no [submission] in the config: no SMTP server library"
    assert loaded(modules, OTHER_COMMANDS) == []
    assert loaded(modules, CALENDARS) == []  # idle, no meeting under way, no busy calendar configured
    assert loaded(modules, WATCHING) == []
    assert loaded(modules, WHEN_NEEDED) == []
    assert loaded(modules, SETTINGS_LIBRARY) == []


def test_run_imports_what_the_first_decisions_need_and_no_more() -> None:
    """What `run` imports before its first IMAP command (issue 21: a backlog at start waits for it)."""
    code = "import sys\nimport agent.cli.main, agent.daemon.service\nprint('\\n'.join(sorted(sys.modules)))"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    modules = set(found.stdout.split())
    assert "agent.reconcile.intake" in modules
    assert loaded(modules, AFTER_THE_BACKLOG) == []
    assert loaded(modules, CALENDARS + WATCHING + WHEN_NEEDED + SETTINGS_LIBRARY + OTHER_COMMANDS) == []


def test_run_with_microsoft_sign_in_loads_msal_and_nothing_of_google(agent: Agent) -> None:
    sign_in_config(agent, "microsoft")
    modules = run_daemon(agent, ends=True)
    assert "error: Microsoft sign-in at http://127.0.0.1:9" in (agent.root / "agent.log").read_text()
    assert loaded(modules, ("msal",)) != []
    assert loaded(modules, ("google", "google_auth_oauthlib")) == []
    assert loaded(modules, DISCOVERY + DEMO + OTHER_COMMANDS) == []


def test_run_with_google_sign_in_loads_google_auth_and_nothing_of_msal(agent: Agent) -> None:
    sign_in_config(agent, "google")
    modules = run_daemon(agent, ends=True)
    assert "Google" in (agent.root / "agent.log").read_text()
    assert loaded(modules, ("google.auth",)) != []
    assert loaded(modules, ("msal",)) == []
    assert loaded(modules, DISCOVERY + DEMO + OTHER_COMMANDS) == []
