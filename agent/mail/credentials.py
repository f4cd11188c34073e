"""Where a login secret comes from, tried in order of preference:

0. ``oauth2`` ("microsoft" or "google") — the built-in sign-in (agent.mail.oauth): an access token refreshed from
   the stored grant at every call; an expired or revoked grant raises SignInNeeded;
1. ``oauth2_token_command`` — prints an OAuth2 access token; run afresh at every call, since tokens expire;
2. ``password_command`` — e.g. ``pass show mail/uni``; the first line it prints;
3. a systemd credential — ``$CREDENTIALS_DIRECTORY/<credential>`` (``<section>-password`` when unnamed);
4. the system keyring — ``keyring.get_password(keyring_service, username)``, if ``keyring`` is installed;
5. ``$MENTOR_AGENT_<SECTION>__PASSWORD``;
6. ``password`` in the config file — accepted, with a warning, if the file is readable by its owner only.

A source the user named (a command, ``credential``, ``keyring_service``) that fails is an error: falling back
to a weaker source the user did not ask for would hide the mistake. Every secret found is registered with
``agent.logs`` so that no log line shows it, and no error message here ever includes one.
"""

from __future__ import annotations

import importlib
import logging
import os
import shlex
import stat
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from agent.config.settings import Credentials
from agent.errors import Problem, UserError
from agent.logs import register_secret

log = logging.getLogger(__name__)

COMMAND_TIMEOUT = 30.0  # seconds; a password manager waiting on a PIN entry should not hang the daemon
_warned_plain: set[tuple[str, str]] = set()


@dataclass(frozen=True, repr=False)
class Secret:
    """A password or an OAuth2 access token. Its value is never shown by ``repr`` or ``str``."""

    kind: Literal["password", "oauth2"]
    value: str

    def __repr__(self) -> str:
        return f"Secret(kind={self.kind!r}, value='***')"

    __str__ = __repr__


def _problem(file: str | os.PathLike[str], key: str, message: str) -> UserError:
    return UserError([Problem(file=str(file), key=key, message=message)])


def check_secret_file(path: str | os.PathLike[str]) -> None:
    """Refuse a file holding a secret that group or others may read."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError as error:
        raise _problem(path, "", f"cannot check its permissions: {error.strerror}") from None
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        raise _problem(
            path, "", f"is readable by group or others (mode {mode:04o}); run chmod 600 {shlex.quote(str(path))}"
        )


def _first_line(text: str) -> str:
    lines = text.splitlines()
    return lines[0].strip() if lines else ""


def _run(command: str, *, file: str, key: str) -> str:
    """The first line ``command`` prints, stripped. Errors name the key, the program, its exit status and
    the first line of its stderr — never what it printed on stdout."""
    try:
        argv = shlex.split(command)
    except ValueError as error:
        raise _problem(file, key, f"cannot be split into words ({error})") from None
    if not argv:
        raise _problem(file, key, "is empty")
    program = argv[0]
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise _problem(file, key, f"command not found: {program}") from None
    except PermissionError:
        raise _problem(file, key, f"cannot run {program}: permission denied") from None
    except subprocess.TimeoutExpired:
        raise _problem(file, key, f"{program} did not finish within {COMMAND_TIMEOUT:g} s") from None
    except OSError as error:
        raise _problem(file, key, f"cannot run {program}: {error.strerror}") from None
    value = _first_line(done.stdout)
    if done.returncode != 0:
        complaint = _first_line(done.stderr)
        if value and value in complaint:  # a tool that echoes what it printed must not leak it here
            complaint = complaint.replace(value, "***")
        detail = f": {complaint}" if complaint else " (nothing on stderr)"
        raise _problem(file, key, f"{program} exited with status {done.returncode}{detail}")
    if not value:
        raise _problem(file, key, f"{program} printed nothing on its first line")
    return value


def _from_credentials_dir(creds: Credentials, *, section: str, file: str, env: Mapping[str, str]) -> str | None:
    directory = env.get("CREDENTIALS_DIRECTORY", "")
    key = f"[{section}].credential"
    if creds.credential and not directory:
        raise _problem(
            file,
            key,
            f"names {creds.credential!r} but $CREDENTIALS_DIRECTORY is not set "
            "(add LoadCredential= or SetCredentialEncrypted= to the unit)",
        )
    if not directory or not Path(directory).is_dir():
        if creds.credential:
            raise _problem(
                file, key, f"names {creds.credential!r} but $CREDENTIALS_DIRECTORY ({directory}) is not a directory"
            )
        return None
    name = creds.credential or f"{section}-password"
    path = Path(directory) / name
    if not path.is_file():
        if creds.credential:
            raise _problem(file, key, f"no credential {name!r} in {directory}")
        return None
    check_secret_file(path)
    try:
        value = _first_line(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise _problem(path, "", f"cannot read credential: {type(error).__name__}") from None
    if not value:
        raise _problem(path, "", "credential is empty")
    return value


def _from_keyring(creds: Credentials, *, section: str, file: str) -> str | None:
    if not creds.keyring_service:
        return None
    key = f"[{section}].keyring_service"
    try:
        keyring: Any = importlib.import_module("keyring")
    except ImportError:
        raise _problem(
            file,
            key,
            "is set but the keyring package is not installed "
            "(pip install keyring, or pipx inject mentor-agent keyring)",
        ) from None
    try:
        value = keyring.get_password(creds.keyring_service, creds.username)
    except Exception as error:  # backends raise their own types; report the kind, not the text
        raise _problem(file, key, f"keyring lookup failed ({type(error).__name__})") from None
    if not value:
        raise _problem(
            file,
            key,
            f"the keyring has no password for service {creds.keyring_service!r} and user "
            f"{creds.username!r} (store one with: keyring set {creds.keyring_service} "
            f"{creds.username})",
        )
    return str(value)


def resolve(
    creds: Credentials,
    *,
    section: str,
    config_file: str = "",
    env: Mapping[str, str] | None = None,
    state_dir: Path | None = None,
) -> Secret | None:
    """The secret to log in to ``section`` ("imap" or "smtp") with, or None when none is configured.
    ``state_dir`` is where the built-in sign-in keeps its grant (needed when ``creds.oauth2`` is set)."""
    environ = os.environ if env is None else env
    if creds.oauth2:
        if state_dir is None:
            raise _problem(config_file, f"[{section}].oauth2", "built-in sign-in needs the state directory")
        from agent.mail.oauth import access_token  # msal and google-auth load only for those who sign in

        token = access_token(creds, username=creds.username, state_dir=state_dir, section=section)
        return _found("oauth2", token)
    if creds.oauth2_token_command:
        return _found(
            "oauth2", _run(creds.oauth2_token_command, file=config_file, key=f"[{section}].oauth2_token_command")
        )
    if creds.password_command:
        return _found("password", _run(creds.password_command, file=config_file, key=f"[{section}].password_command"))
    for value in (
        _from_credentials_dir(creds, section=section, file=config_file, env=environ),
        _from_keyring(creds, section=section, file=config_file),
    ):
        if value is not None:
            return _found("password", value)
    from_env = environ.get(f"MENTOR_AGENT_{section.upper()}__PASSWORD", "")
    if from_env:
        return _found("password", from_env)
    if creds.password is not None and creds.password.get_secret_value():
        if config_file and Path(config_file).exists():
            check_secret_file(config_file)
        if (section, config_file) not in _warned_plain:
            _warned_plain.add((section, config_file))
            log.warning(
                '%s: [%s].password is stored in the config file; password_command (e.g. "pass show '
                'mail/uni"), a systemd credential or the keyring keep it out of plain text',
                config_file or "config",
                section,
            )
        return _found("password", creds.password.get_secret_value())
    return None


def _found(kind: Literal["password", "oauth2"], value: str) -> Secret:
    register_secret(value)
    return Secret(kind=kind, value=value)
