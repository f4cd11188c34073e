"""One error base class, one handler: no command prints a traceback for a known failure (issue 11).

Run as the user runs them (a real process), with the IMAP server unreachable: each prints one line and
exits non-zero. An unforeseen failure is one line too, with a hint to use ``--debug`` for the traceback.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.store.ledger import SCHEDULED, Ledger, Row
from agent.store.status import short_id
from tests.servers import free_port
from tests.servers.dovecot import Dovecot, User

ROOT = Path(__file__).parent.parent
KEY = "<held-1@med.example.edu>"


def mentor_agent(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.fixture
def unreachable(tmp_path: Path) -> Path:
    """A config whose IMAP server is not there (a closed loopback port), with one held message in the ledger."""
    (tmp_path / "policies").mkdir()
    shutil.copy(ROOT / "policies/rivera.toml", tmp_path / "policies/rivera.toml")
    config = tmp_path / "config.toml"
    config.write_text(f"""policies_dir = "policies"
state_dir = "state"

[student]
address = "sam@med.example.edu"

[imap]
host = "127.0.0.1"
port = {free_port()}
security = "plain"
username = "sam"
password_command = "echo not-used-anyway"
timeout = 2

[smtp]
host = "127.0.0.1"
port = {free_port()}
security = "plain"
""")
    config.chmod(0o600)
    ledger = Ledger(tmp_path / "state" / "ledger.sqlite3")
    ledger.add(
        Row(
            key=KEY,
            message_id=KEY,
            mentor="rivera",
            subject="held question",
            sender="sam@med.example.edu",
            recipients=("arivera@hospital.example.org",),
            arrived=datetime.now(UTC),
            state=SCHEDULED,
            folder="Scheduled",
            uid=1,
            due=None,
            digest=None,
            reason="outside her hours",
            standalone=False,
            group_key="",
            forced=False,
            told="",
            attempts=0,
            item=None,
            sent_at=None,
            detail="",
        )
    )
    ledger.close()
    return config


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    output = (result.stdout + result.stderr).strip()
    assert "Traceback" not in output, output
    assert len(output.splitlines()) == 1, output
    assert result.returncode != 0, output
    return output


@pytest.mark.parametrize("command", ["release", "cancel"])
def test_release_and_cancel_with_the_server_unreachable_say_so_in_one_line(unreachable: Path, command: str) -> None:
    result = mentor_agent(command, short_id(KEY), "--config", str(unreachable), cwd=unreachable.parent)
    line = _one_line(result)
    assert line.startswith("error: imap: cannot connect to 127.0.0.1:"), line
    assert result.returncode == 69  # EX_UNAVAILABLE: the server, not the user's input


def test_propose_with_the_server_unreachable_says_so_in_one_line(unreachable: Path) -> None:
    result = mentor_agent("propose", "rivera", "--config", str(unreachable), cwd=unreachable.parent)
    line = _one_line(result)
    assert "cannot connect to 127.0.0.1:" in line, line


def test_status_needs_no_server_and_a_broken_ledger_is_one_line_naming_it(unreachable: Path) -> None:
    ok = mentor_agent("status", "--config", str(unreachable), cwd=unreachable.parent)
    assert ok.returncode == 0 and "held question" in ok.stdout, ok.stdout + ok.stderr
    ledger = unreachable.parent / "state" / "ledger.sqlite3"
    for extra in ("-wal", "-shm"):
        Path(str(ledger) + extra).unlink(missing_ok=True)
    ledger.write_bytes(b"this is not a database" * 100)
    result = mentor_agent("status", "--config", str(unreachable), cwd=unreachable.parent)
    line = _one_line(result)  # found by the tester (F6): "unexpected DatabaseError", exit 70, no file named
    assert line.startswith(f"error: {ledger}: is not a ledger mentor-agent can read") and "unexpected" not in line
    assert result.returncode == 1
    debug = mentor_agent("--debug", "status", "--config", str(unreachable), cwd=unreachable.parent)
    assert "Traceback" in debug.stderr and debug.returncode != 0
    ledger.unlink()
    ledger.mkdir()  # a folder where the ledger should be: the same line
    result = mentor_agent("status", "--config", str(unreachable), cwd=unreachable.parent)
    assert _one_line(result).startswith(f"error: {ledger}: is not a ledger mentor-agent can read"), result.stderr


def test_a_user_error_is_still_exit_1_and_a_usage_error_still_click_s(tmp_path: Path) -> None:
    missing = mentor_agent("status", "--config", str(tmp_path / "nope.toml"), cwd=tmp_path)
    assert missing.returncode == 1 and _one_line(missing).startswith("error: ")
    usage = mentor_agent("release", cwd=tmp_path)
    assert usage.returncode == 2 and "Missing argument" in usage.stderr


@pytest.mark.servers
def test_release_with_a_refused_login_is_one_line_and_exit_78(
    unreachable: Path, dovecot: Dovecot, imap_user: User
) -> None:
    text = unreachable.read_text()
    port = text.split("[imap]")[1].split("port = ")[1].split("\n")[0]
    unreachable.write_text(
        text.replace(f"port = {port}", f"port = {dovecot.port}", 1).replace(
            'username = "sam"', f'username = "{imap_user.username}"'
        )
    )
    result = mentor_agent("release", short_id(KEY), "--config", str(unreachable), cwd=unreachable.parent)
    line = _one_line(result)
    assert f"refused by 127.0.0.1:{dovecot.port}: [AUTHENTICATIONFAILED]" in line, line
    assert result.returncode == 78


@pytest.mark.parametrize("command", [("agree", "rivra"), ("agree", "rivra", "--print"), ("propose", "rivra")])
def test_a_mistyped_mentor_id_names_the_policies_folder_and_the_ids_there(
    unreachable: Path, command: tuple[str, ...]
) -> None:
    result = mentor_agent(*command, "--config", str(unreachable), cwd=unreachable.parent)
    line = _one_line(result)
    assert "no policy “rivra”" in line and "rivera" in line and "policies" in line, line
