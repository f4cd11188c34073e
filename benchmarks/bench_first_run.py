"""A scripted new user's first run: a fresh venv, ``pip install .``, ``mentor-agent setup`` (no questions: every
answer a flag), ``mentor-agent run``, and the first message dropped in the Outbox until the SMTP server has it.

    python3 benchmarks/bench_first_run.py             # prints each step's time and the total
    python3 benchmarks/bench_first_run.py --json      # one JSON object

The servers are the test Dovecot and aiosmtpd on 127.0.0.1 (needs root and Dovecot, as the server tests do);
``pip`` fetches the dependencies as a user's would (from its cache when it has them: the report says which).
The user is the one a human would be minus the typing: their own answers cost what they cost.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

import harness  # noqa: E402

from tests.agent_process import MENTOR, OUTBOX, STUDENT, mail  # noqa: E402
from tests.servers.smtp import SmtpServer  # noqa: E402

ROOT = HERE.parent


def _clean_env(**extra: str) -> dict[str, str]:
    """The user's environment: no PYTHONPATH (the venv's own install runs), no notify socket."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NOTIFY_SOCKET", "VIRTUAL_ENV")}
    return env | extra


def _timed(steps: dict[str, float], name: str, action: Callable[[], None]) -> None:
    started = time.monotonic()
    action()
    steps[name] = time.monotonic() - started
    print(f"  {name:<28} {steps[name]:7.1f} s", file=sys.stderr)


def _run(argv: list[str], *, env: dict[str, str], cwd: Path | None = None) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False, env=env, cwd=cwd)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} ... failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def first_run(work: Path) -> dict[str, float]:
    steps: dict[str, float] = {}
    venv, home = work / "venv", work / "home"
    home.mkdir()
    env = _clean_env(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_STATE_HOME=str(home / "state"))
    _timed(steps, "python3 -m venv", lambda: _run([sys.executable, "-m", "venv", str(venv)], env=env))
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _timed(steps, "pip install .", lambda: _run([*pip, str(ROOT)], env=env, cwd=work))
    agent = str(venv / "bin" / "mentor-agent")
    with harness.servers() as servers:
        user = servers.dovecot.new_user("first")
        smtp = SmtpServer(auth=(user.username, user.password))
        smtp.start()
        try:
            secret = work / "typed-password"
            secret.write_text(user.password + "\n")
            answers = [
                "--yes",
                *("--address", STUDENT, "--name", "Sam Patel", "--timezone", "America/New_York"),
                *("--imap-host", "127.0.0.1", "--imap-port", str(servers.dovecot.port), "--imap-security", "plain"),
                *("--smtp-host", "127.0.0.1", "--smtp-port", str(smtp.port), "--smtp-security", "plain"),
                *("--username", user.username, "--password-file", str(secret), "--store", "file"),
                *("--mentor-name", "Dr. Ana Rivera", "--mentor-address", MENTOR),
                *("--mentor-timezone", "America/Chicago"),
                *("--per-day", "3", "--per-week", "10", "--window", "Mon-Sun 00:00-24:00"),
            ]  # fmt: skip
            _timed(steps, "mentor-agent setup", lambda: _run([agent, "setup", *answers], env=env, cwd=work))
            log = work / "agent.log"
            with log.open("wb") as out:
                daemon = subprocess.Popen([agent, "run"], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=work)
            try:

                def started() -> None:
                    harness.eventually(lambda: "connected to" in log.read_text(errors="replace"), timeout=60)

                def paced() -> None:
                    servers.dovecot.append(user, OUTBOX, mail("First question, after setup"))
                    smtp.wait_for(1, timeout=60)

                _timed(steps, "mentor-agent run: started", started)
                _timed(steps, "first message paced (sent)", paced)
            finally:
                daemon.terminate()
                daemon.wait(30)
        finally:
            smtp.stop()
    steps["total"] = sum(steps.values())
    return steps


def main() -> None:
    # The test SMTP server asks for AUTH without TLS (on loopback): aiosmtpd warns about that, on every connection.
    warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
    warnings.filterwarnings("ignore", "Session.login_data is deprecated")
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (the venv, the logs)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mab-first-", dir="/tmp"))
    work.chmod(0o755)
    try:
        steps = first_run(work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps({k: round(v, 2) for k, v in steps.items()}))
    else:
        print(f"from a fresh venv to the first paced message: {steps['total']:.1f} s")


if __name__ == "__main__":
    main()
